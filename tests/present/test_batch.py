"""The Batch page's table, CSV, thumbnails and heatmap zip, from a real stream of readings."""

from __future__ import annotations

import base64
import csv
import hashlib
import io as _io
import zipfile

import numpy as np
import pytest
from PIL import Image

from mri_core.inference.stream import stream_readings
from mri_core.io.errors import UnreadableImage
from mri_core.present import reading_log
from mri_core.present.batch import (THUMBNAIL_SIDE, HeatmapArchive, batch_inputs, count_uploads, file_for_diagnose, overlay_thumbnail,
                                    plural, png_data_url, read_batch, rows_to_csv, summary_row,
                                    summary_words)


@pytest.fixture(scope="module")
def real_scans(kaggle_dir, figshare_dir):
    return sorted((kaggle_dir / "yes").iterdir())[:2] + sorted((figshare_dir / "meningioma").iterdir())[:2]


def test_thumbnails_csv_and_heatmap_zip_for_the_batch_page(tiny_model, real_scans):
    items = list(stream_readings(tiny_model, real_scans[:3] + ["nowhere.jpg"], thumbnail_side=64))
    assert items[0].thumbnail.ndim == 2 and max(items[0].thumbnail.shape) <= 64  # the slice, shrunk
    thumbnail = overlay_thumbnail(items[0].thumbnail, items[0].outcome)
    assert thumbnail.dtype == np.uint8 and thumbnail.shape == (*items[0].thumbnail.shape, 3)
    assert png_data_url(thumbnail).startswith("data:image/png;base64,")
    rows = [summary_row(item) for item in items]
    parsed = list(csv.DictReader(_io.StringIO(rows_to_csv(rows).decode())))
    assert [r["file"] for r in parsed] == [str(p) for p in real_scans[:3]] + ["nowhere.jpg"]
    assert float(parsed[0]["tumor_probability"]) == pytest.approx(items[0].outcome.tumor_probability, abs=1e-6)
    assert parsed[3]["error"] and not parsed[3]["label"]

    archive = HeatmapArchive()
    names = [archive.add(item) for item in items + items[:1]]  # the same file twice gets a new name
    assert names[3] is None and names[4] != names[0]
    with zipfile.ZipFile(_io.BytesIO(archive.to_bytes())) as opened:
        assert sorted(opened.namelist()) == sorted(n for n in names if n)
        heatmap = np.asarray(Image.open(_io.BytesIO(opened.read(names[0]))))
    assert heatmap.shape == items[0].outcome.heatmap.shape
    np.testing.assert_allclose(heatmap / 255.0, items[0].outcome.heatmap, atol=1 / 255)


def test_a_zip_among_the_uploads_is_read_member_by_member_in_order(tiny_model, real_scans):
    buffer = _io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in real_scans[2:]:
            archive.writestr(f"series/{path.name}", path.read_bytes())
        archive.writestr("series/notes.txt", b"read me")  # no image format: skipped inside a zip, as Diagnose does
    uploads = [(real_scans[0].name, real_scans[0].read_bytes()), ("more.zip", buffer.getvalue())]
    assert count_uploads(uploads) == 4
    names = [upload.name for upload in batch_inputs(uploads)]
    assert names == [real_scans[0].name] + [f"more.zip/series/{p.name}" for p in real_scans[2:]]
    assert file_for_diagnose(uploads, names[2]) == (real_scans[3].name, real_scans[3].read_bytes())
    with pytest.raises(UnreadableImage, match="upload it again"):
        file_for_diagnose(uploads, "gone.jpg")
    progress = []
    report = read_batch(tiny_model, batch_inputs(uploads), on_progress=lambda *done: progress.append(done))
    assert [row["file"] for row in report.rows] == names and report.failed == 0
    assert [row["slice"] for row in report.rows] == [None] * 3  # plain images have no slice number
    assert progress == [(1, 0), (2, 1), (3, 2)]  # answers, and files of the inputs answered before
    assert all(row["thumbnail"].startswith("data:image/png") for row in report.rows)
    thumbnail = Image.open(_io.BytesIO(base64.b64decode(report.rows[0]["thumbnail"].split(",", 1)[1])))
    assert max(thumbnail.size) == THUMBNAIL_SIDE == 160  # a 180x218 slice, shown 160 px on its longest side


