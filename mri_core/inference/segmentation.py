"""The tumor mask of a reading: the segmenting network's mask probabilities -> an outline at the
original size -> the lesion's area and box.

The network gives a mask over its square, brain-cropped input (one pass with the class
probabilities, `model.forward_with_masks` / `explain.GradCam.read`). Here it is mapped back to
the original image first (`preprocess.heatmap_to_original`: bilinear over the crop box, area
averaging where the box is smaller than the model input, 0 outside the box) and thresholded
there, at model.json's `segmentation.threshold`: the outline follows the interpolated
probabilities at the original resolution instead of the model input's pixel staircase.

A package may also name a `segmentation.cleanup` (chosen on validation outlines by
`training.calibrate.choose_mask_cleanup`; older packages have none), applied after the mapping:
- `relative`: the threshold falls to that share of the slice's highest mask probability where
  the network is less sure than usual (never below `MIN_LEVEL`), so a slice whose mask is
  faint in every pixel still gets an outline;
- `component_peak`: only the connected parts whose own highest probability is at least that
  share of the slice's highest are kept: faint specks go, a second confident lesion stays;
- `fill_holes`: holes inside a kept part are filled (an outline, not a ring).
Plain NumPy and OpenCV (no TensorFlow). Never imports streamlit.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from mri_core.inference.measure import max_diameter, positive_spacing
from mri_core.io import preprocess
from mri_core.package.info import check_mask_cleanup

MIN_LEVEL = 0.1  # the `relative` threshold never falls below this probability


def threshold_mask(probability: np.ndarray, threshold: float, cleanup: dict | None = None) -> np.ndarray:
    """(H, W) mask probabilities -> (H, W) bool mask: `>= threshold`, then the package's cleanup
    (the module's docstring; None: none)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"The mask threshold must lie strictly between 0 and 1, got {threshold}.")
    steps = check_mask_cleanup(cleanup)
    probability = np.asarray(probability, np.float32)
    peak = float(probability.max()) if probability.size else 0.0
    level = threshold
    if steps["relative"] is not None:
        level = max(min(threshold, steps["relative"] * peak), MIN_LEVEL)
    mask = probability >= np.float32(level)
    if not mask.any() or (steps["component_peak"] is None and not steps["fill_holes"]):
        return mask
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if steps["component_peak"] is not None and count > 2:
        # a part's own peak reaches the level exactly when one of its pixels does
        level = np.float32(steps["component_peak"]) * probability[mask].max()
        keep = np.zeros(count, bool)
        keep[np.unique(labels[mask & (probability >= level)])] = True
        keep[0] = False
        mask = keep[labels]
    if steps["fill_holes"]:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        filled = np.zeros(mask.shape, np.uint8)
        cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
        mask = filled.astype(bool)
    return mask


def mask_to_original(mask_probability: np.ndarray, prepared: preprocess.Prepared, threshold: float,
                     cleanup: dict | None = None) -> np.ndarray:
    """(S, S) mask probabilities over the model input -> (H, W) bool mask over the original slice:
    mapped back through the crop box, then `threshold_mask` (with the package's cleanup)."""
    return threshold_mask(preprocess.heatmap_to_original(mask_probability, prepared), threshold, cleanup)


def lesion_of(mask: np.ndarray, spacing: Sequence[float] | None = None) -> dict | None:
    """(H, W) bool mask at the original size -> {"area_px", "area_mm2", "box": (x0, y0, x1, y1),
    "diameter_px", "diameter_mm"}.

    The box bounds every mask pixel (edges inclusive, x right, y down); `area_mm2` is the pixel
    count times the pixel's (row, col) spacing in mm, None when the spacing is unknown; the
    diameter is `measure.max_diameter`'s. None for an empty mask (nothing outlined).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"Expected a 2-D mask (H, W), got shape {mask.shape}.")
    area = int(mask.sum())
    if area == 0:
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    mm = positive_spacing(spacing)
    area_mm2 = area * mm[0] * mm[1] if mm else None
    diameter_px, diameter_mm = max_diameter(mask, spacing)
    return {"area_px": area, "area_mm2": area_mm2,
            "box": (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])),
            "diameter_px": diameter_px, "diameter_mm": diameter_mm}


def mask_uint8(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool mask -> (H, W) uint8, 255 = tumor, 0 elsewhere (what `predict --save-masks` writes)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"Expected a 2-D mask (H, W), got shape {mask.shape}.")
    return np.where(mask, np.uint8(255), np.uint8(0))
