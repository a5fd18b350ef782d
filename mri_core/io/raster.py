"""Plain image bytes (PNG, JPEG, BMP, TIFF, GIF, WebP) -> one grey `Slice`: the one raster decoder.

Every raster read goes through `decode_raster`: a single upload (`slices.decode_image`), a
batch stream, `slices.read_file`, training and evaluation data (`inputs.prepare_files`). It
gives float32 (H, W) pixels in [0, 1], upright (EXIF orientation applied), grey (colour
converted to luminance, alpha composited on black), high bit depths windowed. The format is
sniffed from the bytes, never from the file name. Anything it cannot read safely ends in an
`MriError` subclass whose message names the file; no raw Pillow/OpenCV/OS error escapes.

Two decoders sit behind it, and give the same pixels to the last bit:
- Pillow reads the header of every file and checks it (a damaged header, a decompression
  bomb, a thumbnail are refused with a message that names the problem), then decodes
  anything: EXIF rotation, transparency, palettes, animation, CMYK, 16-bit, float.
- OpenCV decodes only plain 8-bit grey or RGB JPEG/PNG (no EXIF rotation, transparency or
  animation; a JPEG with its end marker, a PNG with its IEND), which is nearly every slice a
  user sends (15,848 of the 15,867 files of the shared data sets). Why: it decodes them
  faster than Pillow, conversion to grey included: 1.15 to 1.4 times over the shared data
  sets (0.46 against 0.64 ms for a 512 px grey figshare JPEG, 0.47 against 0.66 ms for a
  224 px RGB one), which a batch or a training set of thousands of slices feels. Anything
  unusual (EXIF rotation, transparency, animation, 16-bit, a truncated JPEG, a damaged
  header), and anything OpenCV does not decode cleanly, goes to Pillow, which validates it
  and names the problem (OpenCV would grey-fill a truncated JPEG where Pillow refuses it).
  Tests check the two give identical pixels and warnings on real grey and colour JPEGs and
  PNGs; every file of the shared data sets decodes to the same bits either way.
Never imports streamlit.
"""

from __future__ import annotations

import io as _io
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from mri_core.io.errors import ImageTooLarge, MriError, NotASlice, UnreadableImage, UnsupportedFormat
from mri_core.io.formats import READABLE_FORMATS_TEXT, sniff_format
from mri_core.io.volume import MIN_SIDE, Slice

# 64 megapixels: far beyond any MRI slice (512 to 2,000 px a side), small enough that a
# decompression bomb cannot exhaust memory (64 MP x float32 = 256 MB).
MAX_IMAGE_PIXELS = 64_000_000
# Formats Pillow may open (sniff_format's plain image formats).
PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP")
# Formats OpenCV decodes when the file is plain (see the module docstring).
OPENCV_FORMATS = ("JPEG", "PNG")
EXIF_ORIENTATION = 0x0112
JPEG_END = b"\xff\xd9"
PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk with its CRC
# PNG chunks Pillow takes an orientation from, possibly placed after the pixel data, where
# only a full decode would find them; their keywords are never compressed.
PNG_ORIENTATION_MARKERS = (b"eXIf", b"Raw profile type exif", b"XML:com.adobe.xmp")
# A colour image whose channels differ by more than this (in 8-bit levels) on more than
# COLOR_PIXEL_FRACTION of its pixels is really coloured, not grey saved as RGB/JPEG noise.
COLOR_LEVEL_SPREAD = 16
COLOR_PIXEL_FRACTION = 0.005
# ITU-R 601-2 luma, the same weights as Pillow's convert("L").
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)
# Robust window for high-bit-depth images: a few hot pixels must not darken the rest.
WINDOW_PERCENTILES = (0.5, 99.5)
# warnings.catch_warnings changes process-wide state: decoding threads (batch streams,
# prepare_files) take turns around it, so none restores another's filters.
_WARNINGS_LOCK = threading.Lock()


def decode_raster(data: bytes, name: str, *, opencv: bool = True) -> Slice:
    """Image bytes -> Slice of float32 (H, W) pixels in [0, 1]; MriError naming `name` when unreadable.

    `opencv=False` decodes with Pillow only: the reference the OpenCV path is tested against.
    """
    source = Path(name).name or name
    if not data:
        raise UnreadableImage(f"{source}: the file is empty (0 bytes); upload the image again.")
    image_format = sniff_format(data)
    try:
        image = _open(data, source, image_format)
        if opencv and _is_plain(image, image_format, data):
            decoded = _decode_with_opencv(data, image.size)
            if decoded is not None:
                return Slice(pixels=decoded[0], source=source, warnings=decoded[1])
        pixels, notes = _decode_with_pillow(image)
    except MriError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError ...
        raise UnreadableImage(
            f"{source}: the {image_format or 'image'} data is damaged and cannot be decoded "
            f"({exc}); export or download the image again."
        ) from None
    return Slice(pixels=pixels, source=source, warnings=notes)