def test_the_table_and_csv_carry_the_verdict_and_a_head_ct_names_no_tumor_type(real_scans, data_root):
    from mri_core.inference.model import load_model
    from mri_core.package import registry
    from mri_core.present.batch import display_row, verdict_counts

    head_ct = sorted((data_root / "not-mri" / "head-ct").iterdir())[:2]
    scan_model = load_model(registry.default_shipped())
    items = list(stream_readings(scan_model, real_scans[:2] + head_ct + ["nowhere.jpg"]))
    rows = [summary_row(item) for item in items]
    parsed = list(csv.DictReader(_io.StringIO(rows_to_csv(rows).decode())))
    assert list(parsed[0])[:5] == ["file", "slice_number", "slice_count", "verdict", "label"]
    assert [r["verdict"] for r in parsed[2:4]] == ["cannot_read", "cannot_read"] and parsed[4]["verdict"] == ""
    assert parsed[2]["label"]  # the CSV keeps what the model would have said, as the CLI does
    shown = [display_row(row, ("file", "verdict_words", "label")) for row in rows]
    assert shown[2] == {"file": str(head_ct[0]), "verdict_words": "Cannot read this image", "label": None}
    assert shown[0]["verdict_words"] in ("Tumor", "No tumor", "Uncertain: refer to a reader")
    counts = verdict_counts(rows)
    assert counts["cannot_read"] == 2 and sum(counts.values()) == 4


def test_a_segmenting_model_adds_the_outlines_measurements_and_masks_named_like_the_heatmaps(real_scans, tmp_path):
    """A DICOM slice (PixelSpacing 0.5 x 0.5 mm) and a plain image, read by a segmenting package that calls
    every MRI `tumor`: the table and CSV give each outline's area (mm² = pixels x 0.25) and diameter; the
    zip holds masks/<stem>.png beside <stem>.png, 255 on exactly the outlined pixels."""
    from scans import dicom_bytes, grey_uint8
    from segmenting import write_segmenting_package

    from mri_core.inference.model import load_model

    pixels = grey_uint8(real_scans[2])
    model = load_model(write_segmenting_package(tmp_path / "seg", pixels / 255.0, band=(0.0, 0.0)))
    inputs = [("scan.dcm", dicom_bytes(pixels)), real_scans[3]]
    report = read_batch(model, inputs)
    rows, parsed = report.rows, list(csv.DictReader(_io.StringIO(report.csv.decode())))
    assert list(parsed[0])[6:12] == ["tumor_probability", "threshold", "area_px", "area_mm2", "diameter_px",
                                     "diameter_mm"]
    with zipfile.ZipFile(_io.BytesIO(report.heatmaps_zip)) as opened:
        assert sorted(opened.namelist()) == sorted(["scan.png", f"{real_scans[3].stem}.png", "masks/scan.png",
                                                    f"masks/{real_scans[3].stem}.png"])
        masks = [np.asarray(Image.open(_io.BytesIO(opened.read(f"masks/{stem}.png"))))
                 for stem in ("scan", real_scans[3].stem)]
    for row, line, mask in zip(rows, parsed, masks):
        assert row["verdict"] == "tumor" and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        assert row["area_px"] == int(line["area_px"]) == np.count_nonzero(mask) > 0
        assert row["diameter_px"] == pytest.approx(float(line["diameter_px"])) and row["diameter_px"] > 0
    assert mask.shape == np.asarray(Image.open(real_scans[3]).convert("L")).shape
    assert rows[0]["area_mm2"] == pytest.approx(rows[0]["area_px"] * 0.25)
    assert rows[0]["diameter_mm"] == pytest.approx(rows[0]["diameter_px"] * 0.5, rel=1e-5)  # square pixels
    assert rows[1]["area_mm2"] is None and rows[1]["diameter_mm"] is None  # a plain image gives no spacing
    assert parsed[1]["area_mm2"] == "" and parsed[1]["diameter_mm"] == ""


