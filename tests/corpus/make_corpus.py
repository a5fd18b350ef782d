"""Bad and odd inputs for the reliability tests, written at test time into a temp folder.

Nothing here is committed data and nothing comes from ../shared/data: every file is built
from synthetic pixels with Pillow, pydicom, nibabel and zipfile (the model packages start
from a copy of the shipped default in assets/models). `build_corpus(folder)` writes every
item and returns {item name: path}; tests/io/test_corpus.py holds the table of what each item
must give. Run as a script to write the corpus into a folder: `python make_corpus.py DIR`.
"""

from __future__ import annotations

import gzip
import io
import json
import stat
import struct
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset, FileMetaDataset

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT / "tests"))
from scans import dicom_bytes  # noqa: E402

SIZE = 128  # side of the synthetic slices
ZIP_BOMB_BYTES = 2_300 * 1024**2  # unpacks past the one limit of every zip (io.zips: 1 GiB)


def brain_slice(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """A synthetic axial slice: uint8 (size, size), a bright textured ellipse on black."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / size - 0.5
    head = (x / 0.38) ** 2 + (y / 0.45) ** 2 < 1
    pixels = head * (120 + 60 * np.sin(9 * x + 4 * y) + rng.normal(0, 12, (size, size)))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def deflate_zeros(n_bytes: int, chunk: int = 64 * 1024**2) -> tuple[bytes, int]:
    """Raw deflate of n_bytes zeros (a multiple of chunk) -> (stream, crc32), built fast: after a
    full flush the compressor forgets its history, so each chunk of zeros compresses the same."""
    zeros = bytes(chunk)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(n_bytes // chunk):
        crc = zlib.crc32(zeros, crc)
    return block * (n_bytes // chunk) + compressor.flush(zlib.Z_FINISH), crc


def zip_with_deflated(name: str, stream: bytes, crc: int, size: int) -> bytes:
    """A one-member zip around an already deflated stream (zipfile cannot take one)."""
    encoded = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(stream), size, len(encoded), 0)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(stream), size,
                          len(encoded), 0, 0, 0, 0, 0, 0)
    offset = len(local) + len(encoded) + len(stream)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(encoded), offset, 0)
    return local + encoded + stream + central + encoded + end


def zip_of(members: list[tuple[str, bytes]], symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but whose data is a few bytes: a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(1024))) + chunk(b"IEND", b"")


def dicom_object(sop_class: str, **tags) -> bytes:
    """A DICOM object of `sop_class` without pixel data (a report, an RT plan ...)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = dicom_uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = dicom_uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def rgb_dicom(pixels: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> an RGB (colour) secondary-capture DICOM."""
    data = dicom_bytes(pixels[..., 0])
    from pydicom import dcmread

    ds = dcmread(io.BytesIO(data))
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def nifti(data: np.ndarray, **header) -> bytes:
    image = nib.Nifti1Image(data, np.eye(4))
    for key, value in header.items():
        image.header[key] = value
    return image.to_bytes()


def nifti_declaring(dims: tuple[int, ...]) -> bytes:
    """A NIfTI header declaring `dims` with a few voxels behind it."""
    raw = bytearray(nifti(np.zeros((16, 16, 2), np.uint8)))
    raw[40:56] = struct.pack("<8h", len(dims), *dims, *([1] * (7 - len(dims))))
    return bytes(raw)


def scan_items(slice_: np.ndarray) -> dict[str, bytes]:
    """Every file-like item for io / the CLI / the Diagnose page: name -> bytes."""
    grey = Image.fromarray(slice_)
    jpeg, png = encode(grey, "JPEG", quality=90), encode(grey, "PNG")
    dicom = dicom_bytes(slice_, SeriesDescription="corpus")
    colour = np.stack([slice_, np.roll(slice_, 20, axis=1), slice_ // 2], axis=-1)
    alpha = np.dstack([slice_, slice_, slice_, np.where(slice_ > 0, 255, 0).astype(np.uint8)])
    frames = [Image.fromarray(brain_slice(s)) for s in range(3)]
    palette = grey.convert("P")
    palette.info["transparency"] = 0
    exif = grey.getexif()
    exif[0x0112] = 6  # rotated 90 degrees
    items = {
        "empty.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "truncated.png": png[: len(png) // 2],
        "png_named.dcm": png,
        "dicom_named.jpg": dicom,
        "notes.txt": b"Patient scan notes: see the attached MRI.\n" * 20,
        "report.pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
        "page_named.png": b"<!DOCTYPE html><html><body>not an image</body></html>",
        "random.bin": np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "bomb.png": png_declaring(100_000, 100_000),
        "one_pixel.png": encode(Image.new("L", (1, 1), 128), "PNG"),
        "huge_20000.png": encode(Image.new("1", (20_000, 20_000), 0), "PNG"),
        "thin_line.png": encode(Image.new("L", (4000, 8), 200), "PNG"),
        "tiff_16bit.tif": encode(Image.fromarray(slice_.astype(np.uint16) * 257), "TIFF"),
        "tiff_float.tif": encode(Image.fromarray(slice_.astype(np.float32) / 7.0), "TIFF"),
        "tiff_32bit_int.tif": encode(Image.fromarray(slice_.astype(np.int32) * 1000), "TIFF"),
        "animated.gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100),
        "cmyk.jpg": encode(grey.convert("RGB").convert("CMYK"), "JPEG", quality=90),
        "alpha.png": encode(Image.fromarray(alpha, "RGBA"), "PNG"),
        "palette_transparent.png": encode(palette, "PNG"),
        "colour.png": encode(Image.fromarray(colour, "RGB"), "PNG"),
        "grey_as_rgb.jpg": encode(grey.convert("RGB"), "JPEG", quality=90),
        "exif_rotated.jpg": encode(grey, "JPEG", exif=exif),
        "lossless.webp": encode(grey, "WEBP", lossless=True),
        "one_bit.bmp": encode(grey.point(lambda v: 255 if v > 100 else 0).convert("1"), "BMP"),
        "black.png": encode(Image.new("L", (SIZE, SIZE), 0), "PNG"),
        "dicom_no_pixels.dcm": dicom_object(dicom_uid.MRImageStorage, Modality="MR"),
        "dicom_bad_dims.dcm": dicom_bytes(slice_, Rows=SIZE * 2, Columns=SIZE * 3),
        "dicom_sr.dcm": dicom_object(dicom_uid.ComprehensiveSRStorage, Modality="SR"),
        "dicom_rt_plan.dcm": dicom_object(dicom_uid.RTPlanStorage, Modality="RTPLAN"),
        "dicom_rgb.dcm": rgb_dicom(colour),
        "dicom_truncated.dcm": dicom[: len(dicom) // 2],
        "dicom_mpeg4.dcm": dicom_bytes(slice_, dicom_uid.MPEG4HP41),
        "dicom_1x1.dcm": dicom_bytes(np.full((1, 1), 100, np.uint8)),
        "dicom_frames_mismatch.dcm": dicom_bytes(slice_, NumberOfFrames=5),
        "DICOMDIR": dicom_object(dicom_uid.MediaStorageDirectoryStorage),
        "nifti_zero_dim.nii": nifti(np.zeros((64, 64, 0), np.float32)),
        "nifti_nan_inf.nii": nifti(np.where(np.arange(SIZE)[None, :, None] % 7 == 0, np.nan,
                                            np.where(np.arange(SIZE)[:, None, None] % 11 == 0, np.inf,
                                                     np.repeat(slice_[..., None], 3, axis=2))).astype(np.float32)),
        "nifti_all_nan.nii": nifti(np.full((32, 32, 4), np.nan, np.float32)),
        "nifti_2d.nii": nifti(slice_.astype(np.float32)),
        "nifti_5d.nii": nifti(np.zeros((8, 8, 8, 2, 3), np.float32)),
        "nifti_truncated.nii.gz": gzip.compress(nifti(np.repeat(slice_[..., None], 4, axis=2)))[:2000],
        "nifti_bomb.nii": nifti_declaring((30_000, 30_000, 30_000)),
        "nifti_pair.hdr": nifti(np.zeros((16, 16, 2), np.uint8))[:348].replace(b"n+1\x00", b"ni1\x00"),
        "nifti_rgb.nii": nifti(np.zeros((16, 16, 2, 1, 1), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])),
        "zip_nested.zip": zip_of([("inner.zip", zip_of([("IM0001", dicom)]))]),
        "zip_bomb.zip": zip_with_deflated("zeros.dcm", *deflate_zeros(ZIP_BOMB_BYTES), ZIP_BOMB_BYTES),
        "zip_empty.zip": zip_of([]),
        "zip_corrupt.zip": b"PK\x03\x04" + bytes(200),
        "zip_traversal_scan.zip": zip_of([("../../../etc/IM0001", dicom)]),
        "zip_symlink_scan.zip": zip_of([("IM0001", b"/etc/passwd")], symlinks=("IM0001",)),
    }
    return items


def archive_items(slice_: np.ndarray, bomb: bytes) -> dict[str, bytes]:
    """Training-data zips for uploads.extract_zip: name -> bytes."""
    png = encode(Image.fromarray(slice_), "PNG")
    return {
        "train_traversal.zip": zip_of([("no/a.png", png), ("../../evil.png", png)]),
        "train_absolute.zip": zip_of([("no/a.png", png), ("/tmp/evil.png", png)]),
        "train_symlink.zip": zip_of([("no/a.png", png), ("yes/link.png", b"/etc/passwd")], symlinks=("yes/link.png",)),
        "train_bomb.zip": bomb,
        "train_nested.zip": zip_of([("data.zip", zip_of([("no/a.png", png), ("yes/b.png", png)]))]),
        "train_not_a_zip.zip": png,
    }


def model_items(folder: Path) -> list[str]:
    """Damaged model packages (folders) derived from a copy of the shipped default."""
    shipped = PROJECT_ROOT / "assets" / "models"
    source = shipped / (shipped / "DEFAULT").read_text().strip()
    info = json.loads((source / "model.json").read_text())

    def package(name: str, info_text: str | None, weights: bytes | None) -> str:
        target = folder / name
        target.mkdir()
        if info_text is not None:
            (target / "model.json").write_text(info_text)
        if weights is not None:
            (target / "model.keras").write_bytes(weights)
        return name

    weights = (source / "model.keras").read_bytes()
    without = {k: v for k, v in info.items() if k not in ("class_names", "threshold")}
    return [
        package("model_corrupt", json.dumps(info), b"PK\x03\x04 not really a keras file" * 100),
        package("model_truncated", json.dumps(info), weights[: len(weights) // 2]),
        package("model_missing_keys", json.dumps(without), weights),
        package("model_wrong_class_count", json.dumps({**info, "class_names": ["no", "yes"],
                                                       "no_tumor_classes": ["no"]}), weights),
        package("model_unknown_architecture", json.dumps({**info, "architecture": "vit-giant"}), weights),
        package("model_bad_json", "{'name': 'not json',", weights),
        package("model_no_weights", json.dumps(info), None),
        package("model_lambda", *lambda_package(info)),
        package("model_foreign_code", json.dumps(info), foreign_code_keras(weights)),
    ]


def lambda_package(info: dict) -> tuple[str, bytes]:
    """(model.json, model.keras) of a small functional model with a Lambda layer (Python code inside)."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 1))
    features = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    features = keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(features)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, outputs)
    with_lambda = {**info, "architecture": "paper", "input": {"size": SIZE, "channels": 1}, "class_names": ["no", "yes"],
                   "no_tumor_classes": ["no"], "gradcam_layer": "conv"}
    with tempfile.TemporaryDirectory() as scratch:  # Keras saves to a file name only
        model.save(Path(scratch) / "model.keras")
        data = (Path(scratch) / "model.keras").read_bytes()
    return json.dumps(with_lambda), data


def foreign_code_keras(weights: bytes) -> bytes:
    """The shipped model.keras with its config naming a class from a module outside Keras (os.system)."""
    source = zipfile.ZipFile(io.BytesIO(weights))
    config = json.loads(source.read("config.json"))
    config["config"]["layers"][1].update({"module": "os", "class_name": "system", "registered_name": "system"})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for member in source.infolist():
            data = json.dumps(config).encode() if member.filename == "config.json" else source.read(member)
            target.writestr(member, data)
    return buffer.getvalue()


def dataset_items(folder: Path) -> list[str]:
    """Training-data folders that cannot train a model."""
    def image(path: Path, seed: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(Image.fromarray(brain_slice(seed)), "PNG"))

    for i in range(12):
        image(folder / "data_one_class" / "yes" / f"y{i}.png", i)
        image(folder / "data_empty_class" / "no" / f"n{i}.png", i)
        (folder / "data_unreadable_class" / "yes" / f"y{i}.png").parent.mkdir(parents=True, exist_ok=True)
        (folder / "data_unreadable_class" / "yes" / f"y{i}.png").write_bytes(b"not a png")
        image(folder / "data_unreadable_class" / "no" / f"n{i}.png", 100 + i)
        image(folder / "data_unknown_folder" / "tumour_maybe" / f"t{i}.png", i)
    (folder / "data_empty_class" / "yes").mkdir(parents=True)
    for i in range(2):
        image(folder / "data_too_few" / "yes" / f"y{i}.png", i)
        image(folder / "data_too_few" / "no" / f"n{i}.png", 10 + i)
    (folder / "data_not_a_folder").write_bytes(b"")
    return ["data_one_class", "data_empty_class", "data_unreadable_class", "data_unknown_folder", "data_too_few",
            "data_not_a_folder", "data_missing"]


def build_corpus(folder: str | Path) -> dict[str, Path]:
    """Write every corpus item under folder -> {item name: its path} (folders for models and data sets)."""
    folder = Path(folder)
    slice_ = brain_slice()
    paths = {}
    for subfolder, items in (("scans", scan_items(slice_)), ("archives", None)):
        (folder / subfolder).mkdir(parents=True, exist_ok=True)
        if items is None:
            items = archive_items(slice_, (folder / "scans" / "zip_bomb.zip").read_bytes())
        for name, data in items.items():
            (folder / subfolder / name).write_bytes(data)
            paths[name] = folder / subfolder / name
    for subfolder, make in (("models", model_items), ("datasets", dataset_items)):
        (folder / subfolder).mkdir(exist_ok=True)
        paths.update({name: folder / subfolder / name for name in make(folder / subfolder)})
    return paths


if __name__ == "__main__":
    written = build_corpus(sys.argv[1] if len(sys.argv) > 1 else "corpus")
    print(f"{len(written)} items written")
