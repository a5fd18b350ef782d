"""mri_core.io.preprocess: the head is cropped, the input is [0, 1], and results map back exactly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mri_core.io.errors import NotASlice, SettingsInvalid
from mri_core.io.slices import read_file
from mri_core.io.preprocess import (
    Prepared,
    box_to_model,
    brain_crop_box,
    heatmap_to_original,
    prepare,
    prepare_batch,
    to_original_xy,
)


def pixels_of(path: Path) -> np.ndarray:
    [image] = read_file(path)
    return image.pixels


def box_mask(box: tuple[int, int, int, int], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool, True inside the inclusive box (clipped to the image)."""
    x0, y0, x1, y1 = box
    mask = np.zeros(shape, bool)
    mask[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1] = True
    return mask


def bright_square_position(pixels: np.ndarray, image_size: int, centre_xy, half: int):
    """Draw a bright square on a real slice; -> (Prepared, its centre found in the model input)."""
    marked = pixels.copy()
    cx, cy = centre_xy
    marked[cy - half : cy + half + 1, cx - half : cx + half + 1] = 1.0
    plain, prepared = prepare(pixels, image_size), prepare(marked, image_size)
    assert prepared.crop_box == plain.crop_box  # a mark inside the head moves nothing
    change = np.abs(prepared.image[..., 0] - plain.image[..., 0])
    ys, xs = np.nonzero(change > 0.5 * change.max())
    weights = change[ys, xs]
    return prepared, (np.average(xs, weights=weights), np.average(ys, weights=weights))


@pytest.fixture(scope="module")
def tumor_pixels(tumor_image_path: Path) -> np.ndarray:
    return pixels_of(tumor_image_path)  # (218, 180): taller than wide


@pytest.fixture(scope="module")
def wide_pixels(kaggle_dir: Path) -> np.ndarray:
    return pixels_of(kaggle_dir / "no" / "no 9.png")  # (1080, 1920): wide web screenshot


# --- finding the head ---------------------------------------------------------------------


def test_crop_box_holds_the_bright_head_in_real_images(kaggle_dir: Path):
    kept, tighter, checked = 0, 0, 0
    for path in sorted(kaggle_dir.glob("*/*")):
        pixels = pixels_of(path)
        if np.median(np.concatenate([pixels[0], pixels[-1]])) > 0.5:
            continue  # a white page background: "bright" is not the head there
        box = brain_crop_box(pixels)
        x0, y0, x1, y1 = box
        height, width = pixels.shape
        assert 0 <= x0 <= x1 < width and 0 <= y0 <= y1 < height, path.name
        # the brightest tenth, ignoring the thin frames some web images carry at the edge
        inner = np.zeros(pixels.shape, bool)
        inner[5:-5, 5:-5] = True
        bright = inner & (pixels > np.percentile(pixels[inner], 90))
        if not bright.any():
            continue  # a flat slice: nothing to locate
        inside = (bright & box_mask(box, pixels.shape)).sum() / bright.sum()
        kept += inside >= 0.95
        tighter += (x1 - x0 + 1) * (y1 - y0 + 1) < 0.9 * pixels.size
        checked += 1
    assert checked >= 230
    assert kept >= 0.97 * checked
    assert tighter >= 0.4 * checked  # many Kaggle slices carry wide black borders


@pytest.mark.parametrize("name", ["Y107.jpg", "Y114.JPG", "Y115.JPG"])
def test_black_border_is_cropped_away(kaggle_dir: Path, name: str):
    head = pixels_of(kaggle_dir / "yes" / name)  # heads clear of the image edge
    hx0, hy0, hx1, hy1 = brain_crop_box(head)
    assert min(hx0, hy0) > 5 and hx1 < head.shape[1] - 5 and hy1 < head.shape[0] - 5
    padded = np.pad(head, ((60, 40), (100, 30)))  # the same slice on a bigger black page
    x0, y0, x1, y1 = brain_crop_box(padded)
    assert abs(x0 - (hx0 + 100)) <= 2 and abs(x1 - (hx1 + 100)) <= 2
    assert abs(y0 - (hy0 + 60)) <= 2 and abs(y1 - (hy1 + 60)) <= 2


