"""Bytes in, the slices to read out: the first step of every prediction.

`read_volumes` (uploads, in memory) and `read_path_volumes` (a file, a folder or a zip on
disk) turn scanner files into `Volume`s: DICOM files and series (`dicom`), NIfTI volumes
(`nifti`), zips of them (opened by `zips`, with its checks and limits), and plain images
(`raster`), which become one-slice volumes. `volume_slices` then picks the slices to read:
the middle one by default, slice N, or all, along the axial plane (coronal and sagittal for
isotropic volumes). `read_file` and `read_input` do both steps; `decode_image` is for bytes
that must hold one 2-D slice. The format is sniffed from the bytes, never from the file
name. `read_uploads` is `read_volumes` for a page that lists several uploads to pick from: each scan
(a plain image, a NIfTI volume, a DICOM series of loose files or of one zip) with the uploads it came
from, in upload order. `dicom_source` finds the parsed DICOM files behind one of `read_volumes`'
volumes (for a DICOM Segmentation). Anything unreadable ends in an `MriError` subclass whose message
names the file.
Never imports streamlit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from mri_core.io import dicom, nifti
from mri_core.io.errors import ExportRefused, ImageTooLarge, NotASlice, UnreadableImage, UnsupportedFormat
from mri_core.io.formats import READABLE_FORMATS_TEXT, SCAN_FORMATS_TEXT, sniff_format
from mri_core.io.raster import MAX_IMAGE_PIXELS, decode_raster
from mri_core.io.volume import MIN_SIDE, Slice, SliceChoice, Volume, volume_slices
from mri_core.io.zips import ZipErrors, is_clutter, is_zip, open_zip

# What the rest of mri_core takes from here (`from mri_core.io import slices as io`).
__all__ = ["MAX_IMAGE_PIXELS", "MIN_SIDE", "READABLE_FORMATS_TEXT", "SCAN_FORMATS_TEXT", "Slice", "SliceChoice",
           "UploadedScan", "decode_image", "dicom_source", "read_file", "read_input", "read_path_volumes", "read_uploads",
           "read_volumes", "sniff_format", "volume_slices"]

# A zip of a scan: its problems in the words and error types of a scan upload.
SCAN_ZIP = ZipErrors(UnsupportedFormat, UnreadableImage, ImageTooLarge, contents="the series folder",
                     smaller="zip one series at a time")
# What kind of file a scan was read from (`UploadedScan.kind`)
IMAGE, NIFTI, DICOM = "image", "NIfTI", "DICOM"


@dataclass(frozen=True)
class UploadedScan:
    """One scan among uploads, as a reader picks it: a plain image, a NIfTI volume, or a DICOM series (of
    loose files, or of one zip), with the uploads it was read from."""

    volume: Volume
    kind: str  # IMAGE, NIFTI or DICOM
    uploads: tuple[int, ...]  # the places (from 0, ascending) of the uploads it was read from
    zip_name: str | None = None  # the zip it was in (its file name), None for loose files


def read_file(path: str | os.PathLike, choice: SliceChoice = None, plane: str = "axial") -> list[Slice]:
    """A file, DICOM folder or zip on disk -> the chosen slices of each series in it (see volume_slices)."""
    return [s for volume in read_path_volumes(path) for s in volume_slices(volume, choice, plane)]


def read_input(item: str | os.PathLike | tuple[str, bytes], choice: SliceChoice = None,
               plane: str = "axial") -> list[Slice]:
    """A path (file, DICOM folder, zip) or an upload's (name, bytes) -> the chosen slices of each
    series in it (None: the middle one; see volume_slices); MriError when it cannot be read."""
    if isinstance(item, tuple):
        name, data = item
        return [s for volume in read_volumes([(name, data)]) for s in volume_slices(volume, choice, plane)]
    return read_file(item, choice, plane)


def read_path_volumes(path: str | os.PathLike) -> list[Volume]:
    """A file, a folder (every file below it, e.g. a DICOM series) or a zip -> its Volumes."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not is_clutter(p.relative_to(path).parts))
        if not files:
            raise UnsupportedFormat(f"{path}: the folder holds no files; point to a DICOM series folder or a scan file.")
        return read_volumes([(str(p.relative_to(path.parent)), _read_bytes(p)) for p in files])
    return read_volumes([(str(path), _read_bytes(path))])


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UnreadableImage(f"{path}: file not found; check the path.") from None
    except OSError as exc:
        raise UnreadableImage(f"{path}: cannot be read ({exc.strerror or exc}).") from None


def read_volumes(files: Sequence[tuple[str, bytes]]) -> list[Volume]:
    """(name, bytes) uploads, kept in memory -> Volumes: DICOM files join into series, each
    NIfTI and each plain image is its own; zips are opened in memory. One file that cannot
    be read raises; among several, files of no scan format (notes, DICOMDIR) are skipped."""
    expanded = _expand_zips(files)
    scans = _read_scans(expanded, [0] * len(expanded), several=len(expanded) > 1)
    _check_some(scans, files)
    return [scan.volume for scan in scans]


