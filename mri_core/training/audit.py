"""Audit figures for a trained model: intervals and Grad-CAM localisation scoring.

Pure functions over numpy arrays: `training.strata` gives every rate and ROC AUC of the
accuracy bench its interval; `bench/old_split.py` scores Grad-CAM boxes. Binomial rates get
Wilson intervals, statistics without a closed form (ROC AUC) a percentile bootstrap. Boxes are
(x0, y0, x1, y1) in pixels with inclusive edges, as everywhere in `mri_core`.
Never imports streamlit.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 1000


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
    `bench/old_split.py` passes each image's own cam-box fraction, so the baseline box has the
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
