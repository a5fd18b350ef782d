"""mri_core.io.slices: real slices decode to upright grey [0, 1] arrays; bad files get clear errors."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mri_core.io.errors import (
    ImageTooLarge,
    MriError,
    NotASlice,
    UnreadableImage,
    UnsupportedFormat,
)
from mri_core.io.slices import MAX_IMAGE_PIXELS, MIN_SIDE, Slice, decode_image, read_file


def grey_of(path: Path) -> np.ndarray:
    """The reference grey image of a real file, (H, W) float32 in [0, 1], via Pillow."""
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def assert_valid_slice(result: Slice, source: str, shape: tuple[int, int]) -> None:
    assert isinstance(result, Slice)
    assert result.source == source
    assert result.pixels.dtype == np.float32
    assert result.pixels.shape == shape
    assert 0.0 <= result.pixels.min() and result.pixels.max() <= 1.0


@pytest.fixture(scope="module")
def grey_slice(tumor_image_path: Path) -> Image.Image:
    """A real non-square slice as an 8-bit grey Pillow image (W=180, H=218)."""
    return Image.open(tumor_image_path).convert("L")


# --- reading real files -----------------------------------------------------------------


def test_every_kaggle_image_decodes_to_a_grey_unit_range_slice(kaggle_dir: Path):
    paths = sorted(p for p in kaggle_dir.glob("*/*") if p.is_file())
    assert len(paths) > 200
    for path in paths:
        [result] = read_file(path)
        with Image.open(path) as image:
            width, height = image.size
        assert_valid_slice(result, path.name, (height, width))
        assert result.pixels.max() > 0.2, f"{path.name} decoded nearly black"


def test_rgb_jpeg_becomes_its_luminance(tumor_image_path: Path):
    with Image.open(tumor_image_path) as image:
        assert (image.format, image.mode) == ("JPEG", "RGB")
    [result] = read_file(tumor_image_path)
    assert_valid_slice(result, "Y1.jpg", (218, 180))
    assert np.abs(result.pixels - grey_of(tumor_image_path)).max() <= 1.0 / 255 + 1e-6
    # grey saved as RGB is not worth a warning; only real colour is
    assert "converted_from_color" not in result.warnings


def test_grayscale_jpeg_is_scaled_by_255(kaggle_dir: Path):
    path = kaggle_dir / "yes" / "Y10.jpg"
    with Image.open(path) as image:
        assert image.mode == "L"
        expected = np.asarray(image, dtype=np.float32) / 255.0
    [result] = read_file(path)
    np.testing.assert_allclose(result.pixels, expected, atol=1e-6)
    assert result.warnings == ()


def test_format_is_sniffed_from_bytes_not_the_extension(kaggle_dir: Path):
    path = kaggle_dir / "no" / "No15.jpg"  # a PNG published with a .jpg name
    [result] = read_file(path)
    assert_valid_slice(result, "No15.jpg", (400, 393))


def test_coloured_annotations_are_converted_and_flagged(kaggle_dir: Path):
    [result] = read_file(kaggle_dir / "no" / "31 no.jpg")  # carries a blue web banner
    assert result.pixels.ndim == 2
    assert "converted_from_color" in result.warnings


def test_palette_png_is_decoded(kaggle_dir: Path):
    path = kaggle_dir / "no" / "no 98.jpg"  # a palette PNG
    [result] = read_file(path)
    assert_valid_slice(result, "no 98.jpg", (725, 728))
    assert np.abs(result.pixels - grey_of(path)).mean() < 0.01


def test_sixteen_bit_png_uses_the_full_range(grey_slice: Image.Image, tmp_path: Path):
    # a 12-bit scanner range (0..4080) stored in a 16-bit PNG, as DICOM exports often are
    levels = np.asarray(grey_slice, dtype=np.uint16) * 16
    path = tmp_path / "slice16.png"
    Image.fromarray(levels).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I")
    [result] = read_file(path)
    assert_valid_slice(result, "slice16.png", levels.shape)
    assert "16_bit" in result.warnings
    # windowed, not divided by 65535 (which would leave it almost black)
    assert result.pixels.max() == 1.0 and result.pixels.mean() > 0.15
    correlation = np.corrcoef(result.pixels.ravel(), levels.ravel())[0, 1]
    assert correlation > 0.99


def test_flat_sixteen_bit_image_does_not_divide_by_zero(tmp_path: Path):
    path = tmp_path / "flat16.png"
    Image.fromarray(np.full((32, 40), 1000, np.uint16)).save(path)
    [result] = read_file(path)
    assert np.isfinite(result.pixels).all() and result.pixels.shape == (32, 40)


def test_float_tiff_is_windowed_and_nan_becomes_black(grey_slice: Image.Image):
    values = np.asarray(grey_slice, dtype=np.float32) * 3.7 - 120.0  # arbitrary units
    values[:10, :10] = np.nan
    result = decode_image(encode(Image.fromarray(values), "TIFF"), "scan.tif")
    assert_valid_slice(result, "scan.tif", values.shape)
    assert (result.pixels[:10, :10] == 0).all()
    finite = np.isfinite(values)
    assert np.corrcoef(result.pixels[finite], values[finite])[0, 1] > 0.99


def test_bmp_and_tiff_decode_like_png(grey_slice: Image.Image):
    expected = np.asarray(grey_slice, dtype=np.float32) / 255.0
    for fmt, name in (("BMP", "a.bmp"), ("TIFF", "a.tiff"), ("PNG", "a.png")):
        result = decode_image(encode(grey_slice, fmt), name)
        np.testing.assert_allclose(result.pixels, expected, atol=1e-6, err_msg=fmt)


def test_exif_orientation_is_applied(grey_slice: Image.Image):
    # stored rotated 90 degrees counter-clockwise; Orientation=6 says "turn it clockwise"
    stored = grey_slice.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", quality=95, exif=exif)
    result = decode_image(data, "phone_photo.jpg")
    expected = np.asarray(grey_slice, dtype=np.float32) / 255.0
    assert result.pixels.shape == expected.shape  # (218, 180), upright again
    assert np.abs(result.pixels - expected).mean() < 0.02


def test_alpha_is_composited_on_black(grey_slice: Image.Image):
    rgba = grey_slice.convert("RGBA")
    alpha = np.full(grey_slice.size[::-1], 255, np.uint8)
    alpha[:, : alpha.shape[1] // 2] = 0  # left half fully transparent
    rgba.putalpha(Image.fromarray(alpha))
    result = decode_image(encode(rgba, "PNG"), "overlay.png")
    expected = np.asarray(grey_slice, dtype=np.float32) / 255.0
    half = alpha.shape[1] // 2
    assert (result.pixels[:, :half] == 0).all()
    np.testing.assert_allclose(result.pixels[:, half:], expected[:, half:], atol=1.0 / 255)
    assert "had_alpha" in result.warnings


def test_opaque_alpha_is_not_flagged(kaggle_dir: Path):
    [result] = read_file(kaggle_dir / "no" / "No15.jpg")  # RGBA PNG, every pixel opaque
    assert "had_alpha" not in result.warnings


def test_cmyk_jpeg_becomes_grey(grey_slice: Image.Image):
    data = encode(grey_slice.convert("CMYK"), "JPEG", quality=95)
    result = decode_image(data, "print.jpg")
    expected = np.asarray(grey_slice, dtype=np.float32) / 255.0
    assert result.pixels.shape == expected.shape
    assert np.abs(result.pixels - expected).mean() < 0.03


def test_animated_gif_gives_first_frame_and_a_warning(grey_slice: Image.Image):
    inverted = Image.fromarray(255 - np.asarray(grey_slice))
    buffer = io.BytesIO()
    grey_slice.save(buffer, "GIF", save_all=True, append_images=[inverted], duration=100)
    result = decode_image(buffer.getvalue(), "cine.gif")
    expected = np.asarray(grey_slice, dtype=np.float32) / 255.0
    assert np.abs(result.pixels - expected).mean() < 0.02
    assert "animated_first_frame" in result.warnings


def test_source_drops_directories(tumor_image_path: Path):
    result = decode_image(tumor_image_path.read_bytes(), "/some/upload/dir/Y1.jpg")
    assert result.source == "Y1.jpg"
    assert (result.index, result.count, result.spacing) == (0, 1, None)


# --- refusals: the right error class, and the file named in the message ------------------


def assert_refused(error: type[MriError], data: bytes, name: str) -> str:
    with pytest.raises(error) as caught:
        decode_image(data, name)
    message = str(caught.value)
    assert name in message
    return message


def test_empty_file_is_unreadable():
    assert "empty" in assert_refused(UnreadableImage, b"", "empty.png")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_jpeg_is_unreadable(tumor_image_path: Path, cut: float):
    data = tumor_image_path.read_bytes()
    assert_refused(UnreadableImage, data[: int(len(data) * cut)], "cut.jpg")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_png_is_unreadable(kaggle_dir: Path, cut: float):
    data = (kaggle_dir / "yes" / "Y92.png").read_bytes()
    assert_refused(UnreadableImage, data[: int(len(data) * cut)], "cut.png")


def test_png_cut_inside_its_header_is_unreadable(kaggle_dir: Path):
    data = (kaggle_dir / "yes" / "Y92.png").read_bytes()
    assert_refused(UnreadableImage, data[:20], "header.png")


def test_garbage_after_a_jpeg_signature_is_unreadable():
    data = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20
    assert_refused(UnreadableImage, data, "noise.jpg")


def test_text_is_an_unsupported_format():
    message = assert_refused(UnsupportedFormat, b"patient notes: no findings\n" * 20, "notes.png")
    for fmt in ("PNG", "JPEG"):
        assert fmt in message


def test_pdf_is_an_unsupported_format():
    data = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n" + b"\0" * 200
    message = assert_refused(UnsupportedFormat, data, "report.pdf")
    assert "PNG" in message


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid-looking 1-bit PNG whose header declares width x height pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 + (width + 7) // 8) * 4)  # a few rows; never reached
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [9_000, 30_000])  # above our limit; above Pillow's too
def test_decompression_bomb_is_too_large(side: int):
    data = png_declaring(side, side)
    assert len(data) < 10_000 and side * side > MAX_IMAGE_PIXELS
    message = assert_refused(ImageTooLarge, data, "bomb.png")
    assert "resize" in message


@pytest.mark.parametrize("size", [(200, 1), (1, 200), (8, 8)])
def test_tiny_image_is_not_a_slice(size: tuple[int, int]):
    data = encode(Image.new("L", size, 128), "PNG")
    message = assert_refused(NotASlice, data, "line.png")
    assert f"{MIN_SIDE}x{MIN_SIDE}" in message


def test_smallest_allowed_image_decodes():
    result = decode_image(encode(Image.new("L", (MIN_SIDE, MIN_SIDE), 128), "PNG"), "s.png")
    assert result.pixels.shape == (MIN_SIDE, MIN_SIDE)


def test_missing_file_names_the_path(tmp_path: Path):
    path = tmp_path / "nowhere" / "scan.png"
    with pytest.raises(UnreadableImage, match="not found") as caught:
        read_file(path)
    assert str(path) in str(caught.value)


def test_errors_are_also_value_errors(tumor_image_path: Path):
    # callers with a plain `except ValueError` still catch our refusals
    with pytest.raises(ValueError):
        decode_image(tumor_image_path.read_bytes()[:500], "cut.jpg")


# --- scanner files: DICOM, NIfTI, zips and folders of them -------------------------------

def test_scanner_formats_are_sniffed_from_the_bytes(tumor_image_path, tmp_path):
    from scans import dicom_bytes, grey_uint8, nifti_bytes

    from mri_core.io.slices import sniff_format

    source = grey_uint8(tumor_image_path)
    assert sniff_format(dicom_bytes(source)) == "DICOM"
    assert sniff_format(dicom_bytes(source, preamble=False)) == "DICOM"
    assert sniff_format(nifti_bytes(source[None])) == "NIFTI"
    assert sniff_format(nifti_bytes(source[None], gz=True)) == "NIFTI"


def test_two_series_in_one_zip_become_two_volumes_read_in_memory(kaggle_dir):
    import zipfile

    from scans import dicom_bytes, stack_of

    from mri_core.io.slices import read_volumes, volume_slices

    stack = stack_of(sorted((kaggle_dir / "yes").iterdir())[:5], size=64)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(3):
            archive.writestr(f"export/T1/IM{i}", dicom_bytes(stack[i], series_uid="1.2.1", position=i))
        for i in range(2):
            archive.writestr(f"export/T2/IM{i}", dicom_bytes(stack[3 + i], series_uid="1.2.2", position=i))
        archive.writestr("export/DICOMDIR", b"not needed")  # unknown bytes among a series: skipped
        archive.writestr("__MACOSX/export/._IM0", b"resource fork")
    volumes = sorted(read_volumes([("study.zip", buffer.getvalue())]), key=lambda v: v.count)
    assert [v.count for v in volumes] == [2, 3]
    assert volumes[1].source == "study.zip/export/T1 (3 files)"
    middle = volume_slices(volumes[1])[0]
    assert (middle.index, middle.count) == (1, 3)
    np.testing.assert_allclose(middle.pixels * 255.0, stack[1], atol=0.01)


def test_dicom_folder_reads_as_one_series_and_slices_can_be_chosen(kaggle_dir, tmp_path):
    from scans import dicom_bytes, stack_of

    stack = stack_of(sorted((kaggle_dir / "no").iterdir())[:4], size=64)
    folder = tmp_path / "series"
    folder.mkdir()
    for i, s in enumerate(stack):
        (folder / f"IM{i:04d}").write_bytes(dicom_bytes(s, instance=4 - i))  # instance order is reversed
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    slices = read_file(folder, "all")
    assert [s.index for s in slices] == [0, 1, 2, 3] and all(s.count == 4 for s in slices)
    np.testing.assert_allclose(slices[0].pixels * 255.0, stack[3], atol=0.01)
    [chosen] = read_file(folder, 1)
    np.testing.assert_allclose(chosen.pixels * 255.0, stack[2], atol=0.01)


def test_a_volume_is_not_one_slice_for_decode_image(kaggle_dir):
    from scans import nifti_bytes, stack_of

    with pytest.raises(NotASlice, match=r"vol\.nii: holds 1 series with 3 slices.*--slice"):
        decode_image(nifti_bytes(stack_of(sorted((kaggle_dir / "no").iterdir())[:3], size=32)), "vol.nii")


def test_several_files_of_no_scan_format_are_refused_with_the_formats():
    from mri_core.io.slices import read_volumes

    with pytest.raises(UnsupportedFormat, match="notes.txt, more.txt: holds no scan we read.*DICOM.*NIfTI"):
        read_volumes([("notes.txt", b"hello " * 10), ("more.txt", b"there " * 10)])
