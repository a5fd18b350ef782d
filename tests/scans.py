"""Real DICOM and NIfTI files for tests, built at test time with pydicom and nibabel from shared images.

Nothing here is committed data: every file is written from a real slice of ../shared/data
into a temp folder (or kept as bytes) by the test that needs it.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate

from mri_core.io.slices import decode_image

# Identifying values a privacy test looks for: none may ever be shown, printed or logged.
SECRET_TAGS = {
    "PatientName": "Secretname^Jane",
    "PatientID": "PID-77341-SECRET",
    "PatientBirthDate": "19610423",
    "PatientAddress": "12 Hidden Lane, Privateville",
    "InstitutionName": "Confidential General Hospital",
    "ReferringPhysicianName": "Doctor^Undisclosed",
    "AccessionNumber": "ACC99887766",
    "OtherPatientIDs": "OTHER-ID-5521",
}


def grey_uint8(path: Path) -> np.ndarray:
    """A real image file -> uint8 (H, W) grey, exactly as `io` reads it (x255, rounded)."""
    return np.round(decode_image(path.read_bytes(), path.name).pixels * 255.0).astype(np.uint8)


def dicom_bytes(pixels: np.ndarray, syntax=dicom_uid.ExplicitVRLittleEndian, *, preamble: bool = True,
                series_uid: str = "1.2.826.0.1.3680043.8.498.1", position: float | None = None,
                instance: int | None = None, photometric: str = "MONOCHROME2", **tags) -> bytes:
    """(H, W) or (F, H, W) uint8/uint16/int16 pixels -> DICOM MR image bytes in `syntax`.

    JPEG baseline encodes with Pillow (what a PACS stores); RLE and JPEG 2000 with pydicom's
    encoders (pylibjpeg-rle / pylibjpeg-openjpeg). `tags` set any further element by keyword.
    """
    frames = pixels[None] if pixels.ndim == 2 else pixels
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = dicom_uid.MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = dicom_uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = dicom_uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = dicom_uid.MRImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID = "MR", "1.2.826.0.1.3680043.8.498.9", series_uid
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    bits = frames.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = int(frames.dtype.kind == "i")
    ds.PixelSpacing = [0.5, 0.5]
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    if position is not None:
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, position]
    if instance is not None:
        ds.InstanceNumber = instance
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.PixelData = frames.tobytes()
    if syntax == dicom_uid.JPEGBaseline8Bit:
        ds.PixelData = encapsulate([_jpeg(frame) for frame in frames])
        ds.file_meta.TransferSyntaxUID = syntax
    elif syntax in (dicom_uid.RLELossless, dicom_uid.JPEG2000Lossless):
        ds.compress(syntax, encoding_plugin="pylibjpeg" if syntax == dicom_uid.JPEG2000Lossless else "")
    elif syntax != dicom_uid.ExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = syntax  # e.g. a video syntax nothing here decodes
        ds.PixelData = encapsulate([b"\x00\x00\x00\x01" + frame.tobytes()[:64] for frame in frames])
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    return data if preamble else data[132:]  # no 128-byte preamble and no "DICM" prefix


def _jpeg(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def nifti_bytes(slices: np.ndarray, affine: np.ndarray | None = None, gz: bool = False,
                nifti2: bool = False) -> bytes:
    """(Z, H, W) axial slices as viewed (anterior up, patient right on the left), or any
    (X, Y, Z[, T]) array with `affine`, -> .nii (or .nii.gz) bytes."""
    if affine is None:  # RAS+: voxel x runs to the patient's right... so flip the view back
        data = np.ascontiguousarray(np.transpose(slices[:, ::-1, ::-1], (2, 1, 0)))
        affine = np.diag([1.0, 1.0, 1.0, 1.0])
    else:
        data = slices
    image = (nib.Nifti2Image if nifti2 else nib.Nifti1Image)(data, affine)
    raw = image.to_bytes()
    return gzip.compress(raw) if gz else raw


def stack_of(paths: list[Path], size: int = 256) -> np.ndarray:
    """Real images -> uint8 (Z, size, size) stack, each resized to one size as a volume's slices are."""
    return np.stack([np.asarray(Image.fromarray(grey_uint8(p)).resize((size, size), Image.BILINEAR))
                     for p in paths])