def read_uploads(files: Sequence[tuple[str, bytes]]) -> list[UploadedScan]:
    """(name, bytes) uploads, in upload order -> every scan in them, ordered by its first upload (the
    newest upload's scans last): each plain image and each NIfTI volume is one; loose DICOM files join
    into series, each one scan; a zip's scans are its own (they do not join loose files). Raises as
    `read_volumes` does (one file that cannot be read raises; among several, files of no scan format
    are skipped)."""
    expanded = [(number, member) for number, (name, data) in enumerate(files) for member in _expand_zip(name, data)]
    several = len(expanded) > 1
    loose = [(number, member) for number, member in expanded if not is_zip(files[number][1])]
    scans = _read_scans([member for _, member in loose], [number for number, _ in loose], several)
    for number, (name, data) in enumerate(files):
        if is_zip(data):
            members = [member for place, member in expanded if place == number]
            scans += [replace(scan, zip_name=_display_name(name))
                      for scan in _read_scans(members, [number] * len(members), several)]
    _check_some(scans, files)
    return sorted(scans, key=lambda scan: scan.uploads[0])  # stable: a zip's series keep their order


def _read_scans(files: list[tuple[str, bytes]], numbers: list[int], several: bool) -> list[UploadedScan]:
    """Files (no zips) -> their scans: NIfTI volumes and plain images in file order, then the DICOM series;
    `numbers[i]` is the upload files[i] came from. Among `several` files, those of no scan format are skipped."""
    scans, dicom_files, dicom_numbers = [], [], []
    for (name, data), number in zip(files, numbers):
        kind = sniff_format(data)  # once per file
        if kind == "DICOM":
            dicom_files.append((_dicom_name(name, several), data))
            dicom_numbers.append(number)
        elif kind == "NIFTI":
            scans.append(UploadedScan(nifti.read_nifti(data, _display_name(name)), NIFTI, (number,)))
        elif kind is not None or not several:
            scans.append(UploadedScan(_volume_from_slice(decode_raster(data, name)), IMAGE, (number,)))
    if dicom_files:
        scans += [UploadedScan(volume, DICOM, tuple(sorted({dicom_numbers[place] for place in places})))
                  for volume, places in dicom.read_dicom_series(dicom_files, skip_non_images=several)]
    return scans


def _check_some(scans: list[UploadedScan], files: Sequence[tuple[str, bytes]]) -> None:
    if not scans:
        names = ", ".join(_display_name(n) for n, _ in files)
        raise UnsupportedFormat(f"{names}: holds no scan we read; upload {SCAN_FORMATS_TEXT} or a slice as "
                                f"{READABLE_FORMATS_TEXT}.")


def dicom_source(files: Sequence[tuple[str, bytes]], volume: Volume) -> dicom.SeriesSource:
    """The parsed DICOM files behind `volume`, one of `read_volumes(files)`, in its slice order (for a DICOM
    Segmentation that refers to them); `ExportRefused` when `volume` is not one of their DICOM series."""
    expanded = _expand_zips(files)
    dicom_files = _dicom_files(expanded, len(expanded) > 1)
    if not dicom_files:
        raise ExportRefused(f"{volume.source}: not a DICOM upload (a NIfTI volume or a plain image); a DICOM "
                            f"object that refers to the scan can only be made for DICOM files.")
    return dicom.volume_source(dicom_files, volume, skip_non_images=len(expanded) > 1)


def _expand_zips(files: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return [member for name, data in files for member in _expand_zip(name, data)]


def _dicom_files(expanded: list[tuple[str, bytes]], several: bool) -> list[tuple[str, bytes]]:
    """The DICOM files among the uploads, named as `_dicom_name` says."""
    return [(_dicom_name(name, several), data) for name, data in expanded if sniff_format(data) == "DICOM"]


def _dicom_name(name: str, several: bool) -> str:
    """A lone DICOM file is named by its file name; series members keep their folder."""
    return name if several else _display_name(name)


def _display_name(name: str) -> str:
    return Path(name).name or name


def _expand_zip(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """A zip -> its member files as (zip name/member path, bytes), read in memory by `zips` (its
    checks and limits, in a scan upload's words); anything else -> [(name, data)]."""
    if not is_zip(data):
        return [(name, data)]
    source = _display_name(name)
    with open_zip(data, SCAN_ZIP, source) as checked:
        members = [(f"{source}/{path}", content) for path, content in checked.files()]
        nested = checked.nested
    if not members and nested:
        raise UnsupportedFormat(f"{source}: holds only other zips ({', '.join(nested[:3])}), which are not opened; "
                                f"unzip them and upload the series files or one zip of the series folder.")
    if not members:
        raise UnsupportedFormat(f"{source}: the zip holds no files; zip the folder of the DICOM series.")
    return members


def _volume_from_slice(slice_: Slice) -> Volume:
    return Volume(voxels=slice_.pixels[None], source=slice_.source, warnings=slice_.warnings)


def decode_image(data: bytes, name: str) -> Slice:
    """Bytes that must hold one 2-D slice -> Slice of float32 (H, W) pixels in [0, 1]: a plain
    image (decoded by `raster`), or a scanner file of one slice; NotASlice for a volume."""
    if sniff_format(data) in ("DICOM", "NIFTI", "ZIP"):
        return _single_slice(read_volumes([(name, data)]), _display_name(name))
    return decode_raster(data, name)


def _single_slice(volumes: list[Volume], source: str) -> Slice:
    if len(volumes) == 1 and volumes[0].count == 1:
        return volume_slices(volumes[0])[0]
    counts = ", ".join(str(v.count) for v in volumes)
    raise NotASlice(f"{source}: holds {len(volumes)} series with {counts} slices, not one 2-D slice; "
                    f"pick a slice (the Diagnose page's slider, or `predict --slice N`).")
