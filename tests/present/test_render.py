"""render: the overlay a clinician looks at, drawn on a real MRI slice."""

from __future__ import annotations

import io as _io

import numpy as np
import pytest
from PIL import Image

from mri_core.io import slices as io

from mri_core.present import render


@pytest.fixture(scope="module")
def scan(tumor_image_path) -> np.ndarray:
    return io.read_file(tumor_image_path)[0].pixels


@pytest.fixture(scope="module")
def heatmap(scan) -> np.ndarray:
    """A smooth blob at the upper left third, as Grad-CAM maps look at original size."""
    height, width = scan.shape
    ys, xs = np.mgrid[0:height, 0:width]
    blob = np.exp(-(((xs - width / 3) / (width / 8)) ** 2 + ((ys - height / 3) / (height / 8)) ** 2))
    return blob.astype(np.float32)


def test_overlay_is_rgb_uint8_at_the_scan_size(scan, heatmap):
    rgb = render.overlay(scan, heatmap)
    assert rgb.shape == (*scan.shape, 3)
    assert rgb.dtype == np.uint8


def test_opacity_zero_shows_the_grey_scan_unchanged(scan, heatmap):
    rgb = render.overlay(scan, heatmap, opacity=0.0)
    expected = np.round(scan * 255).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[:, :, channel], expected)


