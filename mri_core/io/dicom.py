"""DICOM files (one file, a multi-frame file, or a series of files) -> `Volume`s, read in memory with pydicom.

Single-frame files are grouped into series by SeriesInstanceUID (and image size) and sorted
along the slice normal by ImagePositionPatient, else by InstanceNumber. Pixels get the
modality rescale (RescaleSlope/Intercept), then the stored window (WindowCenter/Width), the
full range of 8-bit data, or a robust percentile window; MONOCHROME1 is inverted so that
bright always means signal (`modality_values` gives the values before that window, which tests
compare with pydicom's own decoding pixel for pixel). Compressed transfer syntaxes decode
through pylibjpeg and its plugins; where no decoder is installed, `DecoderMissing` names the
syntax and the package.

`series_sources` and `volume_source` give the parsed files behind a volume in the same order
(one ordering, shared with `read_dicom`), so that a DICOM Segmentation can refer to each source slice.

Privacy: only the study and series descriptions leave this module in a `Volume`; a `SeriesSource`
holds the parsed files, for the one export that must carry the patient's identity (DESIGN.md,
"Errors"). No tag value is ever put into a message, a warning or a log line (pydicom's own value
warnings are silenced).
Never writes to disk, never imports streamlit.
"""

from __future__ import annotations

import io as _io
import logging
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pydicom
from pydicom import config as pydicom_config
from pydicom import uid as dicom_uid

from mri_core.io.errors import DecoderMissing, ExportRefused, MriError, NoImageData, UnreadableImage
from mri_core.io.volume import FROM_POSITIONS, Volume, make_volume, window_volume

# pydicom warns about malformed values by quoting them (a birth date, a name): never validate
# on read, and keep its logger off stderr, so no tag value can reach a terminal or a log.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
logging.getLogger("pydicom").addHandler(logging.NullHandler())
logging.getLogger("pydicom").propagate = False

PREAMBLE_BYTES = 128
PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
COLOUR_PHOTOMETRICS = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")

# Which packages decode which compressed syntax (the optional requirements, as data).
_LIBJPEG = "pylibjpeg and pylibjpeg-libjpeg (pip install pylibjpeg pylibjpeg-libjpeg)"
_OPENJPEG = "pylibjpeg and pylibjpeg-openjpeg (pip install pylibjpeg pylibjpeg-openjpeg)"
DECODER_PACKAGES = {
    dicom_uid.JPEGBaseline8Bit: _LIBJPEG,
    dicom_uid.JPEGExtended12Bit: _LIBJPEG,
    dicom_uid.JPEGLossless: _LIBJPEG,
    dicom_uid.JPEGLosslessSV1: _LIBJPEG,
    dicom_uid.JPEGLSLossless: _LIBJPEG,
    dicom_uid.JPEGLSNearLossless: _LIBJPEG,
    dicom_uid.JPEG2000Lossless: _OPENJPEG,
    dicom_uid.JPEG2000: _OPENJPEG,
    dicom_uid.HTJ2KLossless: _OPENJPEG,
    dicom_uid.HTJ2KLosslessRPCL: _OPENJPEG,
    dicom_uid.HTJ2K: _OPENJPEG,
    dicom_uid.RLELossless: "pylibjpeg and pylibjpeg-rle (pip install pylibjpeg pylibjpeg-rle)",
}


@dataclass(frozen=True)
class _Image:
    """One parsed DICOM image file, before it joins a series."""

    source: str
    dataset: pydicom.Dataset
    frames: int
    number: int = 0  # its place among the files given (from 0)


def has_dicom_prefix(data: bytes) -> bool:
    """A Part 10 file: "DICM" right after the 128-byte preamble (whatever the preamble holds)."""
    return data[PREAMBLE_BYTES:PREAMBLE_BYTES + 4] == b"DICM"


def looks_like_dicom(data: bytes) -> bool:
    """Part 10 file ("DICM" after the preamble) or a bare dataset starting with a group 0002/0008 tag."""
    if has_dicom_prefix(data):
        return True
    # No preamble: the first element is usually (0002,xxxx) meta or (0008,xxxx) identification,
    # followed by an explicit VR or a 4-byte implicit length.
    return len(data) >= 8 and data[:2] in (b"\x02\x00", b"\x08\x00") and data[3] == 0 and (
        data[4:6].isalpha() or data[6:8] == b"\x00\x00")


