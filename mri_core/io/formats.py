"""What a file is, told from its first bytes, never from its name: `sniff_format`.

The decoders (`raster`, `dicom`, `nifti`) and the readers above them (`slices`) ask it; the
format names it gives ("PNG", "JPEG", ..., "ZIP", "DICOM", "NIFTI") are the ones messages
use. Never imports streamlit.
"""

from __future__ import annotations

from mri_core.io import dicom, nifti
from mri_core.io.zips import is_zip

# Plain image formats, keyed by how the bytes start (WebP: below).
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)
READABLE_FORMATS_TEXT = "PNG, JPEG, BMP, TIFF, GIF or WebP"
SCAN_FORMATS_TEXT = "DICOM (a file, a series or a zip of it), NIfTI (.nii, .nii.gz)"


def sniff_format(data: bytes) -> str | None:
    """The format the bytes start with ("PNG", "JPEG", ..., "ZIP", "DICOM", "NIFTI"), or None.

    "DICM" after the 128-byte preamble wins over everything else: DICOM leaves the preamble's
    content to the writer, and some write a TIFF header there (a dual-personality file, e.g.
    pydicom's own MR_small.dcm), which a TIFF reader cannot decode.
    """
    if dicom.has_dicom_prefix(data):
        return "DICOM"
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if is_zip(data):
        return "ZIP"
    if dicom.looks_like_dicom(data):
        return "DICOM"
    if nifti.nifti_magic(data) is not None:
        return "NIFTI"
    return None
