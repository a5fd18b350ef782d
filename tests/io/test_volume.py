"""Volumes: planes through a stack of real slices, and the shared window."""

from __future__ import annotations

import numpy as np
import pytest
from scans import stack_of

from mri_core.io.errors import NotASlice, UnreadableImage
from mri_core.io.volume import (available_planes, make_volume, middle_index, plane_count, plane_slice,
                             plane_spacing, window_volume)


@pytest.fixture(scope="module")
def cube(kaggle_dir):
    """(32, 64, 64) volume of real slices with 1 mm isotropic voxels."""
    stack = stack_of(sorted((kaggle_dir / "yes").iterdir())[:32], size=64).astype(np.float32) / 255.0
    return make_volume(stack, "cube.nii", spacing=(1.0, 1.0, 1.0))


def test_isotropic_volume_offers_three_planes_with_superior_at_the_top(cube):
    assert available_planes(cube) == ("axial", "coronal", "sagittal")
    assert [plane_count(cube, p) for p in ("axial", "coronal", "sagittal")] == [32, 64, 64]
    assert middle_index(cube) == 16
    coronal = plane_slice(cube, 10, "coronal")
    assert coronal.shape == (32, 64)
    np.testing.assert_array_equal(coronal[0], cube.voxels[-1, 10, :])  # top row = the most superior slice
    np.testing.assert_array_equal(plane_slice(cube, 5, "sagittal")[-1], cube.voxels[0, :, 5])
    np.testing.assert_array_equal(plane_slice(cube, 3), cube.voxels[3])


def test_anisotropic_volume_is_axial_only(cube):
    thick = make_volume(cube.voxels, "thick.dcm", spacing=(5.0, 0.5, 0.5))
    assert available_planes(thick) == ("axial",) and plane_spacing(thick) == (0.5, 0.5)
    with pytest.raises(NotASlice, match="isotropic"):
        plane_slice(thick, 0, "coronal")


def test_slice_out_of_range_names_the_valid_range(cube):
    with pytest.raises(NotASlice, match="choose 0 to 31"):
        plane_slice(cube, 32)


def test_window_is_shared_by_every_slice_and_ignores_hot_voxels():
    values = np.tile(np.linspace(0, 1000, 64, dtype=np.float32), (4, 64, 1))
    values[0, 0, 0] = 1e6
    windowed, notes = window_volume(values, "v.nii")
    assert notes == () and windowed[1:, :, -1].min() > 0.9  # the hot voxel does not darken the rest
    np.testing.assert_array_equal(windowed[1], windowed[2])
    with pytest.raises(UnreadableImage):
        window_volume(np.full((2, 16, 16), np.inf, np.float32), "inf.nii")


def test_the_pixel_spacing_says_where_it_came_from():
    """DICOM gives it in PixelSpacing, NIfTI in its zooms; a plain image gives none."""
    from scans import dicom_bytes, nifti_bytes

    from mri_core.io import dicom, nifti

    pixels = np.full((32, 32), 100, np.uint16)
    [series] = dicom.read_dicom([(f"s/IM{i}", dicom_bytes(pixels, position=float(i))) for i in range(2)])
    [single] = dicom.read_dicom([("one.dcm", dicom_bytes(pixels))])  # no position, so no thickness source
    zooms = nifti.read_nifti(nifti_bytes(np.zeros((2, 32, 32), np.uint8)), "v.nii")
    plain = make_volume(np.zeros((1, 32, 32), np.float32), "scan.png")
    assert [v.pixel_spacing_source for v in (series, single, zooms, plain)] == [
        "DICOM PixelSpacing", "DICOM PixelSpacing", "NIfTI zooms", None]
