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
