"""mri_core.io.raster: the one raster decoder. Real slices decode to upright grey [0, 1] arrays,
OpenCV's fast path gives exactly Pillow's pixels, unusual files go to Pillow, bad files get clear errors."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mri_core.io.errors import ImageTooLarge, MriError, NotASlice, UnreadableImage, UnsupportedFormat
from mri_core.io.raster import MAX_IMAGE_PIXELS, decode_raster, takes_opencv_path
from mri_core.io.volume import MIN_SIDE, Slice


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def grey_of(path: Path) -> np.ndarray:
    """The reference grey image of a real file, (H, W) float32 in [0, 1], via Pillow."""
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0


def assert_valid_slice(result: Slice, source: str, shape: tuple[int, int]) -> None:
    assert isinstance(result, Slice)
    assert result.source == source
    assert result.pixels.dtype == np.float32
    assert result.pixels.shape == shape
    assert 0.0 <= result.pixels.min() and result.pixels.max() <= 1.0


def assert_same_decoding(data: bytes, name: str) -> Slice:
    """decode_raster (OpenCV where it applies) == the Pillow-only decoder: pixels to the bit, warnings, source."""
    fast, reference = decode_raster(data, name), decode_raster(data, name, opencv=False)
    assert fast.source == reference.source
    assert fast.warnings == reference.warnings, name
    assert fast.pixels.dtype == reference.pixels.dtype == np.float32
    np.testing.assert_array_equal(fast.pixels, reference.pixels, err_msg=name)
    return fast


@pytest.fixture(scope="module")
def grey_slice(tumor_image_path: Path) -> Image.Image:
    """A real non-square slice as an 8-bit grey Pillow image (W=180, H=218)."""
    return Image.open(tumor_image_path).convert("L")


# --- the fast path: OpenCV gives exactly what Pillow gives --------------------------------

@pytest.fixture(scope="module")
def plain_scans(kaggle_dir: Path, typed_dir: Path, figshare_dir: Path) -> list[Path]:
    """Real slices of every kind the fast path takes: grey and RGB JPEG, grey and RGB PNG."""
    return [
        sorted((figshare_dir / "glioma").iterdir())[0],  # grey JPEG, 512 px
        sorted((typed_dir / "glioma").iterdir())[0],  # grey JPEG, 224 px
        kaggle_dir / "yes" / "Y1.jpg",  # RGB JPEG of a grey slice
        kaggle_dir / "no" / "31 no.jpg",  # RGB JPEG with a blue web banner: real colour
        kaggle_dir / "yes" / "Y92.png",  # grey PNG
        kaggle_dir / "no" / "no 9.png",  # RGB PNG, 1920x1080
    ]


def test_opencv_path_gives_exactly_the_pillow_pixels_on_real_grey_and_rgb_jpegs_and_pngs(plain_scans):
    kinds = set()
    for path in plain_scans:
        data = path.read_bytes()
        with Image.open(path) as image:
            kinds.add((image.format, image.mode))
        assert takes_opencv_path(data), f"{path.name} should take the fast path"
        result = assert_same_decoding(data, str(path))
        assert result.source == path.name
    assert kinds == {("JPEG", "L"), ("JPEG", "RGB"), ("PNG", "L"), ("PNG", "RGB")}
    assert "converted_from_color" in decode_raster((plain_scans[3]).read_bytes(), "banner.jpg").warnings


def test_the_fast_path_is_taken_for_nearly_every_real_slice(kaggle_dir: Path):
    """The Kaggle set is the most mixed (phone photos, web images, PNGs named .jpg); most are plain."""
    paths = sorted(p for p in kaggle_dir.glob("*/*") if p.is_file())
    fast = [p for p in paths if takes_opencv_path(p.read_bytes())]
    assert len(fast) >= 0.8 * len(paths)
    for path in paths[::10]:
        assert_same_decoding(path.read_bytes(), path.name)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunks.append((kind, data[at + 8:at + 8 + length]))
        at += 12 + length
    return chunks


def _png_from(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return out


@pytest.mark.parametrize("depth", [2, 4])
def test_grey_pngs_of_fewer_bits_take_the_fast_path_scaled_as_pillow_scales_them(depth):
    levels = np.random.default_rng(depth).integers(0, 2**depth, (24, 40))
    rows = []
    for row in levels:  # packed, most significant bits first
        bits = "".join(format(v, f"0{depth}b") for v in row)
        bits += "0" * (-len(bits) % 8)
        rows.append(b"\0" + int(bits, 2).to_bytes(len(bits) // 8, "big"))
    header = struct.pack(">IIBBBBB", 40, 24, depth, 0, 0, 0, 0)
    data = _png_from([(b"IHDR", header), (b"IDAT", zlib.compress(b"".join(rows))), (b"IEND", b"")])
    assert takes_opencv_path(data)
    pixels = assert_same_decoding(data, "low_bits.png").pixels
    np.testing.assert_allclose(pixels, levels / (2**depth - 1), atol=1e-6)


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def unusual_files(grey_slice: Image.Image, tumor_image_path: Path) -> dict[str, bytes]:
    """Files the fast path must leave to Pillow, each read the way Pillow reads it."""
    rotated = grey_slice.transpose(Image.Transpose.ROTATE_90)  # stored turned; orientation 6 turns it back
    rgba = Image.open(tumor_image_path).convert("RGBA")
    rgba.putalpha(128)
    palette = grey_slice.convert("P")
    # a PNG whose EXIF orientation comes after the pixel data: only a full decode would see it
    chunks = _png_chunks(encode(rotated, "PNG", exif=_exif(6)))
    exif_chunk = next(c for c in chunks if c[0] == b"eXIf")
    late_exif = _png_from([c for c in chunks if c[0] not in (b"eXIf", b"IEND")] + [exif_chunk, (b"IEND", b"")])
    inverted = Image.fromarray(255 - np.asarray(grey_slice))
    return {
        "exif_rotated.jpg": encode(rotated, "JPEG", quality=95, exif=_exif(6)),
        "exif_after_pixels.png": late_exif,
        "alpha.png": encode(rgba, "PNG"),
        "palette_transparent.png": encode(palette, "PNG", transparency=0),
        "animated.png": encode(grey_slice, "PNG", save_all=True, append_images=[inverted]),
        "sixteen_bit.png": encode(Image.fromarray(np.asarray(grey_slice, np.uint16) * 256), "PNG"),
        "cmyk.jpg": encode(grey_slice.convert("CMYK"), "JPEG", quality=95),
        "grey.bmp": encode(grey_slice, "BMP"),
        # 16 bits per channel: Pillow opens it as 8-bit RGB, OpenCV as 16-bit; Pillow decides
        "sixteen_bit_rgb.png": cv2.imencode(".png", np.repeat(np.asarray(grey_slice, np.uint16)[..., None] * 257, 3, 2))[1].tobytes(),
    }


def test_unusual_files_go_to_pillow_and_read_as_pillow_reads_them(grey_slice, tumor_image_path):
    for name, data in unusual_files(grey_slice, tumor_image_path).items():
        assert not takes_opencv_path(data), name
        assert_same_decoding(data, name)
    upright = np.asarray(grey_slice, np.float32) / 255.0
    for name in ("exif_rotated.jpg", "exif_after_pixels.png"):
        turned = decode_raster(unusual_files(grey_slice, tumor_image_path)[name], name).pixels
        assert turned.shape == upright.shape and np.abs(turned - upright).mean() < 0.02, name


@pytest.mark.parametrize("damage", ["cut_jpeg", "cut_png", "png_without_end", "damaged_header"])
def test_damaged_files_are_refused_by_pillow_whatever_opencv_would_make_of_them(kaggle_dir, tumor_image_path, damage):
    jpeg, png = tumor_image_path.read_bytes(), (kaggle_dir / "yes" / "Y92.png").read_bytes()
    data = {"cut_jpeg": jpeg[: len(jpeg) // 2],  # OpenCV would grey-fill the missing half
            "cut_png": png[: len(png) // 2],
            "png_without_end": png[: png.rindex(b"IDAT") + 40],
            "damaged_header": png[:16] + b"\xff" * 8 + png[24:]}[damage]
    assert not takes_opencv_path(data)
    with pytest.raises(UnreadableImage, match="broken.img") as fast:
        decode_raster(data, "broken.img")
    with pytest.raises(UnreadableImage) as reference:
        decode_raster(data, "broken.img", opencv=False)
    assert str(fast.value) == str(reference.value)


# --- what the decoder gives ---------------------------------------------------------------

def test_rgb_jpeg_becomes_its_luminance(tumor_image_path: Path):
    result = decode_raster(tumor_image_path.read_bytes(), str(tumor_image_path))
    assert_valid_slice(result, "Y1.jpg", (218, 180))
    assert np.abs(result.pixels - grey_of(tumor_image_path)).max() <= 1.0 / 255 + 1e-6
    assert "converted_from_color" not in result.warnings  # grey saved as RGB is not worth a warning


def test_grayscale_jpeg_is_scaled_by_255(kaggle_dir: Path):
    path = kaggle_dir / "yes" / "Y10.jpg"
    with Image.open(path) as image:
        assert image.mode == "L"
        expected = np.asarray(image, dtype=np.float32) / 255.0
    result = decode_raster(path.read_bytes(), path.name)
    np.testing.assert_allclose(result.pixels, expected, atol=1e-6)
    assert result.warnings == ()


def test_palette_png_is_decoded(kaggle_dir: Path):
    path = kaggle_dir / "no" / "no 98.jpg"  # a palette PNG with a .jpg name: the bytes decide
    result = decode_raster(path.read_bytes(), path.name)
    assert_valid_slice(result, "no 98.jpg", (725, 728))
    assert np.abs(result.pixels - grey_of(path)).mean() < 0.01


def test_opaque_alpha_is_not_flagged(kaggle_dir: Path):
    result = decode_raster((kaggle_dir / "no" / "No15.jpg").read_bytes(), "No15.jpg")  # RGBA PNG, all opaque
    assert "had_alpha" not in result.warnings


def test_sixteen_bit_png_uses_the_full_range(grey_slice: Image.Image):
    # a 12-bit scanner range (0..4080) stored in a 16-bit PNG, as DICOM exports often are
    levels = np.asarray(grey_slice, dtype=np.uint16) * 16
    result = decode_raster(encode(Image.fromarray(levels), "PNG"), "slice16.png")
    assert_valid_slice(result, "slice16.png", levels.shape)
    assert "16_bit" in result.warnings
    # windowed, not divided by 65535 (which would leave it almost black)
    assert result.pixels.max() == 1.0 and result.pixels.mean() > 0.15
    assert np.corrcoef(result.pixels.ravel(), levels.ravel())[0, 1] > 0.99


def test_flat_sixteen_bit_image_does_not_divide_by_zero():
    result = decode_raster(encode(Image.fromarray(np.full((32, 40), 1000, np.uint16)), "PNG"), "flat16.png")
    assert np.isfinite(result.pixels).all() and result.pixels.shape == (32, 40)


def test_float_tiff_is_windowed_and_nan_becomes_black(grey_slice: Image.Image):
    values = np.asarray(grey_slice, dtype=np.float32) * 3.7 - 120.0  # arbitrary units
    values[:10, :10] = np.nan
    result = decode_raster(encode(Image.fromarray(values), "TIFF"), "scan.tif")
    assert_valid_slice(result, "scan.tif", values.shape)
    assert (result.pixels[:10, :10] == 0).all() and result.warnings == ("float",)
    finite = np.isfinite(values)
    assert np.corrcoef(result.pixels[finite], values[finite])[0, 1] > 0.99


def test_bmp_tiff_and_webp_decode_like_png(grey_slice: Image.Image):
    expected = np.asarray(grey_slice, dtype=np.float32) / 255.0
    for fmt, name, params in (("BMP", "a.bmp", {}), ("TIFF", "a.tiff", {}), ("PNG", "a.png", {}),
                              ("WEBP", "a.webp", {"lossless": True})):
        result = decode_raster(encode(grey_slice, fmt, **params), name)
        np.testing.assert_allclose(result.pixels, expected, atol=1e-6, err_msg=fmt)


def test_alpha_is_composited_on_black(grey_slice: Image.Image):
    rgba = grey_slice.convert("RGBA")
    alpha = np.full(grey_slice.size[::-1], 255, np.uint8)
    alpha[:, : alpha.shape[1] // 2] = 0  # left half fully transparent
    rgba.putalpha(Image.fromarray(alpha))
    result = decode_raster(encode(rgba, "PNG"), "overlay.png")
    expected = np.asarray(grey_slice, dtype=np.float32) / 255.0
    half = alpha.shape[1] // 2
    assert (result.pixels[:, :half] == 0).all()
    np.testing.assert_allclose(result.pixels[:, half:], expected[:, half:], atol=1.0 / 255)
    assert "had_alpha" in result.warnings


def test_cmyk_jpeg_becomes_grey_with_a_warning(grey_slice: Image.Image):
    result = decode_raster(encode(grey_slice.convert("CMYK"), "JPEG", quality=95), "print.jpg")
    expected = np.asarray(grey_slice, dtype=np.float32) / 255.0
    assert result.pixels.shape == expected.shape and np.abs(result.pixels - expected).mean() < 0.03
    assert "converted_from_cmyk" in result.warnings


def test_animated_gif_gives_first_frame_and_a_warning(grey_slice: Image.Image):
    inverted = Image.fromarray(255 - np.asarray(grey_slice))
    data = encode(grey_slice, "GIF", save_all=True, append_images=[inverted], duration=100)
    result = decode_raster(data, "cine.gif")
    assert np.abs(result.pixels - np.asarray(grey_slice, dtype=np.float32) / 255.0).mean() < 0.02
    assert result.warnings[0] == "animated_first_frame"


def test_source_drops_directories(tumor_image_path: Path):
    result = decode_raster(tumor_image_path.read_bytes(), "/some/upload/dir/Y1.jpg")
    assert result.source == "Y1.jpg"
    assert (result.index, result.count, result.spacing) == (0, 1, None)


# --- refusals: the right error class, and the file named in the message ------------------

def assert_refused(error: type[MriError], data: bytes, name: str) -> str:
    with pytest.raises(error) as caught:
        decode_raster(data, name)
    message = str(caught.value)
    assert name in message
    return message


def test_empty_file_is_unreadable():
    assert "empty" in assert_refused(UnreadableImage, b"", "empty.png")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_jpeg_is_unreadable(tumor_image_path: Path, cut: float):
    data = tumor_image_path.read_bytes()
    assert "JPEG data is damaged" in assert_refused(UnreadableImage, data[: int(len(data) * cut)], "cut.jpg")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_png_is_unreadable(kaggle_dir: Path, cut: float):
    data = (kaggle_dir / "yes" / "Y92.png").read_bytes()
    assert_refused(UnreadableImage, data[: int(len(data) * cut)], "cut.png")


def test_png_cut_inside_its_header_is_unreadable(kaggle_dir: Path):
    data = (kaggle_dir / "yes" / "Y92.png").read_bytes()
    assert_refused(UnreadableImage, data[:20], "header.png")


def test_garbage_after_a_jpeg_signature_is_unreadable():
    assert_refused(UnreadableImage, b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20, "noise.jpg")


def test_text_and_pdf_are_unsupported_formats_and_the_message_lists_ours():
    for data, name in ((b"patient notes: no findings\n" * 20, "notes.png"),
                       (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n" + b"\0" * 200, "report.pdf")):
        message = assert_refused(UnsupportedFormat, data, name)
        assert "PNG" in message and "JPEG" in message


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid-looking 1-bit PNG whose header declares width x height pixels."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 + (width + 7) // 8) * 4)  # a few rows; never reached
    return _png_from([(b"IHDR", header), (b"IDAT", rows), (b"IEND", b"")])


@pytest.mark.parametrize("side", [9_000, 10_000, 30_000])  # above our limit; where Pillow warns; above its limit
def test_decompression_bomb_is_too_large(side: int):
    data = png_declaring(side, side)
    assert len(data) < 10_000 and side * side > MAX_IMAGE_PIXELS
    assert "resize" in assert_refused(ImageTooLarge, data, "bomb.png")


@pytest.mark.parametrize("size", [(200, 1), (1, 200), (8, 8)])
def test_tiny_image_is_not_a_slice(size: tuple[int, int]):
    message = assert_refused(NotASlice, encode(Image.new("L", size, 128), "PNG"), "line.png")
    assert f"{MIN_SIDE}x{MIN_SIDE}" in message


def test_smallest_allowed_image_decodes_on_both_paths():
    data = encode(Image.new("L", (MIN_SIDE, MIN_SIDE), 128), "PNG")
    assert takes_opencv_path(data)
    assert assert_same_decoding(data, "s.png").pixels.shape == (MIN_SIDE, MIN_SIDE)


def test_errors_are_also_value_errors(tumor_image_path: Path):
    with pytest.raises(ValueError):  # callers with a plain `except ValueError` still catch our refusals
        decode_raster(tumor_image_path.read_bytes()[:500], "cut.jpg")