def test_rows_without_a_lesion_leave_its_columns_empty(tiny_model, real_scans):
    items = list(stream_readings(tiny_model, real_scans[:1] + ["nowhere.jpg"]))  # a model that does not segment
    rows = [summary_row(item) for item in items]
    assert all(row[key] is None for row in rows for key in ("area_px", "area_mm2", "diameter_px", "diameter_mm"))
    archive = HeatmapArchive()
    archive.add(items[0])
    with zipfile.ZipFile(_io.BytesIO(archive.to_bytes())) as opened:
        assert opened.namelist() == [f"{real_scans[0].stem}.png"]  # no masks/ without a segmenting model


@pytest.fixture(scope="module")
def stack(figshare_dir):
    """Five real slices of one size: a series' worth."""
    from scans import stack_of

    return stack_of(sorted((figshare_dir / "meningioma").iterdir())[:5], size=128)


def series_files(stack, order, **tags):
    """The stack as single-slice DICOM files (1 mm apart, instance numbers from 1), named like a PACS export."""
    from scans import dicom_bytes

    return [(f"IM{k:04d}", dicom_bytes(stack[k], position=float(k), instance=k + 1, **tags)) for k in order]


def test_dicom_files_uploaded_together_are_one_series_read_at_its_middle_or_at_every_slice(tiny_model, stack,
                                                                                              real_scans, tmp_path):
    from scans import nifti_bytes

    image = (real_scans[0].name, real_scans[0].read_bytes())
    volume = ("volume.nii.gz", nifti_bytes(stack, gz=True))
    files = series_files(stack, [3, 1, 4, 0, 2])  # uploaded out of order: the positions decide
    uploads = [image, *files[:2], volume, *files[2:]]
    inputs = list(batch_inputs(uploads))
    assert [upload.name for upload in inputs] == [image[0], "IM0003: 5 DICOM files", "volume.nii.gz"]
    assert inputs[1].files == tuple(files)  # every DICOM file, in upload order

    middle = read_batch(tiny_model, batch_inputs(uploads))
    assert [(row["file"], row["slice"]) for row in middle.rows] == [
        (image[0], None), ("IM0003 (5 files)", "3 of 5"), ("volume.nii.gz", "3 of 5")]
    assert [row["slice_number"] for row in middle.rows] == [None, 3, 3]

    every = read_batch(tiny_model, batch_inputs(uploads), every_slice=True)
    assert [row["file"] for row in every.rows] == [image[0]] + ["IM0003 (5 files)"] * 5 + ["volume.nii.gz"] * 5
    assert [row["slice"] for row in every.rows[1:6]] == [f"{n} of 5" for n in range(1, 6)]
    assert every.rows[3]["tumor_probability"] == middle.rows[1]["tumor_probability"]  # the same middle slice
    parsed = list(csv.DictReader(_io.StringIO(every.csv.decode())))
    assert [(r["slice_number"], r["slice_count"]) for r in parsed[:3]] == [("", ""), ("1", "5"), ("2", "5")]
    with zipfile.ZipFile(_io.BytesIO(every.heatmaps_zip)) as opened:
        assert {"IM0003_s1.png", "IM0003_s5.png", "volume_s3.png"} <= set(opened.namelist())  # slices from 1

    # Open on Diagnose: the series is handed as one zip of its files, which Diagnose reads as one series
    from mri_core.io.slices import read_volumes

    name, data = file_for_diagnose(uploads, inputs[1].name)
    assert name == "IM0003-series.zip" and [v.count for v in read_volumes([(name, data)])] == [5]


