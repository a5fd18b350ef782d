"""After the loop: a calibration temperature, the operating point, and the test figures.

The temperature minimises validation negative log-likelihood (Guo et al. 2017). A recipe
with a target sensitivity operates at the highest threshold that still finds that share of
the validation tumors, overall and within every source (data root) holding at least
MIN_SOURCE_TUMORS of them; one without keeps the plain 0.5 (the paper's argmax). The test
split is measured once, at that threshold, read the way the recipe reads a slice.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from mri_core.inference.model import apply_temperature, predict_arrays
from mri_core.training.data import NO_TUMOR_CLASSES
from mri_core.training.evaluate import compute_metrics
from mri_core.training.losses import target_probability

THRESHOLD_RANGE = (0.02, 0.5)
MIN_SOURCE_TUMORS = 10  # a source with fewer validation tumors cannot set the threshold


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray, tumor_mask: np.ndarray | None = None) -> float:
    """Temperature minimising the negative log-likelihood of these (validation) labels."""
    from scipy.optimize import minimize_scalar

    mask = np.ones(probabilities.shape[1], np.float32) if tumor_mask is None else tumor_mask

    def nll(log_t: float) -> float:
        scaled = apply_temperature(probabilities, float(np.exp(log_t)))
        return float(-np.mean(np.log(np.clip(target_probability(scaled, labels, mask), 1e-12, 1.0))))

    best = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(best.x))


def choose_threshold(tumor_probability: np.ndarray, is_tumor: np.ndarray, target_sensitivity: float) -> float:
    """The highest threshold whose sensitivity on these (validation) images meets the target."""
    tumor_scores = np.sort(tumor_probability[is_tumor])
    if not len(tumor_scores):
        return 0.5
    # at threshold t, sensitivity = share of tumor scores >= t; allow this many misses:
    misses = int(np.floor((1.0 - target_sensitivity) * len(tumor_scores)))
    threshold = float(tumor_scores[misses]) - 1e-6
    return float(np.clip(threshold, *THRESHOLD_RANGE))


def choose_threshold_per_source(tumor_probability: np.ndarray, is_tumor: np.ndarray, sources: Sequence[str],
                                target_sensitivity: float) -> float:
    """The highest threshold that meets the target sensitivity overall and within every source
    holding at least MIN_SOURCE_TUMORS validation tumors: a style seen rarely among the tumors
    must not be traded away for the common ones."""
    sources = np.asarray(sources)
    thresholds = [choose_threshold(tumor_probability, is_tumor, target_sensitivity)]
    for source in np.unique(sources):
        inside = sources == source
        if (is_tumor & inside).sum() >= MIN_SOURCE_TUMORS:
            thresholds.append(choose_threshold(tumor_probability[inside], is_tumor[inside], target_sensitivity))
    return float(min(thresholds))


def operating_point_summary(tumor_probability: np.ndarray, is_tumor: np.ndarray, sources: Sequence[str],
                            threshold: float, target_sensitivity: float) -> dict:
    """How the threshold was chosen and what it gives on validation, per source (for the model card)."""
    sources = np.asarray(sources)
    caught = tumor_probability >= threshold
    per_source = {}
    for source in np.unique(sources):
        inside = sources == source
        tumors, healthy = is_tumor & inside, ~is_tumor & inside
        per_source[str(source)] = {
            "sensitivity": float(caught[tumors].mean()) if tumors.any() else None, "tumors": int(tumors.sum()),
            "specificity": float((~caught[healthy]).mean()) if healthy.any() else None, "healthy": int(healthy.sum()),
        }
    return {
        "rule": f"highest threshold with validation sensitivity >= {target_sensitivity} overall and within every "
                f"source holding >= {MIN_SOURCE_TUMORS} validation tumors, kept in {list(THRESHOLD_RANGE)}",
        "target_sensitivity": target_sensitivity,
        "validation": per_source,
    }


def calibrate_and_test(keras_model, data, recipe) -> dict:
    """A trained network (on `data`, a `prepared.TrainingData`) read the way `recipe` reads a
    slice -> the model.json keys that depend on it: temperature, threshold, operating point,
    reading, and the test metrics at that threshold."""
    predict = functools.partial(predict_arrays, keras_model, mirror=recipe.mirror_average)
    no_tumor = [c for c in data.class_names if c in NO_TUMOR_CLASSES]
    val_x, val_y = data.arrays["val"]
    val_raw = predict(val_x)
    temperature = fit_temperature(val_raw, val_y, data.tumor_mask)
    threshold, operating_point = 0.5, {"rule": "fixed 0.5 (the paper's argmax)"}
    if recipe.target_sensitivity is not None:
        val_tumor_probability = apply_temperature(val_raw, temperature) @ data.tumor_mask
        val_is_tumor = np.array([c not in NO_TUMOR_CLASSES for c in data.true_names["val"]])
        threshold = choose_threshold_per_source(val_tumor_probability, val_is_tumor, data.val_sources,
                                                recipe.target_sensitivity)
        operating_point = operating_point_summary(val_tumor_probability, val_is_tumor, data.val_sources,
                                                  threshold, recipe.target_sensitivity)
    test_probabilities = apply_temperature(predict(data.arrays["test"][0]), temperature)
    metrics = compute_metrics(data.true_names["test"], test_probabilities, data.class_names, no_tumor, threshold)
    return {"temperature": temperature, "threshold": threshold, "operating_point": operating_point,
            "reading": recipe.reading, "test_metrics": metrics}
