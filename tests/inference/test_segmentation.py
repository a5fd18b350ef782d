"""The tumor mask back at the original size, and the lesion measured on it: real slices and their
real crop boxes, constructed mask probabilities with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mri_core.inference.segmentation import MIN_LEVEL, lesion_of, mask_to_original, mask_uint8, threshold_mask
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


def _blob(shape, centre, radius, peak):
    """A round bump of mask probability: `peak` at the centre, 0 at `radius`."""
    rows, cols = np.indices(shape)
    distance = np.hypot(rows - centre[0], cols - centre[1])
    return np.clip(peak * (1 - distance / radius), 0, None).astype(np.float32)


def test_without_a_cleanup_the_mask_is_the_threshold_alone():
    probability = _blob((64, 64), (20, 20), 10, 1.0) + _blob((64, 64), (45, 45), 6, 0.6)
    assert np.array_equal(threshold_mask(probability, 0.5), probability >= 0.5)
    assert np.array_equal(threshold_mask(probability, 0.5, None), threshold_mask(probability, 0.5, {}))


def test_a_faint_mask_gets_an_outline_with_a_relative_threshold_but_a_blank_one_does_not():
    faint = _blob((64, 64), (30, 30), 12, 0.4)  # the network less sure than usual: nothing at 0.5
    assert not threshold_mask(faint, 0.5).any()
    outlined = threshold_mask(faint, 0.5, {"relative": 0.5})
    assert np.array_equal(outlined, faint >= 0.2) and outlined[30, 30]
    sure = _blob((64, 64), (30, 30), 12, 1.0)  # a confident mask keeps the package's threshold
    assert np.array_equal(threshold_mask(sure, 0.5, {"relative": 0.5}), sure >= 0.5)
    almost_blank = _blob((64, 64), (30, 30), 12, 0.12)
    assert np.array_equal(threshold_mask(almost_blank, 0.5, {"relative": 0.5}), almost_blank >= MIN_LEVEL)
    assert not threshold_mask(np.full((64, 64), 0.05, np.float32), 0.5, {"relative": 0.5}).any()


def test_faint_specks_go_and_a_second_confident_lesion_stays():
    main, speck = _blob((64, 64), (20, 20), 10, 1.0), _blob((64, 64), (50, 50), 4, 0.6)
    kept = threshold_mask(main + speck, 0.5, {"component_peak": 0.95})
    assert np.array_equal(kept, main >= 0.5)
    second = _blob((64, 64), (50, 50), 6, 0.98)
    both = threshold_mask(main + second, 0.5, {"component_peak": 0.95})
    assert np.array_equal(both, (main + second) >= 0.5) and both[50, 50]


def test_holes_inside_an_outline_are_filled():
    ring = _blob((64, 64), (32, 32), 16, 1.0)
    ring[28:37, 28:37] = 0.0  # a dark core, as in a necrotic tumor
    assert not threshold_mask(ring, 0.5)[32, 32]
    filled = threshold_mask(ring, 0.5, {"fill_holes": True})
    assert filled[32, 32] and filled[28:37, 28:37].all()
    assert np.array_equal(filled & ~(ring >= 0.5), np.pad(np.ones((9, 9), bool), ((28, 27), (28, 27))))


def test_the_cleanup_applies_at_the_original_size(prepared):
    probability = _blob((64, 64), (32, 40), 10, 0.4)  # faint: empty without the relative threshold
    assert not mask_to_original(probability, prepared, 0.5).any()
    assert mask_to_original(probability, prepared, 0.5, {"relative": 0.5}).any()