def test_a_zip_of_a_dicom_series_and_images_gives_the_images_then_the_series(tiny_model, stack, real_scans):
    buffer = _io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in series_files(stack, range(5)):
            archive.writestr(f"exam/t1/{name}", data)
        archive.writestr("exam/key.jpg", real_scans[1].read_bytes())
    uploads = [("exam.zip", buffer.getvalue())]
    assert [upload.name for upload in batch_inputs(uploads)] == ["exam.zip/exam/key.jpg", "exam.zip: 5 DICOM files"]
    report = read_batch(tiny_model, batch_inputs(uploads))
    assert [(row["file"], row["slice"]) for row in report.rows] == [("exam.zip/exam/key.jpg", None),
                                                                  ("exam.zip/exam/t1 (5 files)", "3 of 5")]


def test_each_reading_is_logged_with_its_files_sha256_and_no_name_and_a_failed_input_logs_nothing(tiny_model, stack,
                                                                                                   real_scans, tmp_path):
    from scans import nifti_bytes

    image = (real_scans[0].name, real_scans[0].read_bytes())
    broken = ("broken.jpg", real_scans[1].read_bytes()[:300])
    volume = ("volume.nii", nifti_bytes(stack))
    files = series_files(stack, [2, 0, 1, 3, 4])
    home = tmp_path / "home"
    report = read_batch(tiny_model, batch_inputs([image, broken, *files, volume]), every_slice=True, log_home=home)
    assert report.failed == 1 and report.log_problem is None
    logged = reading_log.read_log(home)
    answered = [row for row in report.rows if not row["error"]]
    assert len(logged) == len(answered) == 11 and {r["event"] for r in logged} == {"reading"}
    series_sha = reading_log.image_sha256(data for _, data in files)  # all its files, in upload order
    assert [r["image_sha256"] for r in logged] == ([hashlib.sha256(image[1]).hexdigest()] + [series_sha] * 5
                                                   + [hashlib.sha256(volume[1]).hexdigest()] * 5)
    assert [r["slice_number"] for r in logged] == [""] + [str(n) for n in range(1, 6)] * 2
    assert [r["verdict"] for r in logged] == [row["verdict"] for row in answered]
    assert {r["model"] for r in logged} == {"tiny@1"}
    text = reading_log.log_path(home).read_text()
    assert not any(word in text for word in ("IM000", "volume", ".nii", ".jpg", "broken", real_scans[0].stem))


def test_a_reading_log_that_cannot_be_written_leaves_the_batch_whole_and_says_so_once(tiny_model, real_scans, tmp_path):
    home = tmp_path / "not-a-folder"
    home.write_text("a file where the log's folder should be")
    uploads = [(p.name, p.read_bytes()) for p in real_scans]
    report = read_batch(tiny_model, batch_inputs(uploads), log_home=home)
    assert len(report.rows) == len(real_scans) and report.failed == 0
    assert "could not be written" in report.log_problem and "not recorded" in report.log_problem


def test_warnings_read_as_words_and_counts_as_correct_plurals(tiny_model, stack):
    from scans import dicom_bytes

    files = series_files(stack[:3], range(3))
    unordered = [(f"U{k}", dicom_bytes(stack[k], series_uid="1.2.826.0.1.3680043.8.498.2")) for k in range(3)]
    report = read_batch(tiny_model, batch_inputs(files + unordered))
    assert [row["file"] for row in report.rows] == ["IM0000 (3 files)", "U0 (3 files)"]  # two series, one upload
    row = report.rows[1]
    assert "slice_order_unknown" in row["warnings"].split(", ")  # the CSV keeps the codes
    assert "neither slice positions nor instance numbers" in row["warning_words"]
    assert "_" not in row["warning_words"]
    assert plural(1, "file") == "1 file" and plural(2, "file") == "2 files" and plural(0, "slice") == "0 slices"
    assert plural(1, "file or series", "files or series") == "1 file or series"
    words = summary_words(report.rows, report.failed)
    assert words.startswith("**2 slices read**") and "could not be read" not in words
    one = summary_words(report.rows[:1] + [{"verdict": None, "error": "x"}], 1)
    assert one.startswith("**1 slice read**") and "**1 file or series** could not be read" in one