def test_no_heatmap_shows_the_grey_scan(scan):
    np.testing.assert_array_equal(render.overlay(scan, None, opacity=0.8), render.overlay(scan, None, opacity=0.0))
    rgb = render.overlay(scan, None)
    assert (rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all()


def test_heatmap_colours_the_hot_spot_red_and_more_with_opacity(scan, heatmap):
    height, width = scan.shape
    hot_y, hot_x = int(height / 3), int(width / 3)
    faint = render.overlay(scan, heatmap, opacity=0.2).astype(int)
    strong = render.overlay(scan, heatmap, opacity=0.9).astype(int)
    # at the hot spot red dominates blue; stronger opacity pushes it further from grey
    assert strong[hot_y, hot_x, 0] > strong[hot_y, hot_x, 2] + 100
    spread = lambda rgb: rgb[hot_y, hot_x].max() - rgb[hot_y, hot_x].min()  # noqa: E731
    assert spread(strong) > spread(faint)


def test_box_edges_are_drawn_in_the_box_colour(scan, heatmap):
    box = (20, 30, 120, 110)
    rgb = render.overlay(scan, heatmap, box=box)
    x0, y0, x1, y1 = box
    for x, y in [(x0, y0), (x1, y1), ((x0 + x1) // 2, y0), (x0, (y0 + y1) // 2), (x1, (y0 + y1) // 2)]:
        assert tuple(rgb[y, x]) == render.BOX_RGB
    # inside the box the scan/heatmap is untouched
    inside = render.overlay(scan, heatmap)
    np.testing.assert_array_equal(rgb[y0 + 10:y1 - 10, x0 + 10:x1 - 10], inside[y0 + 10:y1 - 10, x0 + 10:x1 - 10])


def test_peak_is_marked_with_a_cross(scan, heatmap):
    peak = (scan.shape[1] // 3, scan.shape[0] // 3)
    plain = render.overlay(scan, heatmap)
    marked = render.overlay(scan, heatmap, peak=peak)
    assert tuple(marked[peak[1], peak[0]]) == render.PEAK_RGB
    changed_y, changed_x = np.nonzero((marked != plain).any(axis=2))
    # the mark is small and centred on the peak
    assert abs(changed_x.mean() - peak[0]) < 3 and abs(changed_y.mean() - peak[1]) < 3
    assert len(changed_x) < 0.02 * scan.size


def test_line_width_grows_with_the_image(scan):
    def top_edge_thickness(rgb, box):
        x0, y0, x1, _ = box
        column = rgb[max(0, y0 - 10):y0 + 20, (x0 + x1) // 2]
        return int((column == render.BOX_RGB).all(axis=1).sum())

    small_box, big_box = (10, 20, 60, 60), (40, 80, 240, 240)
    small = render.overlay(scan, None, box=small_box)
    big_scan = np.kron(scan, np.ones((4, 4), np.float32))  # same slice, 4x the pixels a side
    big = render.overlay(big_scan, None, box=big_box)
    assert top_edge_thickness(big, big_box) > top_edge_thickness(small, small_box) >= 1


def test_mismatched_heatmap_and_bad_opacity_are_refused(scan, heatmap):
    with pytest.raises(ValueError, match="does not match the scan"):
        render.overlay(scan, heatmap[:-1])
    with pytest.raises(ValueError, match="opacity"):
        render.overlay(scan, heatmap, opacity=1.5)


def test_to_png_round_trips(scan, heatmap):
    rgb = render.overlay(scan, heatmap, peak=(30, 40), box=(10, 10, 80, 90))
    decoded = np.asarray(Image.open(_io.BytesIO(render.to_png(rgb))))
    np.testing.assert_array_equal(decoded, rgb)


def test_cold_areas_keep_the_plain_scan(scan, heatmap):
    rgb = render.overlay(scan, heatmap, opacity=1.0)
    cold = heatmap < 1e-3  # far from the blob: no evidence
    grey = render.grey_rgb(scan)
    assert cold.any()
    assert np.abs(rgb[cold].astype(int) - grey[cold].astype(int)).max() <= 1


def test_the_mask_is_drawn_as_a_plain_outline_along_its_edge(scan, heatmap):
    """Issue 21: the tumor mask shows as its outline; inside and outside it the picture is untouched."""
    mask = np.zeros(scan.shape, bool)
    mask[40:90, 50:120] = True
    plain = render.overlay(scan, heatmap, 0.5)
    outlined = render.overlay(scan, heatmap, 0.5, mask=mask)
    assert tuple(outlined[40, 80]) == render.OUTLINE_RGB and tuple(outlined[89, 119]) == render.OUTLINE_RGB
    changed = (outlined != plain).any(axis=2)
    edge = mask & ~np.pad(mask, 1)[2:, 1:-1] | mask & ~np.pad(mask, 1)[:-2, 1:-1] \
        | mask & ~np.pad(mask, 1)[1:-1, 2:] | mask & ~np.pad(mask, 1)[1:-1, :-2]
    from scipy import ndimage

    near_edge = ndimage.binary_dilation(edge, iterations=max(2, render._line_width(scan.shape, render.OUTLINE_WIDTH_FRACTION)) + 2)
    assert changed[edge].all() and not changed[~near_edge].any()
    np.testing.assert_array_equal(render.overlay(scan, heatmap, 0.5, mask=np.zeros(scan.shape, bool)), plain)
    with pytest.raises(ValueError, match="does not match the scan"):
        render.overlay(scan, heatmap, mask=mask[:-1])


def test_the_outline_is_wider_on_a_bigger_image_and_has_a_black_rim(scan):
    """Thickness scales with the image (OpenCV draws a width of 2 as 3 px): wider at every doubling,
    always with one black pixel either side."""
    def outline_thickness(side: int) -> tuple[int, int]:
        mask = np.zeros((side, side), bool)
        mask[side // 4:3 * side // 4, side // 4:3 * side // 4] = True
        column = render.overlay(np.full((side, side), 0.5, np.float32), None, mask=mask)[:, side // 2]
        white = int((column == render.OUTLINE_RGB).all(axis=1)[: side // 2].sum())
        black = int((column == render.OUTLINE_EDGE_RGB).all(axis=1)[: side // 2].sum())
        return white, black

    (small, small_rim), (medium, medium_rim), (large, large_rim) = (outline_thickness(side) for side in (256, 512, 1024))
    assert 2 <= small < medium < large and large >= 8
    assert small_rim == medium_rim == large_rim == 2
    assert outline_thickness(128)[0] >= 2, "a small scan still gets a line that shows when enlarged"


@pytest.fixture(scope="module")
def tumor_reading(scan, heatmap):
    """A reading as a segmenting model gives it: heatmap, peak, box and a mask at the scan's size."""
    from mri_core.io.reading import Reading

    mask = np.zeros(scan.shape, bool)
    mask[40:90, 50:120] = True
    return Reading(source="scan.jpg", label="glioma", tumor=True, tumor_probability=0.9, threshold=0.5,
                   probabilities={"glioma": 0.9, "notumor": 0.1}, heatmap=heatmap,
                   cam_peak=(scan.shape[1] // 3, scan.shape[0] // 3), cam_box=(20, 30, 120, 110),
                   warnings=(), model="m@1", verdict="tumor", mask=mask,
                   lesion={"area_px": int(mask.sum()), "area_mm2": None, "box": (50, 40, 119, 89)})


def test_each_layer_is_drawn_only_when_chosen(scan, tumor_reading):
    """The Diagnose page's checkboxes: the outline, the heatmap, its box and its peak, each on its own."""
    r = tumor_reading
    def drawn(*layers):
        return render.reading_overlay(scan, r, layers, 0.5)

    np.testing.assert_array_equal(drawn("outline"), render.overlay(scan, None, mask=r.mask))
    np.testing.assert_array_equal(drawn("heatmap"), render.overlay(scan, r.heatmap, 0.5))
    np.testing.assert_array_equal(drawn("box"), render.overlay(scan, None, box=r.cam_box))
    np.testing.assert_array_equal(drawn("peak"), render.overlay(scan, None, peak=r.cam_peak))
    np.testing.assert_array_equal(drawn(*render.LAYERS), render.overlay(scan, r.heatmap, 0.5, r.cam_peak, r.cam_box, r.mask))
    np.testing.assert_array_equal(render.reading_overlay(scan, r), render.overlay(scan, r.heatmap, 0.4, r.cam_peak,
                                                                                    r.cam_box, r.mask))
    np.testing.assert_array_equal(drawn(), render.grey_rgb(scan))
    assert tuple(drawn("outline")[40, 80]) == render.OUTLINE_RGB and tuple(drawn("heatmap")[40, 80]) != render.OUTLINE_RGB
    assert (drawn("outline")[:, :, 0] == drawn("outline")[:, :, 2]).all(), "outline alone: no heatmap colour, no box"
    # opacity 0 hides the heatmap alone: the box and the peak cover nothing unless chosen
    np.testing.assert_array_equal(render.reading_overlay(scan, r, ("outline", "heatmap"), 0.0), drawn("outline"))
    with pytest.raises(ValueError, match="choose among outline, heatmap, box, peak"):
        render.reading_overlay(scan, r, ("mask",))


def test_the_heatmap_is_transparent_below_its_floor_and_fades_in_to_the_opacity():
    """HEATMAP_FLOOR 0.2: values 0 and 0.2 draw nothing; 0.6 is half way up the ramp; 1 gets the opacity."""
    assert render.HEATMAP_FLOOR == 0.2
    alpha = render.heatmap_alpha(np.array([[0.0, 0.2, 0.6, 1.0]], np.float32), 0.5)
    np.testing.assert_allclose(alpha, [[0.0, 0.0, 0.25, 0.5]], atol=1e-6)
    scan = np.full((32, 32), 0.5, np.float32)
    weak = np.full((32, 32), 0.15, np.float32)  # diffuse evidence over the whole slice: the scan stays grey
    np.testing.assert_array_equal(render.overlay(scan, weak, opacity=1.0), render.grey_rgb(scan))


def test_an_unreadable_image_gets_no_heatmap_whatever_is_chosen(scan, tumor_reading):
    unreadable = tumor_reading.__class__(**{**tumor_reading.__dict__, "verdict": "cannot_read",
                                            "mask": np.zeros(scan.shape, bool), "lesion": None})
    for layers in (render.LAYERS, render.EVIDENCE_LAYERS, ("box",), ("peak",)):
        np.testing.assert_array_equal(render.reading_overlay(scan, unreadable, layers, 0.9), render.grey_rgb(scan))
