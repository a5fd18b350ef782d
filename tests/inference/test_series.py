"""A series' tumor summary from its streamed readings: places and thicknesses of real DICOM and NIfTI
files (written by pydicom and nibabel), and summaries of masks whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mri_core.inference.measure import volume_summary
from mri_core.inference.segmentation import lesion_of
from mri_core.inference.series import SeriesTally, placed_slices
from mri_core.io import dicom, nifti
from mri_core.io.reading import Reading
from mri_core.io.volume import make_volume
from tests.scans import dicom_bytes, nifti_bytes


def _series(positions):
    pixels = np.full((32, 32), 100, np.uint16)
    files = [(f"s/IM{i}", dicom_bytes(pixels, position=z)) for i, z in enumerate(positions)]
    [volume] = dicom.read_dicom(files)
    return volume


def _reading(mask, index, spacing, segments=True):
    """A Reading as the reading path makes it: its lesion measured on its mask (None when empty)."""
    return Reading(source="s", label="glioma", tumor=True, tumor_probability=0.9, threshold=0.5,
                   probabilities={"glioma": 0.9, "notumor": 0.1}, heatmap=None, cam_peak=None, cam_box=None,
                   warnings=(), model="seg@1", verdict="tumor", slice_index=index,
                   lesion=lesion_of(mask, spacing) if segments else None, mask=mask if segments else None)


def test_places_carry_each_slices_thickness_and_where_the_spacing_came_from():
    volume = _series([0.0, 3.0, 4.0])  # gaps 3 and 1 mm: midpoints give 3, 2 and 1 mm (ends mirror their gap)
    placed = placed_slices(volume, number=1, choice="all")
    assert [s.index for s, _ in placed] == [0, 1, 2]
    assert [p.thickness_mm for _, p in placed] == pytest.approx([3.0, 2.0, 1.0])
    assert {(p.thickness_source, p.pixel_spacing, p.pixel_spacing_source, p.number, p.read, p.whole)
            for _, p in placed} == {("ImagePositionPatient", (0.5, 0.5), "DICOM PixelSpacing", 1, 3, True)}
    assert [(p.ordinal, p.last) for _, p in placed] == [(0, False), (1, False), (2, True)]
    [(one, place)] = placed_slices(volume, choice=2)
    assert one.index == 2 and place.thickness_mm == pytest.approx(1.0) and not place.whole and place.last

    labels = np.zeros((20, 24, 3), np.uint8)
    labels[5:10, 5:10, :] = 200
    zooms = nifti.read_nifti(nifti_bytes(labels, affine=np.diag([0.5, 0.8, 3.0, 1.0])), "labels.nii")
    [(_, place)] = placed_slices(zooms)  # the middle slice
    assert (place.thickness_mm, place.thickness_source, place.pixel_spacing, place.pixel_spacing_source) == (
        pytest.approx(3.0), "NIfTI zooms", pytest.approx((0.8, 0.5)), "NIfTI zooms")

    flat = make_volume(np.zeros((1, 32, 32), np.float32), "plain.png")
    [(_, place)] = placed_slices(flat, choice="all")
    assert (place.thickness_mm, place.thickness_source, place.pixel_spacing, place.pixel_spacing_source) == (
        None, "unknown", None, None)


def test_a_tally_of_readings_gives_volume_summarys_figures_worked_out_by_hand():
    volume = _series([0.0, 3.0, 4.0])
    masks = [np.zeros((32, 32), bool) for _ in range(3)]
    masks[0][2:6, 2:5] = True  # 4 rows x 3 cols = 12 px; corners 3 rows and 2 cols apart
    masks[2][10:20, 4] = True  # a bar of 10 px, 9 rows end to end
    tally = SeriesTally()
    for (slice_, place), mask in zip(placed_slices(volume, choice="all"), masks):
        tally.add(_reading(mask, slice_.index, slice_.spacing), place)
    summary = tally.summary()
    # 12 px x 0.25 mm2 x 3 mm + 0 + 10 px x 0.25 mm2 x 1 mm = 9 + 2.5 mm3
    assert summary["volume_ml"] == pytest.approx(11.5 / 1000)
    assert summary["slices_with_tumor"] == [0, 2]
    assert summary["max_diameter_mm"] == pytest.approx(9 * 0.5)  # the bar: 9 steps of 0.5 mm
    assert summary["max_diameter_px"] == pytest.approx(9.0)
    assert summary["spacing_source"] == "ImagePositionPatient"
    assert summary["areas_px"] == [12, 0, 10] and summary["areas_mm2"] == pytest.approx([3.0, 0.0, 2.5])
    whole = volume_summary(masks, volume)  # the same figures as measuring the masks and volume at once
    assert summary == {**whole, "volume_ml": pytest.approx(whole["volume_ml"]),
                       "areas_mm2": pytest.approx(whole["areas_mm2"])}
    assert math.isclose(summary["max_diameter_mm"], whole["max_diameter_mm"])


def test_a_tally_without_spacing_or_without_masks_says_so_with_nones():
    flat = make_volume(np.zeros((3, 32, 32), np.float32), "stack")  # no spacing at all
    mask = np.zeros((32, 32), bool)
    mask[0, 0:4] = True
    tally, unsegmented = SeriesTally(), SeriesTally()
    for slice_, place in placed_slices(flat, choice="all"):
        tally.add(_reading(mask, slice_.index, slice_.spacing), place)
        unsegmented.add(_reading(mask, slice_.index, slice_.spacing, segments=False), place)
    summary = tally.summary()
    assert (summary["volume_ml"], summary["areas_mm2"], summary["max_diameter_mm"]) == (None, None, None)
    assert summary["slices_with_tumor"] == [0, 1, 2] and summary["max_diameter_px"] == pytest.approx(3.0)
    assert summary["spacing_source"] == "unknown"
    assert unsegmented.summary() == {"volume_ml": None, "slices_with_tumor": None, "max_diameter_mm": None,
                                     "max_diameter_px": None, "areas_px": None, "areas_mm2": None,
                                     "spacing_source": "unknown"}
