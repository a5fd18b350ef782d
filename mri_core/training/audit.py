"""Audit figures for a trained model: intervals, shortcut probes, Grad-CAM localisation.

Pure functions over numpy arrays (scikit-learn for the probe); `bench/accuracy.py` feeds
them a model's outputs on the test part of a split manifest. Binomial rates get Wilson
intervals, statistics without a closed form (ROC AUC) a percentile bootstrap. Boxes are
(x0, y0, x1, y1) in pixels with inclusive edges, as everywhere in `mri_core`.
Never imports streamlit.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 1000
PROBE_FOLDS = 5
LOGITS_LAYER = "logits"


# --- intervals ---------------------------------------------------------------------------

def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval (low, high) of a binomial proportion successes / n.

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n
    successes, which matters for sensitivities near 1 on a few hundred images.
    """
    from scipy.stats import norm

    if n <= 0:
        raise ValueError(f"A proportion needs at least one trial, got n={n}.")
    if not 0 <= successes <= n:
        raise ValueError(f"Expected 0 <= successes <= n, got {successes} of {n}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half_width = z / denominator * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def rate_with_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> dict:
    """-> {"rate", "low", "high", "successes", "n"} (plain JSON); rate and bounds None when n == 0."""
    if n == 0:
        return {"rate": None, "low": None, "high": None, "successes": 0, "n": 0}
    low, high = wilson_interval(int(successes), int(n), confidence)
    return {"rate": round(successes / n, 6), "low": round(low, 6), "high": round(high, 6),
            "successes": int(successes), "n": int(n)}


def bootstrap_interval(statistic: Callable[[np.ndarray], float | None], n_items: int,
                       rng: np.random.Generator, n_boot: int = BOOTSTRAP_SAMPLES,
                       confidence: float = CONFIDENCE, strata: Sequence | None = None
                       ) -> tuple[float, float]:
    """Percentile bootstrap (low, high) of `statistic(indices)` over resampled item indices.

    `statistic` takes an int array of n_items indices (drawn with replacement) and returns
    a float, or None / NaN where it is undefined on that resample (those are dropped).
    With `strata` (n_items labels) each stratum is resampled on its own, keeping its size:
    for ROC AUC that keeps both classes in every resample.
    """
    if n_items <= 0 or n_boot <= 0:
        raise ValueError(f"Need items and resamples, got n_items={n_items}, n_boot={n_boot}.")
    members = [np.arange(n_items)] if strata is None else [
        np.flatnonzero(np.asarray(strata) == s) for s in np.unique(np.asarray(strata))]
    values = []
    for _ in range(n_boot):
        indices = np.concatenate([rng.choice(m, size=len(m), replace=True) for m in members])
        value = statistic(indices)
        if value is not None and np.isfinite(value):
            values.append(float(value))
    if not values:
        raise ValueError("The statistic was undefined on every bootstrap resample.")
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


# --- tumor detection per source ----------------------------------------------------------

def per_source_rates(true_tumor: np.ndarray, predicted_tumor: np.ndarray, sources: Sequence[str],
                     confidence: float = CONFIDENCE) -> dict[str, dict]:
    """(N,) bool truths and decisions, (N,) source names -> per source, sorted by name:

    {"sensitivity": rate_with_interval, "specificity": ... (only where the source has
    no-tumor images), "n": images}. Pass "root/class" names to get rates per class too.
    """
    true_tumor = np.asarray(true_tumor, bool)
    predicted_tumor = np.asarray(predicted_tumor, bool)
    sources = np.asarray(sources)
    if not len(true_tumor) == len(predicted_tumor) == len(sources):
        raise ValueError(f"Expected equally many truths, decisions and sources, got "
                         f"{len(true_tumor)}, {len(predicted_tumor)}, {len(sources)}.")
    rates = {}
    for source in sorted(set(sources.tolist())):
        here = sources == source
        tumors, healthy = here & true_tumor, here & ~true_tumor
        entry = {"n": int(here.sum())}
        if tumors.any():
            entry["sensitivity"] = rate_with_interval(int(predicted_tumor[tumors].sum()), int(tumors.sum()), confidence)
        if healthy.any():
            entry["specificity"] = rate_with_interval(int((~predicted_tumor[healthy]).sum()), int(healthy.sum()), confidence)
        rates[str(source)] = entry
    return rates


# --- shortcut probe ----------------------------------------------------------------------

def pooled_features(keras_model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """float32 (N, S, S, 1) model inputs (as a reading prepares them) -> float32 (N, F): the input of `logits`.

    That is the last representation the classifier sees: the global-average "pool" of the
    default architecture, the "dense" layer of the paper's.
    """
    import keras

    try:
        features_tensor = keras_model.get_layer(LOGITS_LAYER).input
    except ValueError:
        raise ValueError(f"Model {keras_model.name!r} has no {LOGITS_LAYER!r} layer to probe; "
                         "only functional models built by mri_core.training.recipes have one.") from None
    extractor = keras.Model(keras_model.input, features_tensor)
    outputs = [
        np.asarray(extractor(np.asarray(images[i:i + batch_size], np.float32), training=False))
        for i in range(0, len(images), batch_size)
    ]
    width = int(features_tensor.shape[-1])
    return np.concatenate(outputs).reshape(len(images), -1) if outputs else np.zeros((0, width), np.float32)


def source_probe(features: np.ndarray, sources: Sequence[str], seed: int = 0,
                 folds: int = PROBE_FOLDS) -> dict:
    """How well a logistic regression on (N, F) features predicts each image's source.

    Stratified `folds`-fold cross-validation of standardised features -> plain-JSON dict:
    accuracy and balanced accuracy, next to the majority-class rate and 1 / n_sources
    (what a probe that learnt nothing scores). The closer to those, the less the model's
    representation knows which data set an image came from.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    sources = np.asarray(sources)
    if len(features) != len(sources):
        raise ValueError(f"Expected one source per feature row, got {len(sources)} for {len(features)}.")
    names, counts = np.unique(sources, return_counts=True)
    if len(names) < 2:
        raise ValueError(f"A source probe needs images from at least two sources, got {names.tolist()}.")
    n_folds = min(folds, int(counts.min()))
    if n_folds < 2:
        raise ValueError(f"Each source needs at least two images for cross-validation; "
                         f"counts are {dict(zip(names.tolist(), counts.tolist()))}.")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    predicted = cross_val_predict(probe, features, sources, cv=cv)
    return {
        "n": int(len(sources)),
        "sources": {str(n): int(c) for n, c in zip(names, counts)},
        "folds": n_folds,
        "accuracy": round(float((predicted == sources).mean()), 6),
        "majority_rate": round(float(counts.max() / counts.sum()), 6),
        "balanced_accuracy": round(float(balanced_accuracy_score(sources, predicted)), 6),
        "chance_balanced_accuracy": round(1.0 / len(names), 6),
    }


# --- localisation ------------------------------------------------------------------------

def _boxes(boxes) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if np.any(boxes[:, 2] < boxes[:, 0]) or np.any(boxes[:, 3] < boxes[:, 1]):
        raise ValueError("Expected boxes (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1.")
    return boxes


def _box_area(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) inclusive boxes -> (N,) pixels covered."""
    return (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)


def pointing_game(peaks_xy, boxes) -> np.ndarray:
    """(N, 2) peaks (x, y) and (N, 4) inclusive boxes -> (N,) bool: peak inside its box.

    A missing peak (a row of NaN, e.g. an all-zero heatmap) is a miss.
    """
    peaks = np.asarray(peaks_xy, dtype=np.float64).reshape(-1, 2)
    boxes = _boxes(boxes)
    if len(peaks) != len(boxes):
        raise ValueError(f"Expected one box per peak, got {len(boxes)} boxes for {len(peaks)} peaks.")
    x, y = peaks[:, 0], peaks[:, 1]
    with np.errstate(invalid="ignore"):
        return (x >= boxes[:, 0]) & (x <= boxes[:, 2]) & (y >= boxes[:, 1]) & (y <= boxes[:, 3])


def box_iou(box_a, box_b) -> np.ndarray | float:
    """Intersection over union of inclusive pixel boxes: (4,) and (4,) -> float, (N, 4) pairs -> (N,).

    Inclusive edges: (0, 0, 9, 9) covers 10 x 10 = 100 pixels.
    """
    single = np.ndim(box_a) == 1 and np.ndim(box_b) == 1
    a, b = _boxes(box_a), _boxes(box_b)
    width = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1
    height = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1
    intersection = np.clip(width, 0, None) * np.clip(height, 0, None)
    iou = intersection / (_box_area(a) + _box_area(b) - intersection)
    return float(iou[0]) if single else iou


def centre_baseline(crop_boxes, image_shapes, area_fractions) -> tuple[np.ndarray, np.ndarray]:
    """A localiser that knows only where the head is: -> (peaks (N, 2) int, boxes (N, 4) int).

    Rule: the peak is the centre pixel of the brain crop (`Prepared.crop_box`, the square
    around the head), clipped to the image; the box is a square about that centre whose
    area is `area_fractions` (scalar or (N,)) of the crop's area, clipped to the image.
    `bench/accuracy.py` passes each image's own cam-box fraction, so the baseline box has the
    size Grad-CAM chose and only the position differs. image_shapes are (H, W).
    """
    crops = _boxes(crop_boxes)
    shapes = np.asarray(image_shapes, dtype=np.float64).reshape(-1, 2)
    fractions = np.broadcast_to(np.asarray(area_fractions, dtype=np.float64), (len(crops),))
    if len(shapes) != len(crops):
        raise ValueError(f"Expected one image shape per crop box, got {len(shapes)} for {len(crops)}.")
    if np.any((fractions <= 0) | (fractions > 1)):
        raise ValueError("Area fractions must be in (0, 1].")
    height, width = shapes[:, 0], shapes[:, 1]
    centre_x = np.clip(np.floor((crops[:, 0] + crops[:, 2]) / 2), 0, width - 1)
    centre_y = np.clip(np.floor((crops[:, 1] + crops[:, 3]) / 2), 0, height - 1)
    crop_side = crops[:, 2] - crops[:, 0] + 1
    side = np.maximum(1, np.round(crop_side * np.sqrt(fractions)))
    x0 = np.clip(centre_x - np.floor((side - 1) / 2), 0, width - 1)
    y0 = np.clip(centre_y - np.floor((side - 1) / 2), 0, height - 1)
    x1 = np.clip(x0 + side - 1, 0, width - 1)
    y1 = np.clip(y0 + side - 1, 0, height - 1)
    peaks = np.stack([centre_x, centre_y], axis=1).astype(int)
    return peaks, np.stack([x0, y0, x1, y1], axis=1).astype(int)


def box_area_fraction(boxes, crop_boxes) -> np.ndarray:
    """(N, 4) inclusive boxes and (N, 4) crop boxes -> (N,) box area / crop area, in (0, 1]."""
    return np.clip(_box_area(_boxes(boxes)) / _box_area(_boxes(crop_boxes)), 1e-9, 1.0)
