"""The tumor mask of a reading: the segmenting network's mask probabilities -> an outline at the
original size -> the lesion's area and box.

The network gives a mask over its square, brain-cropped input (one pass with the class
probabilities, `model.forward_with_masks` / `explain.GradCam.read`). Here it is mapped back to
the original image first (`preprocess.heatmap_to_original`: bilinear over the crop box, area
averaging where the box is smaller than the model input, 0 outside the box) and thresholded
there, at model.json's `segmentation.threshold`: the outline follows the interpolated
probabilities at the original resolution instead of the model input's pixel staircase.
Plain NumPy and OpenCV (no TensorFlow). Never imports streamlit.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mri_core.inference.measure import max_diameter, positive_spacing
from mri_core.io import preprocess


def mask_to_original(mask_probability: np.ndarray, prepared: preprocess.Prepared, threshold: float) -> np.ndarray:
    """(S, S) mask probabilities over the model input -> (H, W) bool mask over the original slice:
    mapped back through the crop box, then `>= threshold`."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"The mask threshold must lie strictly between 0 and 1, got {threshold}.")
    return preprocess.heatmap_to_original(mask_probability, prepared) >= np.float32(threshold)


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