def test_text_labels_do_not_stretch_the_box(tumor_pixels: np.ndarray):
    page = np.pad(tumor_pixels, 120)  # room around the head for labels
    plain_box = brain_crop_box(page)
    labels = np.zeros(page.shape, np.uint8)  # (H, W) white-on-black burnt-in annotations
    cv2.putText(labels, "L 3.0T", (5, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 2)
    cv2.putText(labels, "TR 500", (310, 445), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 1)
    cv2.circle(labels, (400, 60), 5, 255, -1)  # a marker dot
    labelled = np.maximum(page, labels / np.float32(255))
    assert (labelled != page).sum() > 300
    assert np.abs(np.subtract(brain_crop_box(labelled), plain_box)).max() <= 2


def test_overlay_text_of_a_real_scan_stays_outside_the_box(kaggle_dir: Path):
    pixels = pixels_of(kaggle_dir / "no" / "No14.jpg")  # scanner text in the left corners
    x0, y0, x1, y1 = brain_crop_box(pixels)
    assert x0 > 40 and y0 > 30  # the text block sits within x < 40 at top and bottom left


@pytest.mark.parametrize("value", [0.0, 0.4])
def test_blank_image_keeps_the_whole_image(value: float):
    assert brain_crop_box(np.full((50, 70), value, np.float32)) == (0, 0, 69, 49)


# --- the model input ----------------------------------------------------------------------


@pytest.mark.parametrize("image_size", [64, 224])
def test_prepare_gives_a_unit_range_square_input(tumor_pixels: np.ndarray, image_size: int):
    prepared = prepare(tumor_pixels, image_size)
    assert isinstance(prepared, Prepared)
    assert prepared.image.shape == (image_size, image_size, 1)
    assert prepared.image.dtype == np.float32
    assert prepared.image.min() == 0.0 and prepared.image.max() == 1.0
    x0, y0, x1, y1 = prepared.crop_box
    assert x1 - x0 == y1 - y0  # square
    assert prepared.original_shape == (218, 180)


def test_square_box_contains_the_tight_box_about_its_centre(wide_pixels: np.ndarray):
    tx0, ty0, tx1, ty1 = brain_crop_box(wide_pixels)
    x0, y0, x1, y1 = prepare(wide_pixels, 128).crop_box
    assert x0 < tx0 and y0 <= ty0 and x1 > tx1 and y1 >= ty1
    assert abs((x0 + x1) - (tx0 + tx1)) <= 1 and abs((y0 + y1) - (ty0 + ty1)) <= 1


def test_normalisation_ignores_a_few_hot_pixels(tumor_pixels: np.ndarray):
    dim = tumor_pixels * 0.3  # an under-exposed export
    hot = dim.copy()
    hot[100, 90] = 1.0  # one saturated pixel inside the head
    plain, with_hot = prepare(dim, 128).image, prepare(hot, 128).image
    assert plain.max() == 1.0  # stretched to the full range despite the dim export
    assert np.median(np.abs(with_hot - plain)) < 0.01
    # and the dim export prepares like the original
    assert np.abs(plain - prepare(tumor_pixels, 128).image).mean() < 0.01


def test_prepare_batch_stacks_in_order(tumor_pixels, wide_pixels, kaggle_dir: Path):
    third = pixels_of(kaggle_dir / "yes" / "Y92.png")
    batch, prepared = prepare_batch([tumor_pixels, wide_pixels, third], 96)
    assert batch.shape == (3, 96, 96, 1) and batch.dtype == np.float32
    assert [p.original_shape for p in prepared] == [(218, 180), (1080, 1920), (300, 240)]
    np.testing.assert_array_equal(batch[1], prepared[1].image)
    empty, none = prepare_batch([], 96)
    assert empty.shape == (0, 96, 96, 1) and none == []


def test_refuses_what_is_not_a_slice(tumor_pixels: np.ndarray):
    with pytest.raises(NotASlice, match="2-D"):
        prepare(np.zeros((4, 30, 30), np.float32), 64)
    with pytest.raises(SettingsInvalid, match="image size"):
        prepare(tumor_pixels, 0)


# --- mapping back to the original --------------------------------------------------------


@pytest.mark.parametrize("image_size", [64, 224])
@pytest.mark.parametrize("centre_xy", [(90, 110), (50, 60), (135, 170)])
def test_bright_square_maps_back_to_where_it_was_drawn(tumor_pixels, image_size, centre_xy):
    prepared, found = bright_square_position(tumor_pixels, image_size, centre_xy, half=3)
    x0, _, x1, _ = prepared.crop_box
    model_pixel = (x1 - x0 + 1) / image_size  # original pixels per model pixel
    x, y = to_original_xy(found, prepared)
    assert abs(x - centre_xy[0]) <= max(2, model_pixel)
    assert abs(y - centre_xy[1]) <= max(2, model_pixel)


def test_bright_square_maps_back_on_a_large_wide_image(wide_pixels: np.ndarray):
    x0, y0, x1, y1 = brain_crop_box(wide_pixels)
    centre = ((x0 + x1) // 2 + 150, (y0 + y1) // 2 - 100)
    prepared, found = bright_square_position(wide_pixels, 224, centre, half=8)
    x, y = to_original_xy(found, prepared)
    model_pixel = (prepared.crop_box[2] - prepared.crop_box[0] + 1) / 224
    assert abs(x - centre[0]) <= model_pixel and abs(y - centre[1]) <= model_pixel


def test_point_mapping_is_exact_for_a_known_box():
    image = np.zeros((100, 100, 1), np.float32)
    same = Prepared(image=image, crop_box=(0, 0, 99, 99), original_shape=(100, 100))
    assert to_original_xy((37, 81), same) == (37, 81)
    double = Prepared(image=image, crop_box=(10, 20, 209, 219), original_shape=(300, 400))
    # model pixel (5, 7) covers original columns 20-21 and rows 34-35
    x, y = to_original_xy((5, 7), double)
    assert x in (20, 21) and y in (34, 35)
    assert to_original_xy((-50, 1e6), double) == (0, 299)  # clipped to the image


@pytest.mark.parametrize("grid", [None, 30])  # the model-input grid, and a 30x30 conv grid
def test_one_hot_heatmap_peaks_at_the_right_original_pixel(tumor_pixels, grid):
    prepared = prepare(tumor_pixels, 224)
    size = grid or 224
    x0, y0, x1, _ = prepared.crop_box
    per_cell = (x1 - x0 + 1) / size
    for col, row in [(size // 2, size // 3), (size // 4, 3 * size // 4)]:
        cam = np.zeros((size, size), np.float32)
        cam[row, col] = 1.0
        heatmap = heatmap_to_original(cam, prepared)
        assert heatmap.shape == (218, 180) and heatmap.dtype == np.float32
        assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0
        peak_y, peak_x = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        expected_x = x0 + (col + 0.5) * per_cell - 0.5
        expected_y = y0 + (row + 0.5) * per_cell - 0.5
        assert abs(peak_x - expected_x) <= 1 and abs(peak_y - expected_y) <= 1
        if grid is None:
            assert (peak_x, peak_y) == to_original_xy((col, row), prepared)


def test_a_box_drawn_on_the_original_covers_the_same_pixels_of_the_model_input(tumor_pixels):
    """Tumor boxes train the heatmap: a box must land where its pixels went in the model input."""
    half = 6
    centre = (95, 120)
    prepared, found = bright_square_position(tumor_pixels, 128, centre, half)
    x0, y0, x1, y1 = box_to_model((centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half),
                                  prepared.crop_box, 128)
    assert x0 <= found[0] <= x1 and y0 <= found[1] <= y1
    side = (prepared.crop_box[2] - prepared.crop_box[0] + 1) / 128  # original pixels per model pixel
    assert abs((x1 - x0 + 1) - (2 * half + 1) / side) <= 2  # the same size, up to rounding outwards
    assert box_to_model((-500, -500, 10_000, 10_000), prepared.crop_box, 128) == (0, 0, 127, 127)


def test_heatmap_of_a_shrunk_crop_keeps_a_one_pixel_peak():
    pixels = np.zeros((60, 60), np.float32)
    pixels[10:50, 10:50] = 0.8  # a 40 px head: its crop is smaller than the 224 px input
    prepared = prepare(pixels, 224)
    cam = np.zeros((224, 224), np.float32)
    cam[100, 120] = 1.0
    heatmap = heatmap_to_original(cam, prepared)
    peak_y, peak_x = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    assert heatmap.max() > 0
    assert abs(peak_x - to_original_xy((120, 100), prepared)[0]) <= 1
    assert abs(peak_y - to_original_xy((120, 100), prepared)[1]) <= 1


def test_box_beyond_the_border_is_padded_and_clipped(tumor_pixels: np.ndarray):
    # cut the left of the head away, so it touches the left edge of a wide image
    cut = np.pad(tumor_pixels[:, 70:], ((0, 0), (0, 200)))  # (218, 310)
    tight = brain_crop_box(cut)
    assert tight[0] == 0
    prepared = prepare(cut, 128)
    x0, y0, x1, y1 = prepared.crop_box
    assert x0 < 0  # the square grew past the left edge...
    padded_cols = int(-x0 * 128 / (x1 - x0 + 1))
    assert padded_cols >= 2
    assert (prepared.image[:, : padded_cols - 1] == 0).all()  # ...and is black there
    assert to_original_xy((0, 64), prepared)[0] == 0  # a point in the padding clips to x=0

    heatmap = heatmap_to_original(np.ones((30, 30), np.float32), prepared)
    assert heatmap.shape == (218, 310)
    inside = box_mask(prepared.crop_box, heatmap.shape)
    assert np.allclose(heatmap[inside], 1.0) and (heatmap[~inside] == 0).all()

    # a mark on the cut slice still maps back to where it was drawn
    mark = (tight[2] // 2, (tight[1] + tight[3]) // 2)
    prepared, found = bright_square_position(cut, 128, mark, half=3)
    x, y = to_original_xy(found, prepared)
    scale = (prepared.crop_box[2] - prepared.crop_box[0] + 1) / 128
    assert abs(x - mark[0]) <= max(2, scale) and abs(y - mark[1]) <= max(2, scale)


def test_heatmap_values_stay_in_unit_range(tumor_pixels: np.ndarray):
    prepared = prepare(tumor_pixels, 64)
    cam = np.random.default_rng(0).normal(0.5, 1.0, (8, 8)).astype(np.float32)
    cam[0, 0] = np.nan
    heatmap = heatmap_to_original(cam, prepared)
    assert np.isfinite(heatmap).all() and heatmap.min() >= 0 and heatmap.max() <= 1


def test_a_mask_follows_the_images_crop_onto_the_model_input():
    from mri_core.io.preprocess import mask_to_model

    mask = np.zeros((100, 200), np.uint8)
    mask[40:60, 120:140] = 255  # 20 x 20 original pixels
    # a square crop from x 50 to 249 (beyond the right edge, padded) and y -50 to 149: 200 px -> 50 px
    small = mask_to_model(mask, (50, -50, 249, 149), 50)
    assert small.shape == (50, 50) and small.dtype == np.uint8
    ys, xs = np.nonzero(small)
    # x 120..139 is crop 70..89, i.e. model pixels 17.5 .. 22.5: the edge pixels 17 and 22 are half
    # covered and kept (>= 0.5); y 40..59 is crop 90..109, model 22.5 .. 27.5 alike
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (17, 22, 22, 27)
    assert small.sum() == 6 * 6 - 4  # the four corner pixels are only a quarter covered
