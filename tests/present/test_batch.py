"""The Batch page's table, CSV, thumbnails and heatmap zip, from a real stream of readings."""

from __future__ import annotations

import csv
import io as _io
import zipfile

import numpy as np
import pytest
from PIL import Image

from mri_core.inference.stream import stream_readings
from mri_core.io.errors import UnreadableImage
from mri_core.present.batch import (HeatmapArchive, count_uploads, expand_uploads, find_upload, overlay_thumbnail,
                                    png_data_url, read_batch, rows_to_csv, summary_row)


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
    uploads = [(real_scans[0].name, real_scans[0].read_bytes()), ("more.zip", buffer.getvalue())]
    assert count_uploads(uploads) == 3
    names = [name for name, _ in expand_uploads(uploads)]
    assert names == [real_scans[0].name] + [f"more.zip/series/{p.name}" for p in real_scans[2:]]
    assert find_upload(uploads, names[2]) == real_scans[3].read_bytes()
    with pytest.raises(UnreadableImage, match="upload it again"):
        find_upload(uploads, "gone.jpg")
    progress = []
    report = read_batch(tiny_model, expand_uploads(uploads), 3, on_progress=lambda done, total: progress.append(done))
    assert [row["file"] for row in report.rows] == names and report.failed == 0
    assert progress == [1, 2, 3] and all(row["thumbnail"].startswith("data:image/png") for row in report.rows)


def test_the_table_and_csv_carry_the_verdict_and_a_head_ct_names_no_tumor_type(real_scans, data_root):
    from mri_core.inference.model import load_model
    from mri_core.package import registry
    from mri_core.present.batch import display_row, verdict_counts

    head_ct = sorted((data_root / "not-mri" / "head-ct").iterdir())[:2]
    scan_model = load_model(registry.default_shipped())
    items = list(stream_readings(scan_model, real_scans[:2] + head_ct + ["nowhere.jpg"]))
    rows = [summary_row(item) for item in items]
    parsed = list(csv.DictReader(_io.StringIO(rows_to_csv(rows).decode())))
    assert list(parsed[0])[:4] == ["file", "slice", "verdict", "label"]
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
    assert list(parsed[0])[5:11] == ["tumor_probability", "threshold", "area_px", "area_mm2", "diameter_px",
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
