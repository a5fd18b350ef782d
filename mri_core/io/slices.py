"""Bytes in, one validated 2-D slice out: the first step of every prediction.

`decode_image` turns the bytes of a PNG/JPEG/BMP/TIFF/GIF/WebP file into a `Slice`:
float32 (H, W) pixels in [0, 1], upright (EXIF orientation applied), grey (colour
converted to luminance, alpha composited on black). Anything it cannot read safely ends in
an `MriError` subclass whose message names the file; no raw Pillow/OS error escapes.
The format is sniffed from the bytes, never from the file name. Never imports streamlit.

Scanner files go through `read_volumes` (uploads, in memory) or `read_path_volumes` (a
file, a folder or a zip on disk): DICOM files and series (`dicom`), NIfTI volumes (`nifti`)
and zips of them become `Volume`s, plain images become one-slice volumes.
`volume_slices` then picks the slices to read: the middle one by default, slice N, or all,
along the axial plane (coronal and sagittal for isotropic volumes).
"""

from __future__ import annotations

import io as _io
import os
import stat
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from mri_core.io import dicom

from mri_core.io import nifti
from mri_core.io.errors import ImageTooLarge, MriError, NotASlice, UnreadableImage, UnsupportedFormat
from mri_core.io.volume import Volume, middle_index, plane_count, plane_slice, plane_spacing

# 64 megapixels: far beyond any MRI slice (512 to 2,000 px a side), small enough that a
# decompression bomb cannot exhaust memory (64 MP x float32 = 256 MB).
MAX_IMAGE_PIXELS = 64_000_000
# Smaller than this is a thumbnail, an icon or a line, not a slice a model can read.
MIN_SIDE = 16

# Formats Pillow validates for us, keyed by how the bytes start.
PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP")
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
ZIP_SIGNATURE = b"PK\x03\x04"
EMPTY_ZIP_SIGNATURE = b"PK\x05\x06"  # an empty zip is only its end-of-directory record
# A zip of a series is read in memory: cap what it may unpack to and how many files it holds.
MAX_ZIP_BYTES = 1024**3
MAX_ZIP_FILES = 5_000
ZIP_CLUTTER = {"__macosx", "thumbs.db", "desktop.ini"}
SliceChoice = int | str | None  # None: the middle slice; N: slice N; "all": every slice

# A colour image whose channels differ by more than this (in 8-bit levels) on more than
# COLOR_PIXEL_FRACTION of its pixels is really coloured, not grey saved as RGB/JPEG noise.
COLOR_LEVEL_SPREAD = 16
COLOR_PIXEL_FRACTION = 0.005
# Robust window for high-bit-depth images: a few hot pixels must not darken the rest.
WINDOW_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class Slice:
    pixels: np.ndarray  # float32 (H, W) in [0, 1]
    source: str  # file name to show the user (no directories)
    spacing: tuple[float, float] | None = None  # mm per pixel (row, col) when known
    index: int = 0  # which slice of how many (for volumes)
    count: int = 1
    warnings: tuple[str, ...] = ()  # e.g. "converted_from_color", "had_alpha", "16_bit"


def sniff_format(data: bytes) -> str | None:
    """The image format the bytes start with ("PNG", "JPEG", ...), or None."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith((ZIP_SIGNATURE, EMPTY_ZIP_SIGNATURE)):
        return "ZIP"
    if dicom.looks_like_dicom(data):
        return "DICOM"
    if nifti.nifti_magic(data) is not None:
        return "NIFTI"
    return None


def read_file(path: str | os.PathLike, choice: SliceChoice = None, plane: str = "axial") -> list[Slice]:
    """A file, DICOM folder or zip on disk -> the chosen slices of each series in it (see volume_slices)."""
    return [s for volume in read_path_volumes(path) for s in volume_slices(volume, choice, plane)]


def read_path_volumes(path: str | os.PathLike) -> list[Volume]:
    """A file, a folder (every file below it, e.g. a DICOM series) or a zip -> its Volumes."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not _is_clutter(p.relative_to(path).parts))
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
    expanded = [member for name, data in files for member in _expand_zip(name, data)]
    several = len(expanded) > 1
    volumes, dicom_files = [], []
    for name, data in expanded:
        kind = sniff_format(data)
        if kind == "DICOM":  # a lone file is named by its file name; series members keep their folder
            dicom_files.append((name if several else _display_name(name), data))
        elif kind == "NIFTI":
            volumes.append(nifti.read_nifti(data, _display_name(name)))
        elif kind is not None or not several:
            volumes.append(_volume_from_slice(decode_image(data, name)))
    if dicom_files:
        volumes += dicom.read_dicom(dicom_files, skip_non_images=several)
    if not volumes:
        names = ", ".join(_display_name(n) for n, _ in files)
        raise UnsupportedFormat(f"{names}: holds no scan we read; upload {SCAN_FORMATS_TEXT} or a slice as "
                                f"{READABLE_FORMATS_TEXT}.")
    return volumes


