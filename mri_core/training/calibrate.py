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

from mri_core.inference.model import apply_temperature, forward_with_masks, mask_output_index, predict_arrays
from mri_core.training.data import NO_TUMOR_CLASSES
from mri_core.training.evaluate import compute_metrics
from mri_core.training.losses import target_probability

THRESHOLD_RANGE = (0.02, 0.5)
MIN_SOURCE_TUMORS = 10  # a source with fewer validation tumors cannot set the threshold
MIN_STRATUM_HEALTHY = 30  # a (source, plane) stratum with fewer validation healthy slices cannot move the band
MASK_THRESHOLDS = np.round(np.arange(0.3, 0.71, 0.05), 2)  # candidates for the mask's pixel threshold
# Candidates for the mask's cleanup (`inference.segmentation.threshold_mask`), simplest first; a
# later one replaces the best so far only if its mean validation Dice is higher by MIN_CLEANUP_GAIN.
MASK_CLEANUPS = [{"relative": relative, "component_peak": peak, "fill_holes": fill}
                 for relative in (None, 0.5) for peak in (None, 0.95) for fill in (False, True)]
MIN_CLEANUP_GAIN = 0.001


def _allowed_low(scores: np.ndarray, rate: float) -> float:
    """Highest value v with share(scores < v) <= rate (scores of one stratum's tumors)."""
    ordered = np.sort(scores)
    return float(ordered[int(np.floor(rate * len(ordered)))])


def _allowed_high(scores: np.ndarray, rate: float) -> float:
    """Lowest value v with share(scores >= v) <= rate (scores of one stratum's healthy slices)."""
    ordered = np.sort(scores)[::-1]
    return float(np.nextafter(ordered[int(np.floor(rate * len(ordered)))], 1.0))


def choose_band(tumor_probability: np.ndarray, is_tumor: np.ndarray, tumor_strata: Sequence[str],
                healthy_strata: Sequence[str], miss_rate: float, false_rate: float,
                false_rate_overall: float) -> tuple[float, float, dict]:
    """The uncertainty band (low, high) and how it was set, from validation probabilities.

    low: the highest value that leaves at most `miss_rate` of the tumors below it, overall and
    in every tumor stratum with >= MIN_SOURCE_TUMORS; high: the lowest value that leaves at most
    `false_rate` of the healthy slices at or above it in every healthy stratum with >=
    MIN_STRATUM_HEALTHY (and `false_rate_overall` of all). Below low reads `no_tumor`, at or
    above high `tumor`, between them `uncertain`: where both cannot hold with one threshold,
    the band defers the difference instead of trading one for the other.
    """
    tumor_strata, healthy_strata = np.asarray(tumor_strata), np.asarray(healthy_strata)
    lows = {"all tumors": _allowed_low(tumor_probability[is_tumor], miss_rate)}
    for stratum in np.unique(tumor_strata[is_tumor]):
        inside = is_tumor & (tumor_strata == stratum)
        if inside.sum() >= MIN_SOURCE_TUMORS:
            lows[str(stratum)] = _allowed_low(tumor_probability[inside], miss_rate)
    highs = {"all healthy": _allowed_high(tumor_probability[~is_tumor], false_rate_overall)}
    for stratum in np.unique(healthy_strata[~is_tumor]):
        inside = ~is_tumor & (healthy_strata == stratum)
        if inside.sum() >= MIN_STRATUM_HEALTHY:
            highs[str(stratum)] = _allowed_high(tumor_probability[inside], false_rate)
    low, high = min(lows.values()), max(highs.values())
    band = (min(low, high), max(low, high))
    return band[0], band[1], {"low_set_by": min(lows, key=lows.get), "high_set_by": max(highs, key=highs.get),
                              "lows": lows, "highs": highs}


def band_threshold(low: float, high: float) -> float:
    """The threshold inside a band: its middle on the log-odds scale."""
    logit = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))  # noqa: E731
    return float(1.0 / (1.0 + np.exp(-(logit(low) + logit(high)) / 2.0)))


def band_summary(tumor_probability: np.ndarray, is_tumor: np.ndarray, strata: Sequence[str],
                 low: float, high: float) -> dict:
    """Validation figures of a band per stratum: missed tumors, healthy called tumor, deferred."""
    strata = np.asarray(strata)
    verdict_tumor, deferred = tumor_probability >= high, (tumor_probability >= low) & (tumor_probability < high)
    missed = tumor_probability < low
    figures = {}
    for stratum in ["all", *np.unique(strata)]:
        inside = np.ones(len(strata), bool) if stratum == "all" else strata == stratum
        tumors, healthy = inside & is_tumor, inside & ~is_tumor
        figures[str(stratum)] = {
            "tumors": int(tumors.sum()), "healthy": int(healthy.sum()),
            "missed": float(missed[tumors].mean()) if tumors.any() else None,
            "healthy_called_tumor": float(verdict_tumor[healthy].mean()) if healthy.any() else None,
            "deferred": float(deferred[inside].mean()) if inside.any() else None,
        }
    return figures