def takes_opencv_path(data: bytes) -> bool:
    """Whether `decode_raster` decodes these bytes with OpenCV (a plain 8-bit JPEG/PNG it reads cleanly)."""
    try:
        image_format = sniff_format(data)
        image = _open(data, "", image_format)
        return _is_plain(image, image_format, data) and _decode_with_opencv(data, image.size) is not None
    except Exception:
        return False


def _open(data: bytes, source: str, image_format: str | None) -> Image.Image:
    """Open with Pillow (header only) and check the size: the checks every raster passes."""
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():  # reads the header only: a short hold
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
    return image


def _too_large(source: str, size: tuple[int, int] | None) -> ImageTooLarge:
    declared = f"declares {size[0]}x{size[1]} pixels" if size else "declares too many pixels"
    return ImageTooLarge(
        f"{source}: the image {declared}, more than the {MAX_IMAGE_PIXELS:,} we decode; "
        f"resize it (an MRI slice needs at most a few million pixels)."
    )


# --- OpenCV: plain 8-bit JPEG/PNG --------------------------------------------------------

def _is_plain(image: Image.Image, image_format: str | None, data: bytes) -> bool:
    """Whether the opened image is plain 8-bit grey/RGB JPEG/PNG, complete, upright, opaque, still:
    then OpenCV's pixels are Pillow's. Decided from the header, without decoding."""
    if image_format not in OPENCV_FORMATS or image.format != image_format:
        return False
    if image.mode not in ("L", "RGB") or "transparency" in image.info or getattr(image, "is_animated", False):
        return False
    if image_format == "PNG":  # reading a PNG's EXIF would decode it: look for where it could be instead
        return data.endswith(PNG_END) and not any(marker in data for marker in PNG_ORIENTATION_MARKERS)
    if not data.rstrip(b"\x00").endswith(JPEG_END):  # cut short: OpenCV would grey-fill, Pillow refuses
        return False
    try:
        return image.getexif().get(EXIF_ORIENTATION, 1) == 1
    except Exception:  # unreadable EXIF: Pillow decides
        return False


def _decode_with_opencv(data: bytes, size: tuple[int, int]) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """Plain JPEG/PNG bytes -> (float32 (H, W) grey in [0, 1], warnings), or None when OpenCV
    does not give the 8-bit image the header declares."""
    width, height = size
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint8 or pixels.shape[:2] != (height, width):
        return None
    if pixels.ndim == 2:
        return pixels.astype(np.float32) / np.float32(255.0), ()
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        return None
    rgb = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)  # OpenCV gives BGR; a contiguous copy converts faster than a view
    notes = ("converted_from_color",) if _is_coloured(rgb) else ()
    return _luma(rgb) / np.float32(255.0), notes


# --- Pillow: everything ------------------------------------------------------------------

def _decode_with_pillow(image: Image.Image) -> tuple[np.ndarray, tuple[str, ...]]:
    """An opened (checked) image -> (float32 (H, W) grey in [0, 1], warnings): decode, turn upright, convert."""
    image.load()  # decodes now, so truncated data fails here (LOAD_TRUNCATED_IMAGES is off)
    animated = bool(getattr(image, "is_animated", False))
    if animated:
        image.seek(0)
    pixels, notes = _to_grey(ImageOps.exif_transpose(image))
    return pixels, (("animated_first_frame", *notes) if animated else notes)


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
    grey = _luma(rgba[..., :3])
    if has_alpha:
        alpha = rgba[..., 3]
        if (alpha < 255).any():
            notes.append("had_alpha")
        grey *= alpha.astype(np.float32) / 255.0  # composite on black
    return grey / np.float32(255.0), tuple(notes)


# --- conversions both decoders share ----------------------------------------------------

def _luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float32 luma in [0, 255]."""
    return rgb.astype(np.float32) @ LUMA_WEIGHTS


def _is_coloured(rgb: np.ndarray) -> bool:
    """(H, W, 3) uint8 -> whether the colour is real, not grey plus JPEG chroma noise."""
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]  # element-wise: far faster than max(axis=2)
    spread = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
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