def _display_name(name: str) -> str:
    return Path(name).name or name


def _is_clutter(parts: Sequence[str]) -> bool:
    return any(p.startswith(".") or p.lower() in ZIP_CLUTTER for p in parts)


def _expand_zip(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """A zip -> its member files as (zip name/member path, bytes), read in memory with caps; else [(name, data)].

    Zips inside the zip are not opened (a nested zip bomb or a zip that holds itself would
    never end); links and paths leaving the zip are refused, as for training zips."""
    if not data.startswith((ZIP_SIGNATURE, EMPTY_ZIP_SIGNATURE)):
        return [(name, data)]
    source = _display_name(name)
    members, nested, total = [], [], 0
    try:
        with zipfile.ZipFile(_io.BytesIO(data)) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            _check_zip_members(infos, source)
            for info in infos:
                parts = PurePosixPath(info.filename.replace("\\", "/")).parts
                if not parts or _is_clutter(parts):
                    continue
                if len(members) >= MAX_ZIP_FILES:
                    raise ImageTooLarge(f"{source}: the zip holds more than {MAX_ZIP_FILES:,} files; zip one series at a time.")
                with archive.open(info) as stream:  # count bytes really unpacked: headers can lie
                    member = stream.read(MAX_ZIP_BYTES - total + 1)
                total += len(member)
                if total > MAX_ZIP_BYTES:
                    raise _zip_too_large(source)
                if member.startswith((ZIP_SIGNATURE, EMPTY_ZIP_SIGNATURE)):
                    nested.append(parts[-1])
                    continue
                members.append((f"{source}/{'/'.join(parts)}", member))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError) as exc:
        raise UnreadableImage(f"{source}: the zip cannot be opened ({type(exc).__name__}); zip the series "
                              f"again with standard compression and no password.") from None
    if not members and nested:
        raise UnsupportedFormat(f"{source}: holds only other zips ({', '.join(nested[:3])}), which are not opened; "
                                f"unzip them and upload the series files or one zip of the series folder.")
    if not members:
        raise UnsupportedFormat(f"{source}: the zip holds no files; zip the folder of the DICOM series.")
    return members


def _check_zip_members(infos: Sequence[zipfile.ZipInfo], source: str) -> None:
    """Refuse links, paths that leave the zip, and a declared size past the cap (before unpacking)."""
    for info in infos:
        name = info.filename.replace("\\", "/")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsupportedFormat(f"{source}: the zip holds a symbolic link ({info.filename!r}); links are not "
                                    f"followed. Zip the scan files themselves.")
        if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in PurePosixPath(name).parts:
            raise UnsupportedFormat(f"{source}: the zip holds a path that leaves its folder ({info.filename!r}); "
                                    f"zip the series folder again from inside it.")
    if sum(info.file_size for info in infos) > MAX_ZIP_BYTES:
        raise _zip_too_large(source)


def _zip_too_large(source: str) -> ImageTooLarge:
    return ImageTooLarge(f"{source}: the zip unpacks to more than {MAX_ZIP_BYTES // 1024**2:,} MB; "
                         f"zip one series at a time.")


def _volume_from_slice(slice_: Slice) -> Volume:
    return Volume(voxels=slice_.pixels[None], source=slice_.source, warnings=slice_.warnings)


def volume_slices(volume: Volume, choice: SliceChoice = None, plane: str = "axial") -> list[Slice]:
    """The slices to read: the middle one (None), slice N (0-based), or every slice ("all")."""
    count = plane_count(volume, plane)
    if choice == "all":
        indices = range(count)
    elif choice is None:
        indices = [middle_index(volume, plane)]
    else:
        indices = [int(choice)]
    return [Slice(pixels=plane_slice(volume, i, plane), source=volume.source,
                  spacing=plane_spacing(volume, plane), index=i, count=count, warnings=volume.warnings)
            for i in indices]


def decode_image(data: bytes, name: str) -> Slice:
    """Decode image bytes -> Slice of float32 (H, W) pixels in [0, 1]; a scanner file must hold one slice."""
    source = Path(name).name or name
    if not data:
        raise UnreadableImage(f"{source}: the file is empty (0 bytes); upload the image again.")
    image_format = sniff_format(data)
    if image_format in ("DICOM", "NIFTI", "ZIP"):
        return _single_slice(read_volumes([(name, data)]), source)
    try:
        image, animated = _open_and_load(data, source, image_format)
        pixels, notes = _to_grey(image)
    except MriError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError ...
        raise UnreadableImage(
            f"{source}: the {image_format or 'image'} data is damaged and cannot be decoded "
            f"({exc}); export or download the image again."
        ) from None
    if animated:
        notes = ("animated_first_frame", *notes)
    return Slice(pixels=pixels, source=source, warnings=notes)


