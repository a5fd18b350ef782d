"""mri_core.io.formats: what a file is, told from its bytes; "DICM" after the preamble wins over a
TIFF (or any) header inside the preamble."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pydicom.data
import pytest
from PIL import Image
from scans import dicom_bytes, grey_uint8, nifti_bytes

from mri_core.io import dicom, slices
from mri_core.io.formats import sniff_format

PYDICOM_SAMPLES = Path(pydicom.data.__file__).parent / "test_files"
# pydicom's own files whose 128-byte preamble holds a TIFF header (dual-personality files); the
# issue found each refused as "starts like a TIFF file but its header is damaged".
DUAL_PERSONALITY = ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
                    "MR_small_implicit.dcm", "MR_small_padded.dcm", "CT_small.dcm", "examples_rgb_color.dcm")


def saved(pixels: np.ndarray, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, image_format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def source(tumor_image_path) -> np.ndarray:
    return grey_uint8(tumor_image_path)


def test_each_format_is_told_from_its_first_bytes(source):
    for image_format, name in (("PNG", "PNG"), ("JPEG", "JPEG"), ("BMP", "BMP"), ("TIFF", "TIFF"), ("GIF", "GIF"),
                               ("WEBP", "WEBP")):
        assert sniff_format(saved(source, image_format)) == name, image_format
    big_endian_tiff = b"MM\x00*" + saved(source, "TIFF")[4:]  # only the first bytes are looked at
    assert sniff_format(big_endian_tiff) == "TIFF"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("series/IM1", dicom_bytes(source))
    assert sniff_format(archive.getvalue()) == "ZIP"
    assert sniff_format(dicom_bytes(source)) == sniff_format(dicom_bytes(source, preamble=False)) == "DICOM"
    for gz in (False, True):
        assert sniff_format(nifti_bytes(source[None], gz=gz)) == "NIFTI"
    assert sniff_format(b"Patient notes: nothing to see here.\n" * 10) is None
    assert sniff_format(b"") is None


@pytest.mark.parametrize("name", DUAL_PERSONALITY)
def test_pydicom_files_with_a_tiff_header_in_the_preamble_are_dicom(name):
    data = (PYDICOM_SAMPLES / name).read_bytes()
    assert data[:4] in (b"II*\x00", b"MM\x00*") and data[128:132] == b"DICM"
    assert sniff_format(data) == "DICOM"
    [volume] = slices.read_volumes([(name, data)])
    [values] = dicom.modality_values([(name, data)])
    assert volume.voxels.shape == values.shape and volume.voxels.max() > volume.voxels.min()


def test_a_real_tiff_in_the_preamble_does_not_change_the_pixels(source):
    """A DICOM written from a real slice, its preamble replaced by the first 128 bytes of that
    slice saved as TIFF, reads exactly like the same file with an empty preamble."""
    plain = dicom_bytes(source)
    tiff = saved(source, "TIFF")
    dual = tiff[:128] + plain[128:]
    assert sniff_format(tiff) == "TIFF" and sniff_format(dual) == "DICOM"
    [read_dual] = slices.read_volumes([("dual.dcm", dual)])
    [read_plain] = slices.read_volumes([("plain.dcm", plain)])
    np.testing.assert_array_equal(read_dual.voxels, read_plain.voxels)
    np.testing.assert_allclose(read_dual.voxels[0] * 255.0, source, atol=0.01)
    # and the TIFF itself still reads as the plain image it is
    [as_tiff] = slices.read_volumes([("slice.tif", tiff)])
    np.testing.assert_allclose(as_tiff.voxels[0] * 255.0, source, atol=0.01)
