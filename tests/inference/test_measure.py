"""Measuring outlined tumors: exact cases whose answers are worked out by hand here, on masks and
real DICOM / NIfTI files written by pydicom and nibabel (the spacing comes through the readers)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mri_core.inference.measure import max_diameter, slice_thicknesses, volume_summary
from mri_core.io import dicom, nifti
from mri_core.io.volume import make_volume
from tests.scans import dicom_bytes, nifti_bytes


def test_diameter_of_a_bar_a_rectangle_and_a_pixel():
    bar = np.zeros((10, 10), bool)
    bar[3, 2:7] = True  # centres x = 2 ... 6: 4 pixels apart
    assert max_diameter(bar) == (4.0, None)
    assert max_diameter(bar, spacing=(2.0, 0.5)) == (4.0, pytest.approx(4 * 0.5))  # along a row: column spacing

    box = np.zeros((10, 10), bool)
    box[0:3, 0:4] = True  # corners (0, 0) and (3, 2): 3 columns and 2 rows apart
    px, mm = max_diameter(box, spacing=(2.0, 0.5))
    assert px == pytest.approx(math.sqrt(3 ** 2 + 2 ** 2))
    assert mm == pytest.approx(math.sqrt((3 * 0.5) ** 2 + (2 * 2.0) ** 2))

    dot = np.zeros((5, 5), bool)
    dot[2, 2] = True
    assert max_diameter(dot, (1.0, 1.0)) == (0.0, 0.0)
    assert max_diameter(np.zeros((5, 5), bool)) is None


def test_diameter_spans_separate_parts_and_ignores_bad_spacing():
    mask = np.zeros((20, 30), bool)
    mask[2:4, 2:4] = True
    mask[15, 25] = True  # farthest pair: (2, 2) and (25, 15)
    px, mm = max_diameter(mask, spacing=(0.0, 1.0))
    assert px == pytest.approx(math.hypot(23, 13)) and mm is None


def test_nifti_volume_with_anisotropic_zooms_counted_two_ways():
    """A label volume of known voxels, 0.5 x 0.8 x 3.0 mm: per-slice areas x thickness equal the
    voxel count x the voxel volume."""
    labels = np.zeros((40, 30, 12), np.uint8)  # (x, y, z) as stored, RAS+
    labels[10:20, 5:15, 3:7] = 200  # 10 x 10 x 4 = 400 voxels
    labels[12:14, 20:23, 5] = 200  # + 2 x 3 x 1 = 6 voxels
    affine = np.diag([0.5, 0.8, 3.0, 1.0])
    volume = nifti.read_nifti(nifti_bytes(labels, affine=affine), "labels.nii")
    masks = [s > 0.5 for s in volume.voxels]
    summary = volume_summary(masks, volume)
    assert summary["volume_ml"] == pytest.approx(406 * 0.5 * 0.8 * 3.0 / 1000)
    assert summary["slices_with_tumor"] == [3, 4, 5, 6]
    assert summary["spacing_source"] == "NIfTI zooms"
    # slice 5: the block (x 10..19, y 5..14) and the bar (x 12..13, y 20..22); the farthest centres are
    # (19, 5) and (12, 22): 7 x-steps of 0.5 mm and 17 y-steps of 0.8 mm
    assert summary["max_diameter_mm"] == pytest.approx(math.hypot(7 * 0.5, 17 * 0.8))
    assert summary["areas_px"][5] == 106 and summary["areas_mm2"][5] == pytest.approx(106 * 0.4)


def test_dicom_series_with_uneven_slice_positions():
    """Slices at z = 0, 2, 3, 7 mm: each spans midpoint to midpoint, the ends mirror their one gap,
    so the thicknesses are 2, 1.5, 2.5, 4 mm whatever SliceThickness says."""
    pixels = np.zeros((32, 32), np.uint16)
    files = [(f"s{i}.dcm", dicom_bytes(pixels + i, position=z, instance=i + 1, SliceThickness=1.0))
             for i, z in enumerate([7.0, 0.0, 3.0, 2.0])]  # stored out of order
    [volume] = dicom.read_dicom(files)
    thickness, source = slice_thicknesses(volume)
    assert source == "ImagePositionPatient"
    assert thickness.tolist() == pytest.approx([2.0, 1.5, 2.5, 4.0])
    masks = [np.zeros((32, 32), bool) for _ in range(4)]
    masks[1][0:10, 0:10] = True  # 100 px at 0.5 x 0.5 mm = 25 mm2 on the slice at z = 2
    masks[3][0:2, 0:5] = True  # 10 px = 2.5 mm2 on the slice at z = 7
    summary = volume_summary(masks, volume)
    assert summary["volume_ml"] == pytest.approx((25 * 1.5 + 2.5 * 4.0) / 1000)
    assert summary["slices_with_tumor"] == [1, 3]
    assert summary["max_diameter_mm"] == pytest.approx(math.hypot(9, 9) * 0.5)


def test_dicom_series_without_positions_falls_back_to_the_spacing_tags():
    pixels = np.zeros((32, 32), np.uint16)
    spaced = [(f"s{i}.dcm", dicom_bytes(pixels + i, instance=i + 1, SpacingBetweenSlices=4.0, SliceThickness=3.0))
              for i in range(3)]
    thickness, source = slice_thicknesses(dicom.read_dicom(spaced)[0])
    assert source == "SpacingBetweenSlices" and thickness.tolist() == [4.0, 4.0, 4.0]
    thick = [(f"s{i}.dcm", dicom_bytes(pixels + i, instance=i + 1, SliceThickness=3.0)) for i in range(3)]
    assert slice_thicknesses(dicom.read_dicom(thick)[0])[1] == "SliceThickness"
    bare = [(f"s{i}.dcm", dicom_bytes(pixels + i, instance=i + 1)) for i in range(3)]
    volume = dicom.read_dicom(bare)[0]
    assert slice_thicknesses(volume) == (None, "unknown")
    masks = [np.ones((32, 32), bool)] * 3
    summary = volume_summary(masks, volume)
    assert summary["volume_ml"] is None and summary["max_diameter_mm"] == pytest.approx(math.hypot(31, 31) * 0.5)
    assert summary["areas_mm2"] == [256.0] * 3  # the pixel spacing is still known


def test_a_stack_without_any_spacing_measures_in_pixels_only():
    volume = make_volume(np.zeros((3, 20, 20), np.float32), "stack")
    masks = [None, np.pad(np.ones((2, 2), bool), 9), None]
    summary = volume_summary(masks, volume)
    assert summary == {"volume_ml": None, "slices_with_tumor": [1], "max_diameter_mm": None,
                       "max_diameter_px": pytest.approx(math.sqrt(2)), "spacing_source": "unknown",
                       "areas_px": [0, 4, 0], "areas_mm2": None}
    with pytest.raises(ValueError, match="one mask per axial slice"):
        volume_summary(masks[:2], volume)


def test_reformatted_planes_use_the_voxel_side_across_them():
    volume = make_volume(np.zeros((20, 20, 20), np.float32), "iso", spacing=(1.0, 1.0, 1.0),
                         thickness_source="NIfTI zooms")
    thickness, source = slice_thicknesses(volume, "coronal")
    assert source == "NIfTI zooms" and thickness.shape == (20,) and set(thickness) == {1.0}