def read_dicom(files: Sequence[tuple[str, bytes]], skip_non_images: bool = False) -> list[Volume]:
    """(name, bytes) DICOM files -> one Volume per series (a multi-frame file is its own series).

    With `skip_non_images`, files without pixel data (DICOMDIR, reports) are left out as long
    as some image remains; otherwise each gives `NoImageData`.
    """
    return [volume for volume, _ in read_dicom_series(files, skip_non_images)]


def read_dicom_series(files: Sequence[tuple[str, bytes]],
                      skip_non_images: bool = False) -> list[tuple[Volume, tuple[int, ...]]]:
    """`read_dicom`'s volumes, in its order, each with the places in `files` (from 0, ascending) of the
    files it was read from: which uploads make up which series."""
    return [(_finish(series, _decode(series)), tuple(sorted(image.number for image in series.images)))
            for series in _ordered_series(files, skip_non_images)]


def modality_values(files: Sequence[tuple[str, bytes]], skip_non_images: bool = False) -> list[np.ndarray]:
    """The values `read_dicom` windows: per series, in its order, float32 (Z, H, W) pixels after the
    modality rescale (RescaleSlope/Intercept), before any display window or MONOCHROME1 inversion
    (colour as ITU-R 601-2 luma). What tests compare with pydicom's own decoding, pixel for pixel."""
    return [_decode(series) for series in _ordered_series(files, skip_non_images)]


@dataclass(frozen=True)
class SeriesSource:
    """The parsed files one `read_dicom` volume was read from, in its slice order: what an object that
    refers to the source images needs (a DICOM Segmentation). Unlike a `Volume` it holds every tag,
    patient identity included: never show, print or log it (its repr shows no dataset)."""

    source: str  # the volume's source name
    datasets: tuple[pydicom.Dataset, ...] = field(repr=False)  # single-frame files in slice order, or the multi-frame file
    frames: tuple[int, ...] | None = None  # a multi-frame file: each slice's frame number in it (from 1); else None

    @property
    def count(self) -> int:
        return len(self.frames) if self.frames is not None else len(self.datasets)


def series_sources(files: Sequence[tuple[str, bytes]], skip_non_images: bool = False) -> list[SeriesSource]:
    """Each series of `files` as `read_dicom` groups and orders it (same order of series, same slice
    order), without decoding a pixel."""
    return [_source_of(series) for series in _ordered_series(files, skip_non_images)]


def volume_source(files: Sequence[tuple[str, bytes]], volume: Volume, skip_non_images: bool = False) -> SeriesSource:
    """The series of `files` that `read_dicom(files, skip_non_images)` reads as `volume`; `ExportRefused`
    when none does (a NIfTI volume, a plain image, or other files). Series alike in name, size and
    descriptions are told apart by their pixels."""
    candidates = [series for series in _ordered_series(files, skip_non_images) if _describes(series, volume)]
    if len(candidates) > 1:
        candidates = [s for s in candidates if np.array_equal(_finish(s, _decode(s)).voxels, volume.voxels)]
    if not candidates:
        raise ExportRefused(f"{volume.source}: not one of the DICOM series of these files; a DICOM object "
                            f"that refers to a scan can only be made for a DICOM series, with the files it was read from.")
    return _source_of(candidates[0])


@dataclass(frozen=True)
class _Ordered:
    """One series (or multi-frame file) in slice order, before any pixel is decoded."""

    images: tuple[_Image, ...]  # single-frame files in slice order, or the one multi-frame file
    frame_order: tuple[int, ...] | None  # a multi-frame file: the stored frame (from 0) of each slice
    source: str
    spacing_along: float | None
    notes: tuple[str, ...] = ()
    thickness_source: str | None = None  # which tag gave spacing_along (volume.THICKNESS_SOURCES)
    positions: tuple[float, ...] | None = None  # each slice's position along the normal (mm), in stack order

    @property
    def first(self) -> pydicom.Dataset:
        """The first slice's dataset: window, photometric, spacing, descriptions."""
        return self.images[0].dataset

    @property
    def count(self) -> int:
        return len(self.frame_order) if self.frame_order is not None else len(self.images)


