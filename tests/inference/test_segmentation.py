"""The tumor mask back at the original size, and the lesion measured on it: real slices and their
real crop boxes, constructed mask probabilities with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mri_core.inference.segmentation import lesion_of, mask_to_original, mask_uint8
from mri_core.io import preprocess
from mri_core.io import slices as io


@pytest.fixture(scope="module")
def prepared(figshare_dir):
    """A real 512 px figshare slice, prepared for a 64 px model (its head crop is off-centre)."""
    pixels = io.read_file(sorted((figshare_dir / "glioma").iterdir())[0])[0].pixels
    return preprocess.prepare(pixels, 64)


def test_a_square_on_the_model_input_lands_on_the_original_pixels_under_it(prepared):
    probability = np.zeros((64, 64), np.float32)
    probability[20:30, 36:50] = 0.9  # rows 20-29, columns 36-49 of the model input
    mask = mask_to_original(probability, prepared, threshold=0.5)
    assert mask.shape == prepared.original_shape and mask.dtype == bool
    x0, y0, x1, y1 = lesion_of(mask)["box"]
    # the square's corner pixels, mapped through the crop box, within a model pixel's width
    left, top = preprocess.to_original_xy((36, 20), prepared)
    right, bottom = preprocess.to_original_xy((49, 29), prepared)
    scale = (prepared.crop_box[2] - prepared.crop_box[0] + 1) / 64
    assert abs(x0 - left) <= scale and abs(y0 - top) <= scale
    assert abs(x1 - right) <= scale and abs(y1 - bottom) <= scale
    # thresholded after the mapping: the outline follows the interpolated probabilities
    assert mask_to_original(probability, prepared, threshold=0.95).sum() == 0
    assert mask_to_original(probability * 0 + 0.6, prepared, 0.5).sum() > mask.sum()


def test_lesion_area_box_and_millimetres():
    mask = np.zeros((40, 50), bool)
    mask[5:10, 20:30] = True  # 50 px
    mask[30, 2] = True  # a second, one-pixel part: the box bounds every part
    lesion = lesion_of(mask, spacing=(0.5, 0.8))
    # farthest centres: (29, 5) and (2, 30), 27 columns of 0.8 mm and 25 rows of 0.5 mm apart
    assert lesion == {"area_px": 51, "area_mm2": pytest.approx(51 * 0.4), "box": (2, 5, 29, 30),
                      "diameter_px": pytest.approx(np.hypot(27, 25)), "diameter_mm": pytest.approx(np.hypot(27 * 0.8, 25 * 0.5))}
    assert lesion_of(mask)["area_mm2"] is None  # no spacing: no millimetres
    assert lesion_of(mask, spacing=(0.0, 1.0))["area_mm2"] is None
    assert lesion_of(np.zeros((4, 4), bool)) is None  # nothing outlined


def test_mask_png_array_is_255_inside_and_0_outside():
    mask = np.zeros((3, 4), bool)
    mask[1, 2] = True
    out = mask_uint8(mask)
    assert out.dtype == np.uint8 and out.shape == (3, 4)
    assert out[1, 2] == 255 and out.sum() == 255


def test_bad_masks_say_what_was_expected(prepared):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        mask_to_original(np.zeros((64, 64)), prepared, 1.0)
    with pytest.raises(ValueError, match="2-D mask"):
        lesion_of(np.zeros((2, 2, 2), bool))
