"""NIfTI reading: real volumes written with nibabel from shared slices, and nibabel's own sample files."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import nibabel.testing
import numpy as np
import pytest
from scans import nifti_bytes, stack_of

from mri_core.io import nifti
from mri_core.io.errors import MriError, NotASlice, UnreadableImage, UnsupportedFormat
from mri_core.io.reading import describe_warning
from mri_core.io.volume import ORIENTATION_UNKNOWN, available_planes

NIBABEL_SAMPLES = Path(nibabel.testing.data_path)


@pytest.fixture(scope="module")
def stack(kaggle_dir) -> np.ndarray:
    """uint8 (5, 128, 128): five real slices as a small axial volume."""
    return stack_of(sorted((kaggle_dir / "yes").iterdir())[:5], size=128)


@pytest.mark.parametrize("gz, nifti2", [(False, False), (True, False), (True, True)], ids=["nii", "nii.gz", "nifti2"])
def test_volume_written_as_nifti_reads_back_as_the_source_slices(stack, gz, nifti2):
    volume = nifti.read_nifti(nifti_bytes(stack, gz=gz, nifti2=nifti2), "brain.nii")
    assert volume.voxels.shape == stack.shape and volume.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(volume.voxels * 255.0, stack, atol=0.01)


def test_storage_order_does_not_change_the_axial_view(stack):
    """The same head stored left-posterior-superior (x and y flipped, affine says so) looks the same."""
    ras = nifti.read_nifti(nifti_bytes(stack), "ras.nii")
    data = np.transpose(stack[:, ::-1, ::-1], (2, 1, 0))[::-1, ::-1, :]  # flip x and y of the RAS array
    flipped_affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps = nifti.read_nifti(nifti_bytes(np.ascontiguousarray(data), affine=flipped_affine), "lps.nii")
    np.testing.assert_array_equal(lps.voxels, ras.voxels)


def test_four_d_volume_gives_its_first_volume_and_warns(stack):
    data = np.stack([np.transpose(stack[:, ::-1, ::-1], (2, 1, 0)), np.zeros((128, 128, 5), np.uint8)], axis=-1)
    volume = nifti.read_nifti(nifti_bytes(data, affine=np.eye(4)), "fmri.nii")
    assert "4d_first_volume" in volume.warnings
    np.testing.assert_allclose(volume.voxels * 255.0, stack, atol=0.01)


def test_nan_voxels_become_black_and_warn_but_an_all_nan_volume_is_refused(stack):
    values = stack.astype(np.float32)
    values[:, :10, :] = np.nan  # e.g. outside a brain mask
    volume = nifti.read_nifti(nifti_bytes(values), "masked.nii")
    assert "non_finite_voxels" in volume.warnings and np.isfinite(volume.voxels).all()
    assert (volume.voxels[:, :10, :] == 0).all()
    with pytest.raises(UnreadableImage, match=r"nan\.nii: every voxel is NaN"):
        nifti.read_nifti(nifti_bytes(np.full((4, 32, 32), np.nan, np.float32)), "nan.nii")


def test_two_slice_volume_reads_axially_but_a_two_voxel_thin_one_is_not_a_slice(stack):
    two = nifti.read_nifti(nifti_bytes(stack[:2]), "two.nii")
    assert two.count == 2 and available_planes(two) == ("axial",)
    thin = np.zeros((2, 128, 128), np.uint8)  # 2 voxels left-right: axial slices would be 2 px wide
    with pytest.raises(NotASlice, match=r"thin\.nii: its axial slices are only 2x128 pixels"):
        nifti.read_nifti(nifti_bytes(thin + 50, affine=np.eye(4)), "thin.nii")


def test_float_volume_gets_a_robust_window_and_cal_range_wins(stack):
    values = stack.astype(np.float32) * 3.7 + 100.0
    volume = nifti.read_nifti(nifti_bytes(values), "float.nii")
    assert volume.voxels.min() == 0.0 and volume.voxels.max() == 1.0
    image = nib.Nifti1Image(np.transpose(values[:, ::-1, ::-1], (2, 1, 0)), np.eye(4))
    image.header["cal_min"], image.header["cal_max"] = 100.0, 100.0 + 255 * 3.7
    windowed = nifti.read_nifti(image.to_bytes(), "cal.nii")
    np.testing.assert_allclose(windowed.voxels * 255.0, stack, atol=0.01)


def test_damaged_gzip_and_analyze_pairs_get_their_own_errors(stack):
    data = nifti_bytes(stack, gz=True)
    with pytest.raises(UnreadableImage, match="cut.nii.gz"):
        nifti.read_nifti(data[: len(data) // 2], "cut.nii.gz")
    with pytest.raises(UnsupportedFormat, match=r"separate \.img"):
        nifti.read_nifti((NIBABEL_SAMPLES / "nifti1.hdr").read_bytes(), "nifti1.hdr")


def test_nibabel_sample_files_are_read_or_refused_with_a_clear_error(capfd):
    samples = sorted(p for p in NIBABEL_SAMPLES.iterdir() if p.name.endswith((".nii", ".nii.gz", ".hdr", ".mgz")))
    assert len(samples) >= 8, "nibabel ships its sample files"
    outcomes = {}
    for path in samples:
        try:
            volume = nifti.read_nifti(path.read_bytes(), path.name)
            assert volume.voxels.dtype == np.float32 and 0 <= volume.voxels.min() <= volume.voxels.max() <= 1
            outcomes[path.name] = "read"
        except MriError as exc:
            assert path.name in str(exc) and len(str(exc)) > len(path.name) + 30
            outcomes[path.name] = type(exc).__name__
    for name in ("anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz", "reoriented_anat_moved.nii"):
        assert outcomes[name] == "read", name
    assert outcomes["row_major.dconn.nii"] == "NotASlice" and outcomes["analyze.hdr"] == "UnsupportedFormat"
    assert capfd.readouterr().err == ""


def ras_array(stack: np.ndarray) -> np.ndarray:
    """(Z, H, W) axial slices as viewed -> the (X, Y, Z) RAS+ array they come from."""
    return np.ascontiguousarray(np.transpose(stack[:, ::-1, ::-1], (2, 1, 0)))


def test_volume_without_qform_or_sform_reads_but_warns_that_its_orientation_is_unknown(stack):
    """The issue's case: axes swapped in storage and nothing in the header to say so."""
    placed = nifti.read_nifti(nifti_bytes(stack), "placed.nii")
    assert ORIENTATION_UNKNOWN not in placed.warnings
    swapped = np.ascontiguousarray(np.transpose(ras_array(stack), (1, 0, 2)))  # stored (Y, X, Z)
    for nifti2 in (False, True):
        image = (nib.Nifti2Image if nifti2 else nib.Nifti1Image)(swapped, None)  # qform and sform codes 0
        assert int(image.header["qform_code"]) == int(image.header["sform_code"]) == 0
        unknown = nifti.read_nifti(image.to_bytes(), "unplaced.nii")
        assert ORIENTATION_UNKNOWN in unknown.warnings
        assert np.abs(unknown.voxels * 255.0 - stack).mean() > 10  # it is read sideways: hence the warning
    assert "sideways" in describe_warning(ORIENTATION_UNKNOWN)


