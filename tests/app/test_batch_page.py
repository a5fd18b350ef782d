"""The Batch page (pages/batch.py), run with AppTest on real scans and the active model."""

from __future__ import annotations

import csv
import hashlib
import io as _io
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mri_core.inference import read as pipeline
from mri_core.inference.model import load_model
from mri_core.present.report import percent

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


def test_page_without_upload_asks_for_files_of_any_kind_diagnose_takes(active_entry):
    page = open_batch_page()
    assert page.title[0].value == "Batch"
    assert "Upload several slices, DICOM series or NIfTI volumes" in page.info[0].value
    uploader = page.file_uploader[0]
    assert uploader.accept_multiple_files and not uploader.allowed_type  # any name: the bytes decide
    assert all(word in uploader.label for word in ("DICOM", "NIfTI", "zips"))
    assert page.checkbox[0].label == "Read every slice of volumes and series" and not page.checkbox[0].value


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
    assert table["probability_words"][0] == percent(expected.tumor_probability)  # never shown as 0 or 100 %
    assert page.session_state["batch_report"].rows[0]["tumor_probability"] == pytest.approx(
        expected.tumor_probability, abs=1e-5)  # the CSV's number
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
    assert "**3 slices read**" in "\n".join(m.value for m in page.markdown)
    assert "**1 file or series** could not be read" in "\n".join(m.value for m in page.markdown)

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

    assert page.selectbox[0].options == list(table["file"])  # plain images: no slice to name
    page.selectbox[0].set_value(3)
    page.button[0].click()
    page.run()
    assert not page.exception, page.exception
    assert page.title[0].value == "Diagnose"
    assert scans[2].name in page.image[0].captions[0]  # the chosen file, read on the Diagnose page


def test_a_dicom_series_of_several_files_and_a_nifti_volume_with_readable_warnings_and_a_log_row_each(
        active_entry, figshare_dir, kaggle_dir):
    """DICOM files uploaded together are read as the series they form (one row, its middle slice, named by
    the series and the slice counted from 1), as is a NIfTI volume; a series without positions says so in
    words; ticking the box reads every slice; every reading adds one row to the reading log, with the
    SHA-256 of its files and never a file name; Open on Diagnose hands the series over whole."""
    from scans import dicom_bytes, nifti_bytes, stack_of

    from mri_core.package import registry
    from mri_core.present import reading_log

    stack = stack_of(sorted((figshare_dir / "meningioma").iterdir())[:5], size=160)
    series = [(f"IM{k:04d}", dicom_bytes(stack[k], position=4.0 * k, instance=k + 1)) for k in (3, 1, 4, 0, 2)]
    unordered = [(f"U{k}", dicom_bytes(stack[k], series_uid="1.2.826.0.1.3680043.8.498.2")) for k in range(3)]
    volume = ("brain.nii.gz", nifti_bytes(stack, gz=True))
    uploads = [*series, volume, *unordered]
    page = open_batch_page()
    page.file_uploader[0].set_value([(name, data, "application/dicom") for name, data in uploads[:5]]
                                    + [(volume[0], volume[1], "application/gzip")]
                                    + [(name, data, "application/dicom") for name, data in unordered])
    page.run()
    assert not page.exception, page.exception
    assert not page.error, [e.value for e in page.error]

    table = page.dataframe[0].value
    assert list(table["file"]) == ["IM0003 (5 files)", "U0 (3 files)", "brain.nii.gz"]  # 8 DICOM files, 2 series
    assert list(table["slice"]) == ["3 of 5", "2 of 3", "3 of 5"]
    assert set(table["verdict_words"]) <= {"Tumor", "No tumor", "Uncertain: refer to a reader",
                                           "Cannot read this image"}
    assert "neither slice positions nor instance numbers" in table["warning_words"][1]
    assert not any("_" in str(words) for words in table["warning_words"])  # words, never codes
    assert "warnings" not in table.columns
    text = "\n".join(m.value for m in page.markdown)
    assert "**3 slices read**" in text and "The middle slice of each volume and series" in text

    logged = reading_log.read_log(registry.mri_home())
    # each series' own files, in upload order, though all the DICOM files were uploaded together
    assert [r["image_sha256"] for r in logged] == [reading_log.image_sha256(data for _, data in series),
                                                   reading_log.image_sha256(data for _, data in unordered),
                                                   hashlib.sha256(volume[1]).hexdigest()]
    assert [r["slice_number"] for r in logged] == ["3", "2", "3"]
    assert {r["model"] for r in logged} == {active_entry.ref}
    assert [r["verdict"] for r in logged] == [row["verdict"] for row in page.session_state["batch_report"].rows]
    log_text = reading_log.log_path(registry.mri_home()).read_text()
    assert not any(word in log_text for word in ("IM000", "U0", "brain", ".nii", "files"))

    page.checkbox[0].check().run()
    assert not page.exception, page.exception
    table = page.dataframe[0].value
    assert list(table["slice"]) == [f"{n} of 5" for n in range(1, 6)] + [f"{n} of 3" for n in range(1, 4)] + [
        f"{n} of 5" for n in range(1, 6)]
    assert "**13 slices read**" in "\n".join(m.value for m in page.markdown)
    assert len(reading_log.read_log(registry.mri_home())) == 3 + 13

    page.selectbox[0].set_value(2)  # the series' third slice
    assert page.selectbox[0].format_func(2) == "IM0003 (5 files), slice 3 of 5"
    page.button[0].click()
    page.run()
    assert not page.exception, page.exception
    assert page.title[0].value == "Diagnose" and not page.error  # the DICOM files, zipped in memory, read there


def test_one_file_is_counted_as_one(active_entry, kaggle_dir):
    scan = sorted((kaggle_dir / "no").iterdir())[0]
    page = open_batch_page()
    page.file_uploader[0].set_value([(scan.name, scan.read_bytes(), "image/jpeg")])
    page.run()
    assert not page.exception, page.exception
    text = "\n".join(m.value for m in page.markdown)
    assert "**1 slice read**" in text and "slices read" not in text and "could not be read" not in text