def _ordered_series(files: Sequence[tuple[str, bytes]], skip_non_images: bool) -> list[_Ordered]:
    """Parse every file (so that a bad one fails before any decoding), group and order the series:
    multi-frame files first, then the series of single-frame files in the order they first appear."""
    images, refused = [], []
    for number, (name, data) in enumerate(files):
        try:
            images.append(replace(_parse(name, data), number=number))
        except NoImageData as exc:
            if not skip_non_images:
                raise
            refused.append(exc)
    if not images:
        raise refused[0]
    groups: dict[tuple, list[_Image]] = defaultdict(list)
    for image in images:
        if image.frames == 1:
            ds = image.dataset
            groups[(str(ds.get("SeriesInstanceUID", "")), int(ds.Rows), int(ds.Columns))].append(image)
    return ([_order_frames(image) for image in images if image.frames > 1] +
            [_order_files(group) for group in groups.values()])


def _decode(series: _Ordered) -> np.ndarray:
    """Decoded, modality-rescaled float32 (Z, H, W) pixels in slice order."""
    if series.frame_order is not None:
        return _pixels(series.images[0])[list(series.frame_order)]
    return np.concatenate([_pixels(image) for image in series.images])


def _source_of(series: _Ordered) -> SeriesSource:
    frames = None if series.frame_order is None else tuple(i + 1 for i in series.frame_order)
    return SeriesSource(series.source, tuple(image.dataset for image in series.images), frames)


def _describes(series: _Ordered, volume: Volume) -> bool:
    """Whether `series` matches what `volume` says of itself (name, size, descriptions, positions)."""
    first = series.first
    return (series.source == volume.source and volume.voxels.shape == (series.count, int(first.Rows), int(first.Columns))
            and series.positions == volume.slice_positions
            and str(first.get("StudyDescription", "") or "") == volume.study_description
            and str(first.get("SeriesDescription", "") or "") == volume.series_description)


