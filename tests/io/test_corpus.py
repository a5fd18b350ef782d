"""Every bad or odd input of the corpus (tests/corpus/make_corpus.py) against the one table below.

The table says, for each item, whether it is read (and with which warnings) or refused (with
which `MriError` subclass and a fragment of its message); docs/benchmarks.md shows
the same table (`python tests/io/test_corpus.py` prints it, a test keeps the two equal). Items are
checked through the library (io, model, datasets, training uploads) and, for every scan-like item at
once, through the CLI: refused files give `{"file", "error"}` lines, the rest are answered,
exit code 1, never a traceback. The Diagnose page gets a few of them in tests/app.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mri_core.training import uploads

from mri_core.training import data as datasets

from mri_core.io import slices as io
from mri_core.io.errors import (DatasetInvalid, DecoderMissing, ImageTooLarge, ModelInvalid, MriError, NoImageData,
                             NotASlice, UnreadableImage, UnsupportedFormat)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = PROJECT_ROOT / "docs" / "benchmarks.md"
CLI_TIMEOUT_S = 400  # guards against a hang only: the whole corpus reads in seconds


@dataclass(frozen=True)
class Read:
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refused:
    error: type[MriError]
    fragment: str


SCAN, TRAINING_ZIP, MODEL, DATA = "scan", "training zip", "model package", "data set folder"
# item -> (what it is, where it is fed, what must happen)
CORPUS = {
    "empty.jpg": ("zero-byte file", SCAN, Refused(UnreadableImage, "the file is empty (0 bytes)")),
    "truncated.jpg": ("JPEG cut in half", SCAN, Refused(UnreadableImage, "JPEG data is damaged")),
    "truncated.png": ("PNG cut in half", SCAN, Refused(UnreadableImage, "PNG data is damaged")),
    "png_named.dcm": ("PNG renamed .dcm", SCAN, Read()),
    "dicom_named.jpg": ("DICOM renamed .jpg", SCAN, Read()),
    "notes.txt": ("text file", SCAN, Refused(UnsupportedFormat, "not an image format we read")),
    "report.pdf": ("PDF file", SCAN, Refused(UnsupportedFormat, "not an image format we read")),
    "page_named.png": ("HTML renamed .png", SCAN, Refused(UnsupportedFormat, "not an image format we read")),
    "random.bin": ("4 KB of random bytes", SCAN, Refused(UnsupportedFormat, "not an image format we read")),
    "bomb.png": ("decompression bomb: PNG declaring 100000x100000 px in 1 KB", SCAN,
                 Refused(ImageTooLarge, "declares too many pixels")),
    "one_pixel.png": ("1x1 image", SCAN, Refused(NotASlice, "at least 16x16")),
    "huge_20000.png": ("20000x20000 image (1-bit)", SCAN, Refused(ImageTooLarge, "more than the 64,000,000")),
    "thin_line.png": ("4000x8 line", SCAN, Refused(NotASlice, "at least 16x16")),
    "tiff_16bit.tif": ("16-bit TIFF", SCAN, Read(("16_bit",))),
    "tiff_float.tif": ("32-bit float TIFF", SCAN, Read(("float",))),
    "tiff_32bit_int.tif": ("32-bit integer TIFF", SCAN, Read(("32_bit",))),
    "animated.gif": ("animated GIF, 3 frames", SCAN, Read(("animated_first_frame",))),
    "cmyk.jpg": ("CMYK JPEG", SCAN, Read(("converted_from_cmyk",))),
    "alpha.png": ("RGBA PNG, transparent background", SCAN, Read(("had_alpha",))),
    "palette_transparent.png": ("palette PNG with a transparent colour", SCAN, Read(("had_alpha",))),
    "colour.png": ("RGB PNG with real colour", SCAN, Read(("converted_from_color",))),
    "grey_as_rgb.jpg": ("grey slice saved as RGB JPEG", SCAN, Read()),
    "exif_rotated.jpg": ("JPEG with EXIF rotation", SCAN, Read()),
    "lossless.webp": ("lossless WebP", SCAN, Read()),
    "one_bit.bmp": ("1-bit BMP", SCAN, Read()),
    "black.png": ("all-black slice", SCAN, Read()),
    "dicom_no_pixels.dcm": ("MR DICOM without pixel data", SCAN, Refused(NoImageData, "holds no image")),
    "dicom_bad_dims.dcm": ("DICOM whose Rows/Columns do not match its pixel data", SCAN,
                           Refused(UnreadableImage, "header declares 1 frame(s) of 384x256 pixels")),
    "dicom_sr.dcm": ("DICOM structured report (SR)", SCAN, Refused(NoImageData, "Comprehensive SR Storage")),
    "dicom_rt_plan.dcm": ("DICOM RT plan", SCAN, Refused(NoImageData, "RT Plan Storage")),
    "dicom_rgb.dcm": ("RGB (colour) DICOM", SCAN, Read(("converted_from_color",))),
    "dicom_truncated.dcm": ("DICOM cut in half", SCAN, Refused(UnreadableImage, "is cut short or its header is wrong")),
    "dicom_mpeg4.dcm": ("DICOM with MPEG-4 video pixel data", SCAN, Refused(DecoderMissing, "MPEG-4")),
    "dicom_1x1.dcm": ("1x1 DICOM", SCAN, Refused(NotASlice, "at least 16x16")),
    "dicom_frames_mismatch.dcm": ("DICOM declaring 5 frames, holding 1", SCAN,
                                  Refused(UnreadableImage, "declares 5 frame(s)")),
    "DICOMDIR": ("DICOMDIR index file", SCAN, Refused(NoImageData, "DICOMDIR")),
    "nifti_zero_dim.nii": ("NIfTI with a zero-size dimension", SCAN, Refused(NotASlice, "dimension of size 0")),
    "nifti_nan_inf.nii": ("NIfTI with NaN and Inf voxels", SCAN, Read(("non_finite_voxels",))),
    "nifti_all_nan.nii": ("NIfTI of nothing but NaN", SCAN, Refused(UnreadableImage, "every voxel is NaN")),
    "nifti_2d.nii": ("2-D NIfTI", SCAN, Read()),
    "nifti_5d.nii": ("5-D NIfTI", SCAN, Refused(NotASlice, "is not an image volume")),
    "nifti_truncated.nii.gz": ("gzipped NIfTI cut short", SCAN, Refused(UnreadableImage, "gzip data is damaged")),
    "nifti_bomb.nii": ("NIfTI declaring 30000^3 voxels", SCAN, Refused(ImageTooLarge, "27,000,000,000,000 voxels")),
    "nifti_pair.hdr": ("NIfTI header of a .hdr/.img pair", SCAN, Refused(UnsupportedFormat, "separate .img file")),
    "nifti_rgb.nii": ("RGB NIfTI", SCAN, Refused(UnsupportedFormat, "RGB or complex voxels")),
    "zip_nested.zip": ("zip holding a zip of a DICOM", SCAN, Refused(UnsupportedFormat, "holds only other zips")),
    "zip_bomb.zip": ("zip bomb: 2.3 GB of zeros in 2 MB", SCAN, Refused(ImageTooLarge, "unpacks to more than 1,024 MB")),
    "zip_empty.zip": ("empty zip", SCAN, Refused(UnsupportedFormat, "the zip holds no files")),
    "zip_corrupt.zip": ("zip header followed by zeros", SCAN, Refused(UnreadableImage, "the zip cannot be opened")),
    "zip_traversal_scan.zip": ("zip of a DICOM named ../../../etc/IM0001", SCAN,
                               Refused(UnsupportedFormat, "path that leaves its folder")),
    "zip_symlink_scan.zip": ("zip holding a symbolic link", SCAN, Refused(UnsupportedFormat, "symbolic link")),
    "train_traversal.zip": ("training zip with ../../evil.png", TRAINING_ZIP,
                            Refused(DatasetInvalid, "path that leaves its folder")),
    "train_absolute.zip": ("training zip with /tmp/evil.png", TRAINING_ZIP, Refused(DatasetInvalid, "absolute path")),
    "train_symlink.zip": ("training zip with a symbolic link", TRAINING_ZIP, Refused(DatasetInvalid, "symbolic link")),
    "train_bomb.zip": ("training zip bomb (2.3 GB of zeros)", TRAINING_ZIP,
                       Refused(DatasetInvalid, "unpacks to more than 1,024 MB")),
    "train_nested.zip": ("training zip holding only a zip", TRAINING_ZIP, Refused(DatasetInvalid, "holds no images")),
    "train_not_a_zip.zip": ("PNG renamed .zip", TRAINING_ZIP, Refused(DatasetInvalid, "not a readable zip")),
    "model_corrupt": ("model.keras of garbage", MODEL, Refused(ModelInvalid, "not a complete Keras archive")),
    "model_truncated": ("model.keras cut in half", MODEL, Refused(ModelInvalid, "not a complete Keras archive")),
    "model_missing_keys": ("model.json without class_names and threshold", MODEL,
                           Refused(ModelInvalid, "lacks class_names, threshold")),
    "model_wrong_class_count": ("model.json listing 2 classes for a 4-output network", MODEL,
                                Refused(ModelInvalid, "lists 2 classes but the network has 4 outputs")),
    "model_unknown_architecture": ("model.json naming architecture vit-giant", MODEL,
                                   Refused(ModelInvalid, "unknown architecture 'vit-giant'")),
    "model_bad_json": ("model.json that is not JSON", MODEL, Refused(ModelInvalid, "cannot be read as JSON")),
    "model_no_weights": ("package without model.keras", MODEL, Refused(ModelInvalid, "it has no model.keras")),
    "model_lambda": ("model with a Lambda layer", MODEL, Refused(ModelInvalid, "holds a Lambda layer")),
    "model_foreign_code": ("model.keras whose config names os.system", MODEL,
                           Refused(ModelInvalid, "could not be loaded safely")),
    "data_one_class": ("data set with only yes/", DATA, Refused(DatasetInvalid, "Only one class")),
    "data_empty_class": ("data set with an empty yes/", DATA, Refused(DatasetInvalid, "is empty")),
    "data_unreadable_class": ("data set whose yes/ holds only broken files", DATA,
                              Refused(DatasetInvalid, "No readable images for class(es) tumor")),
    "data_unknown_folder": ("data set with a folder tumour_maybe/", DATA,
                            Refused(DatasetInvalid, "that are not class names")),
    "data_too_few": ("data set with 2 images per class", DATA, Refused(DatasetInvalid, "Too few readable images")),
    "data_not_a_folder": ("a file given as data folder", DATA, Refused(DatasetInvalid, "is a file, not a folder")),
    "data_missing": ("a data folder that does not exist", DATA, Refused(DatasetInvalid, "does not exist")),
}
SCAN_ITEMS = [name for name, (_, where, _) in CORPUS.items() if where == SCAN]


def render_table() -> str:
    """The table in docs/benchmarks.md: one row per corpus item."""
    rows = ["| input | fed as | outcome |", "|---|---|---|"]
    for name, (what, where, expected) in CORPUS.items():
        if isinstance(expected, Read):
            outcome = "read" + (f", warning `{'`, `'.join(expected.warnings)}`" if expected.warnings else "")
        else:
            outcome = f"refused: `{expected.error.__name__}` \"...{expected.fragment}...\""
        rows.append(f"| {what} (`{name}`) | {where} | {outcome} |")
    return "\n".join(rows)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    sys.path.insert(0, str(PROJECT_ROOT / "tests" / "corpus"))
    from make_corpus import build_corpus

    return build_corpus(tmp_path_factory.mktemp("corpus"))


def feed(name: str, path: Path, where: str, tmp_path: Path) -> tuple[str, ...]:
    """One item through the library entry point a user reaches it by -> the warnings of what was read."""
    if where == SCAN:
        slices = io.read_file(path)
        assert slices and all(s.pixels.ndim == 2 and 0 <= s.pixels.min() <= s.pixels.max() <= 1 for s in slices)
        return slices[0].warnings
    if where == TRAINING_ZIP:
        uploads.extract_zip(path, tmp_path / "extracted")
        return ()
    if where == MODEL:
        from mri_core.inference.model import load_model

        load_model(path)
        return ()
    datasets.discover([path])
    return ()


def test_the_corpus_has_every_item_of_the_table_and_at_least_40(corpus):
    assert set(corpus) == set(CORPUS)
    assert len(CORPUS) >= 40


def test_readme_shows_the_table():
    assert render_table() in BENCHMARKS.read_text(encoding="utf-8"), "docs/benchmarks.md's table of bad inputs is out of date: " \
        "paste the output of `python tests/io/test_corpus.py`"


@pytest.mark.parametrize("name", list(CORPUS))
def test_item_is_read_or_refused_as_the_table_says(name, corpus, tmp_path):
    what, where, expected = CORPUS[name]
    if isinstance(expected, Read):
        assert feed(name, corpus[name], where, tmp_path) == expected.warnings
        return
    with pytest.raises(expected.error) as raised:
        feed(name, corpus[name], where, tmp_path)
    assert expected.fragment in str(raised.value)
    if where in (SCAN, TRAINING_ZIP):
        assert not (tmp_path / "extracted").exists() or not any((tmp_path / "extracted").rglob("*.png")), \
            "a refused zip left files behind"


def test_cli_answers_the_good_items_and_gives_error_lines_for_the_rest_in_one_call(corpus, tmp_path):
    from test_main import CONTRACT_KEYS

    files = [str(corpus[name]) for name in SCAN_ITEMS]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-m", "mri_core", "predict", *files, "--json"], capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S, cwd=PROJECT_ROOT, env=env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["file"] for line in lines] == files, "one line per file, in input order"
    for name, line in zip(SCAN_ITEMS, lines):
        expected = CORPUS[name][2]
        if isinstance(expected, Read):
            assert set(line) >= CONTRACT_KEYS, (name, line)
            assert set(expected.warnings) <= set(line["warnings"]), (name, line["warnings"])
        else:
            assert set(line) == {"file", "error"}, (name, line)
            assert expected.fragment in line["error"], (name, line["error"])


if __name__ == "__main__":
    print(render_table())
