"""Bytes in, one validated 2-D slice out: the first step of every prediction.

`decode_image` turns the bytes of a PNG/JPEG/BMP/TIFF/GIF/WebP file into a `Slice`:
float32 (H, W) pixels in [0, 1], upright (EXIF orientation applied), grey (colour
converted to luminance, alpha composited on black). Anything it cannot read safely ends in
an `MriError` subclass whose message names the file; no raw Pillow/OS error escapes.
The format is sniffed from the bytes, never from the file name. Never imports streamlit.
"""

from __future__ import annotations

import io as _io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import ImageTooLarge, MriError, NotASlice, UnreadableImage, UnsupportedFormat

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
    return None


def read_file(path: str | os.PathLike) -> list[Slice]:
    """Read one image file from disk -> [Slice] (a list: volumes will give several)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise UnreadableImage(f"{path}: file not found; check the path.") from None
    except OSError as exc:
        raise UnreadableImage(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    return [decode_image(data, str(path))]


def decode_image(data: bytes, name: str) -> Slice:
    """Decode raster image bytes -> Slice of float32 (H, W) pixels in [0, 1]."""
    source = Path(name).name or name
    if not data:
        raise UnreadableImage(f"{source}: the file is empty (0 bytes); upload the image again.")
    image_format = sniff_format(data)
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
    notes = []
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