def _parse(name: str, data: bytes) -> _Image:
    """Bytes -> parsed dataset with its pixel data still encoded; errors name the file only."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(_io.BytesIO(data), force=True)
            has_pixels = any(tag in dataset for tag in PIXEL_TAGS)
            if has_pixels:  # parses lazily: read the size elements now, inside the guard
                frames, _, _ = (int(dataset.get("NumberOfFrames", 1) or 1), int(dataset.Rows), int(dataset.Columns))
    except Exception as exc:  # pydicom raises InvalidDicomError, EOFError, ValueError, KeyError ...
        raise UnreadableImage(f"{name}: the DICOM data is damaged or cut short ({type(exc).__name__}); "
                              f"export the file from the PACS again.") from None
    if not has_pixels:
        raise NoImageData(f"{name}: this DICOM file is {_kind(dataset)} and holds no image; upload the "
                          f"image files of the series (for example the MR images) instead.")
    return _Image(source=name, dataset=dataset, frames=frames)


def _kind(dataset: pydicom.Dataset) -> str:
    """SOP class in words (e.g. 'a Comprehensive SR Storage object'); never a tag value of the patient."""
    sop_class = dataset.get("SOPClassUID") or getattr(dataset.get("file_meta", None), "MediaStorageSOPClassUID", None)
    if sop_class is None:
        return "a DICOM object without a SOP class"
    name = dicom_uid.UID(str(sop_class)).name
    if "Directory" in name:
        return "a DICOMDIR (an index of other files)"
    return f"a {name} object"


def _pixels(image: _Image) -> np.ndarray:
    """Decoded, rescaled pixels: float32 (F, H, W) (colour converted to luminance)."""
    ds = image.dataset
    syntax = _transfer_syntax(ds)
    _check_decoder(syntax, image.source)
    _check_pixel_length(ds, syntax, image)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = ds.pixel_array
            photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
            if photometric == "PALETTE COLOR":
                array = pydicom.pixels.apply_color_lut(array, ds)
            elif photometric not in COLOUR_PHOTOMETRICS:
                array = pydicom.pixels.apply_rescale(array, ds)
    except MriError:
        raise
    except Exception as exc:  # truncated pixel data, a corrupt JPEG stream, an odd bit depth ...
        raise UnreadableImage(f"{image.source}: the image data cannot be decoded ({type(exc).__name__}: "
                              f"{syntax.name}); export the file from the PACS again, uncompressed if "
                              f"possible.") from None
    array = np.asarray(array, dtype=np.float32)
    if int(ds.get("SamplesPerPixel", 1) or 1) > 1 or photometric == "PALETTE COLOR":
        # ITU-R 601-2 luma on the last axis (the same weights as io for colour images)
        array = array[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    return array.reshape((image.frames, *array.shape[-2:]))


def _transfer_syntax(ds: pydicom.Dataset) -> dicom_uid.UID:
    """The stored transfer syntax; for a bare dataset without one, the encoding it was read with."""
    meta = ds.file_meta if hasattr(ds, "file_meta") else pydicom.dataset.FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = (dicom_uid.ImplicitVRLittleEndian if implicit else
                                  dicom_uid.ExplicitVRLittleEndian if little else dicom_uid.ExplicitVRBigEndian)
        ds.file_meta = meta
    return dicom_uid.UID(str(meta.TransferSyntaxUID))


def _check_decoder(syntax: dicom_uid.UID, source: str) -> None:
    """DecoderMissing, naming the syntax and the package, when the pixel data cannot be decoded here."""
    if not syntax.is_compressed:
        return
    try:
        decoder = pydicom.pixels.get_decoder(syntax)
    except NotImplementedError:
        raise DecoderMissing(
            f"{source}: this DICOM file is {syntax.name} compressed and no decoder for it is "
            f"available in this app; export the series uncompressed (or as JPEG / JPEG 2000) and "
            f"upload it again.") from None
    if not decoder.is_available:
        package = DECODER_PACKAGES.get(syntax, "a pydicom pixel data plugin for it")
        raise DecoderMissing(
            f"{source}: this DICOM file is {syntax.name} compressed and no decoder is installed; "
            f"install {package}, or export it uncompressed.")


def _check_pixel_length(ds: pydicom.Dataset, syntax: dicom_uid.UID, image: _Image) -> None:
    """UnreadableImage when uncompressed pixel data is shorter than Rows x Columns x frames declare."""
    if syntax.is_compressed or "PixelData" not in ds:
        return
    rows, columns = int(ds.Rows), int(ds.Columns)
    samples, bits = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.get("BitsAllocated", 16) or 16)
    if samples == 3 and str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422":
        samples = 2  # two pixels share one Cb and one Cr: Y Y Cb Cr, 4 values per 2 pixels
    needed = (rows * columns * image.frames * samples * bits + 7) // 8
    held = len(ds.PixelData)
    if held < needed:
        raise UnreadableImage(
            f"{image.source}: the header declares {image.frames} frame(s) of {columns}x{rows} pixels ({needed:,} "
            f"bytes) but the file holds {held:,} bytes of pixel data; it is cut short or its header is wrong. "
            f"Export the file from the PACS again.")


def _is_colour(ds: pydicom.Dataset) -> bool:
    return str(ds.get("PhotometricInterpretation", "")).strip() in COLOUR_PHOTOMETRICS


def _display_range(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """The stored window (first WindowCenter/Width), or the full range of plain 8-bit data, or None."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None:
        center = float(center[0] if isinstance(center, pydicom.multival.MultiValue) else center)
        width = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
        if width > 0:
            return center - width / 2, center + width / 2
    bits, slope, intercept = int(ds.get("BitsStored", 16) or 16), ds.get("RescaleSlope", 1), ds.get("RescaleIntercept", 0)
    if bits <= 8 and int(ds.get("PixelRepresentation", 0) or 0) == 0 and float(slope) == 1 and float(intercept) == 0:
        return 0.0, float(2**bits - 1)  # already a display image: keep its grey levels
    return None


