"""The Batch page (pages/batch.py), run with AppTest on real scans and the active model."""

from __future__ import annotations

import csv
import io as _io
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mri_core.inference import read as pipeline
from mri_core.inference.model import load_model

APP = Path(__file__).resolve().parents[2] / "app.py"
BATCH_PAGE = "pages/batch.py"
RUN_TIMEOUT_S = 240


def open_batch_page() -> AppTest:
    page = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)
    page.switch_page(BATCH_PAGE).run()
    assert not page.exception, page.exception
    return page


@pytest.fixture
def scans(kaggle_dir, typed_dir):
    return [sorted((kaggle_dir / "yes").iterdir())[0], sorted((kaggle_dir / "no").iterdir())[0],
            sorted((typed_dir / "glioma").iterdir())[0]]


def test_page_without_upload_asks_for_files(active_entry):
    page = open_batch_page()
    assert page.title[0].value == "Batch"
    assert "Upload several slices" in page.info[0].value
    assert page.file_uploader[0].accept_multiple_files
    assert ".zip" in page.file_uploader[0].allowed_type


def test_files_and_a_zip_give_a_table_in_order_with_downloads_and_open_on_diagnose(active_entry, scans):
    study = _io.BytesIO()
    with zipfile.ZipFile(study, "w") as archive:
        archive.writestr("study/a.jpg", scans[1].read_bytes())
        archive.writestr("study/broken.jpg", scans[1].read_bytes()[:300])
    page = open_batch_page()
    page.file_uploader[0].set_value([(scans[0].name, scans[0].read_bytes(), "image/jpeg"),
                                     ("study.zip", study.getvalue(), "application/zip"),
                                     (scans[2].name, scans[2].read_bytes(), "image/jpeg")])
    page.run()
    assert not page.exception, page.exception

    table = page.dataframe[0].value
    assert list(table["file"]) == [scans[0].name, "study.zip/study/a.jpg", "study.zip/study/broken.jpg", scans[2].name]
    expected = pipeline.read_upload(load_model(active_entry), scans[0].read_bytes(), scans[0].name)[0]
    assert table["label"][0] == expected.label
    assert table["tumor_probability"][0] == pytest.approx(expected.tumor_probability, abs=1e-5)
    # the outline's measurements: pixels (a plain JPEG gives no spacing, so no mm), empty without a lesion
    assert {"area_px", "area_mm2", "diameter_px", "diameter_mm"} <= set(table.columns)
    if expected.lesion is None:
        assert table[["area_px", "diameter_px"]].iloc[0].isna().all()
    else:
        assert table["area_px"][0] == expected.lesion["area_px"]
        assert table["diameter_px"][0] == pytest.approx(expected.lesion["diameter_px"], abs=1e-5)
    assert table["area_mm2"].isna().all() and table["diameter_mm"].isna().all()
    assert "broken.jpg" in table["error"][2] and table["label"].isna()[2]
    assert all(str(t).startswith("data:image/png;base64,") for t in table["thumbnail"][[0, 1, 3]])
    assert "could not be read" in "\n".join(m.value for m in page.markdown)

    assert sorted(b.proto.label for b in page.get("download_button")) == ["Heatmaps (zip)", "Table (CSV)"]
    rows = list(csv.DictReader(_io.StringIO(page.session_state["batch_report"].csv.decode())))
    assert [r["file"] for r in rows] == list(table["file"])
    with zipfile.ZipFile(_io.BytesIO(page.session_state["batch_report"].heatmaps_zip)) as heatmaps:
        names = heatmaps.namelist()
    heatmap_names = [n for n in names if not n.startswith("masks/")]
    assert len(heatmap_names) == 3  # one per answered slice, none for the broken file
    # a segmenting model's masks, named like the heatmaps; none from a model that does not segment
    segments = expected.mask is not None
    assert sorted(n for n in names if n.startswith("masks/")) == sorted(f"masks/{n}" for n in heatmap_names if segments)

    page.selectbox[0].set_value(scans[2].name)
    page.button[0].click()
    page.run()
    assert not page.exception, page.exception
    assert page.title[0].value == "Diagnose"
    assert scans[2].name in page.image[0].captions[0]  # the chosen file, read on the Diagnose page