def with_srow_z(data: bytes, row) -> bytes:
    """NIfTI-1 bytes with the sform's third row (srow_z, bytes 312-327) overwritten: nibabel will not
    write an affine it cannot decompose, but a file may hold one."""
    out = bytearray(data)
    out[312:328] = np.asarray(row, "<f4").tobytes()
    return bytes(out)


def test_unusable_affine_reads_in_storage_order_and_warns(stack):
    data = nifti_bytes(stack)  # sform code 2 (aligned), identity affine
    for row in ([0, 0, 0, 0], [np.nan, 0, 1, 0]):  # drops the z axis / not a number
        volume = nifti.read_nifti(with_srow_z(data, row), "odd.nii")
        assert ORIENTATION_UNKNOWN in volume.warnings
        np.testing.assert_allclose(volume.voxels * 255.0, stack, atol=0.01)  # stored RAS order kept


def test_volume_stored_sagittally_gives_axial_slices_with_their_own_voxel_sides(stack):
    """Storage axes (S, A, R) with voxels of 3 x 1 x 0.5 mm: axial slices, and each side's size follows it."""
    stored = np.ascontiguousarray(np.transpose(ras_array(stack), (2, 1, 0)))
    affine = np.array([[0, 0, 0.5, 0], [0, 1.0, 0, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
    volume = nifti.read_nifti(nifti_bytes(stored, affine=affine), "sagittal.nii")
    np.testing.assert_allclose(volume.voxels * 255.0, stack, atol=0.01)
    assert volume.spacing == (3.0, 1.0, 0.5) and volume.warnings == ()