def _single_slice(volumes: list[Volume], source: str) -> Slice:
    if len(volumes) == 1 and volumes[0].count == 1:
        return volume_slices(volumes[0])[0]
    counts = ", ".join(str(v.count) for v in volumes)
    raise NotASlice(f"{source}: holds {len(volumes)} series with {counts} slices, not one 2-D slice; "
                    f"pick a slice (the Diagnose page's slider, or `predict --slice N`).")


def _open_and_load(
    data: bytes, source: str, image_format: str | None
) -> tuple[Image.Image, bool]:
    """Open with Pillow (header only), check the size, decode the first frame -> (it, animated)."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its own limit and twice it: treat that as refusal too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(_io.BytesIO(data), formats=PILLOW_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large(source, None) from None
    except Image.UnidentifiedImageError:
        if image_format is None:
            raise UnsupportedFormat(
                f"{source}: this is not an image format we read; upload a brain MRI slice "
                f"as {READABLE_FORMATS_TEXT}."
            ) from None
        raise UnreadableImage(
            f"{source}: starts like a {image_format} file but its header is damaged or cut "
            f"short; export or download the image again."
        ) from None
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise _too_large(source, (width, height))
    if width < MIN_SIDE or height < MIN_SIDE:
        raise NotASlice(
            f"{source}: the image is {width}x{height} pixels; a slice must be at least "
            f"{MIN_SIDE}x{MIN_SIDE} pixels. Upload the full-size scan, not a thumbnail."
        )
    image.load()  # decodes now, so truncated data fails here (LOAD_TRUNCATED_IMAGES is off)
    animated = bool(getattr(image, "is_animated", False))
    if animated:
        image.seek(0)
    return ImageOps.exif_transpose(image), animated


def _too_large(source: str, size: tuple[int, int] | None) -> ImageTooLarge:
    declared = f"declares {size[0]}x{size[1]} pixels" if size else "declares too many pixels"
    return ImageTooLarge(
        f"{source}: the image {declared}, more than the {MAX_IMAGE_PIXELS:,} we decode; "
        f"resize it (an MRI slice needs at most a few million pixels)."
    )


def _to_grey(image: Image.Image) -> tuple[np.ndarray, tuple[str, ...]]:
    """Any Pillow mode -> (float32 (H, W) in [0, 1], warnings)."""
    mode = image.mode
    if mode.startswith("I;16"):
        return _window(np.asarray(image).astype(np.float32)), ("16_bit",)
    if mode == "I":
        return _window(np.asarray(image).astype(np.float32)), ("32_bit",)
    if mode == "F":
        return _window(np.asarray(image, dtype=np.float32)), ("float",)
    if mode in ("1", "L"):
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0, ()
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    rgba = np.asarray(image.convert("RGBA" if has_alpha else "RGB"))  # (H, W, 3|4) uint8
    notes = ["converted_from_cmyk"] if mode == "CMYK" else []  # a print-workflow file, not a scanner export
    if _is_coloured(rgba[..., :3]):
        notes.append("converted_from_color")
    # ITU-R 601-2 luma, the same weights as Pillow's convert("L").
    grey = rgba[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if has_alpha:
        alpha = rgba[..., 3]
        if (alpha < 255).any():
            notes.append("had_alpha")
        grey *= alpha.astype(np.float32) / 255.0  # composite on black
    return grey / np.float32(255.0), tuple(notes)


def _is_coloured(rgb: np.ndarray) -> bool:
    """(H, W, 3) uint8 -> whether the colour is real, not grey plus JPEG chroma noise."""
    spread = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)
    return bool((spread > COLOR_LEVEL_SPREAD).mean() > COLOR_PIXEL_FRACTION)


def _window(values: np.ndarray) -> np.ndarray:
    """(H, W) float32 of any range -> [0, 1] by a robust percentile window; NaN/inf -> 0."""
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, np.float32)
    low, high = np.percentile(values[finite], WINDOW_PERCENTILES)
    if high <= low:  # a nearly flat image: use its full range instead
        low, high = values[finite].min(), values[finite].max()
    if high <= low:
        return np.zeros(values.shape, np.float32)
    scaled = np.clip((values - low) / (high - low), 0.0, 1.0)
    return np.where(finite, scaled, 0.0).astype(np.float32)
