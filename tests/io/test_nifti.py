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
from mri_core.io.volume import available_planes

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