def _finish(series: _Ordered, values: np.ndarray) -> Volume:
    """Rescaled values -> windowed Volume with descriptions and spacing."""
    first, notes = series.first, series.notes
    windowed, window_notes = window_volume(values, series.source, _display_range(first))
    if str(first.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        windowed = 1.0 - windowed  # MONOCHROME1: low values are white
    if _is_colour(first):
        notes = ("converted_from_color", *notes)
    row_col = first.get("PixelSpacing")
    spacing = None
    if row_col is not None and len(row_col) == 2:
        spacing = (float(series.spacing_along or float(row_col[0])), float(row_col[0]), float(row_col[1]))
    return make_volume(windowed, series.source, spacing=spacing,
                       thickness_source=series.thickness_source if series.spacing_along else None,
                       slice_positions=series.positions,
                       study_description=str(first.get("StudyDescription", "") or ""),
                       series_description=str(first.get("SeriesDescription", "") or ""),
                       warnings=notes + window_notes)


def _order_frames(image: _Image) -> _Ordered:
    """A multi-frame file: frames in the order of their per-frame positions when given, else stored."""
    positions = []
    for group in image.dataset.get("PerFrameFunctionalGroupsSequence", []):
        plane = group.get("PlanePositionSequence")
        positions.append([float(v) for v in plane[0].ImagePositionPatient] if plane else None)
    order, along, along_positions = np.arange(image.frames), None, None
    normal = _normal(_shared_orientation(image.dataset))
    if normal is not None and len(positions) == image.frames and all(p is not None for p in positions):
        order, along, along_positions = _order_by_position(positions, normal)
    return _Ordered((image,), tuple(int(i) for i in order), image.source, along, (),
                    FROM_POSITIONS if along_positions is not None else None, along_positions)


def _shared_orientation(ds: pydicom.Dataset):
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and shared[0].get("PlaneOrientationSequence"):
        return shared[0].PlaneOrientationSequence[0].get("ImageOrientationPatient")
    return ds.get("ImageOrientationPatient")


def _normal(orientation) -> np.ndarray | None:
    if orientation is None or len(orientation) != 6:
        return None
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    return np.cross(row, col)


def _order_by_position(positions, normal) -> tuple[np.ndarray, float | None, tuple[float, ...] | None]:
    """Positions along the slice normal -> (sort order, median slice spacing in mm or None, the sorted
    positions when they are distinct, else None)."""
    along = np.asarray(positions, float) @ normal
    order = np.argsort(along, kind="stable")
    steps = np.diff(along[order])
    median = float(np.median(steps)) if steps.size and np.median(steps) > 0 else None
    distinct = median is not None and bool((steps > 0).all())
    return order, median, (tuple(float(v) for v in along[order]) if distinct else None)


def _order_files(images: list[_Image]) -> _Ordered:
    """Single-frame files of one series, sorted along the normal or by InstanceNumber."""
    first = images[0].dataset
    normal = _normal(first.get("ImageOrientationPatient"))
    positions = [im.dataset.get("ImagePositionPatient") for im in images]
    notes: tuple[str, ...] = ()
    along, along_positions, source = None, None, None
    if normal is not None and all(p is not None and len(p) == 3 for p in positions):
        order, along, along_positions = _order_by_position([[float(v) for v in p] for p in positions], normal)
        source = FROM_POSITIONS if along_positions is not None else None
    elif all(im.dataset.get("InstanceNumber") is not None for im in images):
        order = np.argsort([int(im.dataset.InstanceNumber) for im in images], kind="stable")
    else:
        order = np.arange(len(images))
        if len(images) > 1:
            notes = ("slice_order_unknown",)
    ordered = [images[i] for i in order]
    if along is None:  # a single slice too: its thickness is what a volume of one slice needs
        for tag in ("SpacingBetweenSlices", "SliceThickness"):
            value = first.get(tag)
            if value is not None and _positive(value):
                along, source = float(value), tag
                break
    name = images[0].source if len(images) == 1 else _series_source(images)
    return _Ordered(tuple(ordered), None, name, along, notes, source, along_positions)


def _positive(value) -> bool:
    try:
        return float(value) > 0 and np.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _series_source(images: list[_Image]) -> str:
    """A name for a series of files: the shared folder, else the first file, plus the count."""
    folders = {im.source.rsplit("/", 1)[0] for im in images if "/" in im.source}
    base = folders.pop() if len(folders) == 1 else images[0].source
    return f"{base} ({len(images)} files)"