def choose_mask_threshold(predicted: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """(pixel threshold of MASK_THRESHOLDS with the best mean validation Dice over tumor
    outlines, that Dice) at the model's resolution."""
    from mri_core.training.losses import dice_scores

    outlined = masks.reshape(len(masks), -1).any(axis=1)
    scores = {float(t): float(dice_scores(predicted[outlined], masks[outlined], t).mean()) for t in MASK_THRESHOLDS}
    best = max(scores, key=scores.get)
    return best, scores[best]


def mask_cleanup_scores(predicted: np.ndarray, masks: np.ndarray, threshold: float) -> list[float]:
    """Mean Dice over the tumor outlines of `masks` of each `MASK_CLEANUPS` entry at `threshold`
    ((N, S, S, 1) probabilities and masks at the model's resolution; 0.0 without outlines)."""
    from mri_core.inference.segmentation import threshold_mask
    from mri_core.training.strata import dice

    outlined = masks.reshape(len(masks), -1).any(axis=1)
    maps, truths = predicted[outlined][..., 0], masks[outlined][..., 0] > 0.5
    return [float(np.mean([dice(threshold_mask(m, threshold, cleanup), t) for m, t in zip(maps, truths)]))
            if len(maps) else 0.0 for cleanup in MASK_CLEANUPS]


def choose_mask_cleanup(predicted: np.ndarray, masks: np.ndarray, threshold: float) -> tuple[dict, float, float]:
    """(the `MASK_CLEANUPS` entry with the best mean validation Dice over tumor outlines at
    `threshold`, that Dice, the Dice without cleanup), at the model's resolution."""
    scores = mask_cleanup_scores(predicted, masks, threshold)
    best = 0
    for i, score in enumerate(scores):
        if score >= scores[best] + MIN_CLEANUP_GAIN:
            best = i
    return dict(MASK_CLEANUPS[best]), scores[best], scores[0]


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


def predict_masks(keras_model, images: np.ndarray, mirror: bool = False, batch_size: int = 64) -> np.ndarray:
    """A segmenting network's (N, S, S, 1) mask probabilities, read as a reading reads them
    (`inference.model.forward_with_masks`: with `mirror`, the mean of the slice's and its mirror
    image's, mirrored back)."""
    output = mask_output_index(keras_model, "mask")
    masks = [forward_with_masks(keras_model, images[i:i + batch_size], mirror, output)[1]
             for i in range(0, len(images), batch_size)]
    return np.concatenate(masks)[..., None] if masks else np.zeros((0, *images.shape[1:]), np.float32)


def calibrate_and_test(keras_model, data, recipe) -> dict:
    """A trained network (on `data`, a `prepared.TrainingData`) read the way `recipe` reads a
    slice -> the model.json keys that depend on it: temperature, threshold, uncertainty band,
    operating point, reading, segmentation (its pixel threshold), and the test metrics."""
    predict = functools.partial(predict_arrays, keras_model, mirror=recipe.mirror_average)
    no_tumor = [c for c in data.class_names if c in NO_TUMOR_CLASSES]
    val_x, val_y = data.arrays["val"]
    val_raw = predict(val_x)
    temperature = fit_temperature(val_raw, val_y, data.tumor_mask)
    threshold, operating_point = 0.5, {"rule": "fixed 0.5 (the paper's argmax)"}
    band = None
    val_tumor_probability = apply_temperature(val_raw, temperature) @ data.tumor_mask
    val_is_tumor = np.array([c not in NO_TUMOR_CLASSES for c in data.true_names["val"]])
    if recipe.band_rule is not None:
        miss, false, false_all = recipe.band_rule
        healthy_strata = [f"{source}/{plane}" for source, plane in zip(data.val_sources, data.val_planes)]
        low, high, how = choose_band(val_tumor_probability, val_is_tumor, data.val_sources, healthy_strata,
                                     miss, false, false_all)
        band, threshold = [low, high], band_threshold(low, high)
        operating_point = {
            "rule": f"uncertainty band on validation: its low end leaves at most {miss:.0%} of the tumors below it "
                    f"overall and in every source with >= {MIN_SOURCE_TUMORS} validation tumors; its high end leaves "
                    f"at most {false:.0%} of the healthy slices at or above it in every (source, plane) stratum with "
                    f">= {MIN_STRATUM_HEALTHY} of them and {false_all:.0%} of all; below the band no_tumor, above "
                    "it tumor, inside it uncertain; the threshold is the band's middle in log-odds",
            "band_rule": {"miss_rate": miss, "false_rate": false, "false_rate_overall": false_all},
            "set_by": {"low": how["low_set_by"], "high": how["high_set_by"]},
            "validation": band_summary(val_tumor_probability, val_is_tumor, healthy_strata, low, high),
        }
    elif recipe.target_sensitivity is not None:
        threshold = choose_threshold_per_source(val_tumor_probability, val_is_tumor, data.val_sources,
                                                recipe.target_sensitivity)
        operating_point = operating_point_summary(val_tumor_probability, val_is_tumor, data.val_sources,
                                                  threshold, recipe.target_sensitivity)
    segmentation = None
    if len(keras_model.outputs) > 1 and data.val_masks is not None:
        outlined = (data.val_mask_kind == 1) & data.val_masks.reshape(len(val_y), -1).any(axis=1)
        val_masks = predict_masks(keras_model, val_x[outlined], recipe.mirror_average)
        pixel_threshold, val_dice = choose_mask_threshold(val_masks, data.val_masks[outlined])
        cleanup, cleaned_dice, _ = choose_mask_cleanup(val_masks, data.val_masks[outlined], pixel_threshold)
        segmentation = {"output": "mask", "threshold": pixel_threshold, "cleanup": cleanup,
                        "validation_dice_model_resolution": val_dice,
                        "validation_dice_model_resolution_cleaned": cleaned_dice,
                        "validation_outlines": int(outlined.sum())}
    test_probabilities = apply_temperature(predict(data.arrays["test"][0]), temperature)
    metrics = compute_metrics(data.true_names["test"], test_probabilities, data.class_names, no_tumor, threshold)
    return {"temperature": temperature, "threshold": threshold, "uncertainty_band": band,
            "operating_point": operating_point, "reading": recipe.reading, "segmentation": segmentation,
            "test_metrics": metrics}
