"""The Diagnose page (pages/diagnose.py, the start page of app.py), run headless with Streamlit's AppTest on real scans and the real model."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mri_core.inference import read as pipeline

from mri_core.package import registry
from mri_core.inference.model import load_model
from mri_core.present.report import percent

APP = Path(__file__).resolve().parents[2] / "app.py"
# The first run imports TensorFlow and loads the model: slow on 2 cores, but bounded.
RUN_TIMEOUT_S = 180


def start_page(active_entry: registry.ModelEntry) -> AppTest:
    """The page after its first run on the active model (the fixture skips when there is none)."""
    page = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)
    page.run()
    assert not page.exception, page.exception
    return page


def upload(page: AppTest, name: str, data: bytes, mime: str = "image/jpeg") -> AppTest:
    page.file_uploader[0].set_value((name, data, mime))
    page.run()
    assert not page.exception, page.exception
    return page


def page_text(page: AppTest) -> str:
    parts = [e.value for kind in ("title", "subheader", "markdown", "caption", "info", "error", "warning")
             for e in getattr(page, kind)]
    return "\n".join(str(p) for p in parts)


def test_page_without_upload_names_the_model_and_asks_for_a_scan(active_entry):
    page = start_page(active_entry)
    assert page.title[0].value == "Diagnose"
    assert "Upload" in page.info[0].value
    assert active_entry.ref in page_text(page)
    assert "not a diagnosis" in page_text(page)
    assert page.file_uploader[0].allowed_type == []  # any name: the bytes decide (DICOM often has no extension)
    assert page.file_uploader[0].accept_multiple_files
    assert not page.error


def test_tumor_scan_shows_verdict_probability_and_heatmap(active_entry, tumor_image_path):
    page = upload(start_page(active_entry), tumor_image_path.name, tumor_image_path.read_bytes())
    expected = pipeline.read_upload(load_model(active_entry), tumor_image_path.read_bytes(), tumor_image_path.name)[0]

    assert expected.verdict == "tumor", "the shipped default calls Y1 a tumor"
    assert page.subheader[0].value == ":red[Tumor]"
    assert f"Most likely type: {expected.label}." in page_text(page)
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Tumor probability"] == percent(expected.tumor_probability)
    band = active_entry.info.get("uncertainty_band")
    if band:  # the band's ends, not the threshold inside it, decide the verdict
        assert (metrics["Tumor call from"], metrics["No tumor below"]) == (f"{band[1]:.1%}", f"{band[0]:.1%}")
    else:
        assert metrics["Decision threshold"] == f"{expected.threshold:.1%}"
    from mri_core.present.report import operating_point_words

    assert operating_point_words(active_entry.info) in page_text(page)
    assert f"x {expected.cam_peak[0]}, y {expected.cam_peak[1]}" in page_text(page)
    assert tumor_image_path.name in page.image[0].captions[0], "the heatmap overlay is shown"
    assert page.get("plotly_chart"), "the class probabilities are charted"
    assert not page.error

    page.slider[0].set_value(0.0).run()  # the scan without heatmap: the same reading stays
    assert not page.exception and page.metric[0].value == metrics["Tumor probability"]


def test_corrupt_upload_shows_the_file_name_and_the_page_keeps_working(active_entry, tumor_image_path):
    data = tumor_image_path.read_bytes()
    page = upload(start_page(active_entry), "broken_scan.jpg", data[: len(data) // 3])
    assert len(page.error) == 1 and "broken_scan.jpg" in page.error[0].value
    assert not page.metric

    upload(page, tumor_image_path.name, data)
    assert not page.error and page.metric


def test_damaged_active_model_shows_an_error_instead_of_a_traceback():
    info = {"architecture": "default", "input": {"size": 128, "channels": 1},
            "class_names": ["notumor", "glioma"], "no_tumor_classes": ["notumor"],
            "threshold": 0.5, "temperature": 1.0, "gradcam_layer": "last_conv"}
    damaged = registry.save_package(
        "damaged", info, lambda folder: (folder / registry.MODEL_FILE).write_bytes(b"not a Keras file"))
    registry.activate(damaged.ref, confirm=True)  # no test figures: the activation rule asks for a confirmation

    page = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)
    page.run()
    assert not page.exception, page.exception
    assert len(page.error) == 1 and str(damaged.path) in page.error[0].value
    assert not page.file_uploader


def test_a_banner_names_an_active_model_other_than_the_shipped_default(active_entry, tiny_model_dir):
    assert not start_page(active_entry).warning, "no banner on the shipped default"

    registry.activate(tiny_model_dir, confirm=True)  # 2 epochs on 60 images: fails the activation rule
    default = registry.default_shipped()
    for page_file in ("pages/diagnose.py", "pages/batch.py"):
        page = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S).switch_page(page_file)
        page.run()
        assert not page.exception, page.exception
        [banner] = page.warning
        assert banner.value.startswith(f"Reading with **tiny@1**, not the shipped default model {default.ref}")
        assert "does not pass the activation checks: it has no out-of-distribution statistics" in banner.value
        assert "its test set holds only" in banner.value


# --- DICOM series and NIfTI volumes ---------------------------------------------------------

def page_everything(page: AppTest) -> str:
    """Every text the page shows, widget labels and options included."""
    texts = [page_text(page)]
    texts += [str(getattr(w, "label", "")) + str(getattr(w, "options", "")) for kind in ("selectbox", "radio", "slider", "button")
              for w in getattr(page, kind)]
    texts += [caption for image in page.image for caption in image.captions]
    return "\n".join(texts)


def test_nifti_volume_gets_a_slider_at_the_middle_and_each_slice_its_reading(active_entry, kaggle_dir):
    from scans import nifti_bytes, stack_of

    stack = stack_of(sorted((kaggle_dir / "yes").iterdir())[:5], size=128)
    data = nifti_bytes(stack, gz=True)
    page = upload(start_page(active_entry), "brain.nii.gz", data, "application/gzip")
    assert not page.error
    [slice_slider] = [s for s in page.slider if s.label == "Slice"]
    assert (slice_slider.min, slice_slider.max, slice_slider.value) == (1, 5, 3), "counted from 1, as a reader counts"
    assert "axial slice 3 of 5" in page.image[0].captions[0]
    assert not [r for r in page.radio if r.label == "Plane"], "5 thin slices of 1 mm: too few for coronal and sagittal"

    slice_slider.set_value(5).run()  # the last slice: index 4
    assert not page.exception
    volume = __import__("mri_core.io.slices", fromlist=["io"]).read_volumes([("brain.nii.gz", data)])[0]
    [expected] = pipeline.read_volume(load_model(active_entry), volume, 4)
    assert {m.label: m.value for m in page.metric}["Tumor probability"] == percent(expected.tumor_probability)
    assert "axial slice 5 of 5" in page.image[0].captions[0]


def test_scan_all_charts_every_slice_and_jumps_to_the_most_suspicious(active_entry, figshare_dir, typed_dir):
    from scans import nifti_bytes, stack_of

    from mri_core.inference import measure
    from mri_core.io import slices as io
    from mri_core.present import report

    stack = stack_of(sorted((typed_dir / "notumor").iterdir())[:3] + sorted((figshare_dir / "glioma").iterdir())[:1], 224)
    data = nifti_bytes(stack)
    page = upload(start_page(active_entry), "volume.nii", data, "application/octet-stream")
    page.button[0].click().run()
    assert not page.exception and not page.error
    [slice_slider] = [s for s in page.slider if s.label == "Slice"]
    readings = pipeline.read_volume(load_model(active_entry), io.read_volumes([("volume.nii", data)])[0], "all", cam="none")
    assert slice_slider.value == pipeline.most_suspicious_slice(readings) + 1, "the slider counts from 1"
    charts = page.get("plotly_chart")
    assert any("Tumor probability per slice" in chart.proto.spec for chart in charts), "the per-slice line"
    summary = measure.volume_summary([r.mask for r in readings], io.read_volumes([("volume.nii", data)])[0])
    assert summary["slices_with_tumor"], "the shipped default outlines the glioma slice"
    assert report.summary_words(summary) in page_text(page)
    assert "mL (slice thickness from NIfTI zooms)" in page_text(page)
    assert any("Tumor area per slice" in chart.proto.spec for chart in charts), "the per-slice area"
    assert f"slice {slice_slider.value} of 4" in page.image[0].captions[0], "caption and slider agree"


def test_several_dicom_files_form_series_to_pick_and_no_patient_tag_is_shown(active_entry, kaggle_dir):
    from scans import SECRET_TAGS, dicom_bytes, stack_of

    stack = stack_of(sorted((kaggle_dir / "yes").iterdir())[:20], size=64)
    files = [(f"IM{i:03d}", dicom_bytes(s, series_uid="1.2.5.1", position=0.5 * i, StudyDescription="MR HEAD",
                                        SeriesDescription="T1 AX", **SECRET_TAGS), "application/dicom")
             for i, s in enumerate(stack[:17])]
    files.append(("FLAIR1", dicom_bytes(stack[17], series_uid="1.2.5.2", SeriesDescription="FLAIR", **SECRET_TAGS),
                  "application/dicom"))
    page = start_page(active_entry)
    page.file_uploader[0].set_value(files)
    page.run()
    assert not page.exception and not page.error
    [picker] = [r for r in page.radio if r.label.startswith("Uploaded scans (2)")]
    assert picker.options == ["DICOM series · MR HEAD · T1 AX · 17 slices", "FLAIR1 · DICOM image"]
    assert picker.value == 1, "the last file uploaded is read"
    picker.set_value(0).run()
    [plane] = [r for r in page.radio if r.label == "Plane"]
    assert plane.options == ["axial", "coronal", "sagittal"]  # 17 slices of 0.5 mm cubes
    plane.set_value("coronal").run()
    assert not page.exception and "coronal slice 33 of 64" in page.image[0].captions[0]
    shown = page_everything(page)
    assert "MR HEAD" in shown and "T1 AX" in shown
    for value in SECRET_TAGS.values():
        for part in value.split("^"):
            assert part not in shown, f"identifying value {part!r} is on the page"


def test_photo_of_a_person_cannot_be_read_and_keeps_its_warning_and_a_report_to_download(active_entry,
                                                                                          tumor_image_path):
    """The astronaut (issue 21: it used to get a tumor call) reads `cannot_read`, with its
    out-of-distribution warning and no probability words; a real scan still gets them."""
    skimage_data = pytest.importorskip("skimage.data")
    import io as _io

    from PIL import Image

    buffer = _io.BytesIO()
    Image.fromarray(skimage_data.astronaut()).save(buffer, format="PNG")
    page = upload(start_page(active_entry), "astronaut.png", buffer.getvalue(), "image/png")
    assert page.subheader[0].value == ":gray[Cannot read this image]"
    assert any("out of distribution" in w.value for w in page.warning)
    assert "calibrated" not in page_text(page)
    assert page.get("download_button"), "the reading report can be downloaded"
    upload(page, tumor_image_path.name, tumor_image_path.read_bytes())
    assert "calibrated" in page_text(page)


def test_cam_method_selector_offers_every_method_and_rereads(active_entry, tumor_image_path):
    page = start_page(active_entry)
    [method] = [s for s in page.selectbox if s.label == "Heatmap method"]
    assert method.options == ["Grad-CAM", "Grad-CAM++", "Score-CAM", "none"]
    upload(page, tumor_image_path.name, tumor_image_path.read_bytes())
    [method] = [s for s in page.selectbox if s.label == "Heatmap method"]
    method.set_value("gradcam++").run()
    assert not page.exception and "Grad-CAM++" in page.image[0].captions[0]
    [method] = [s for s in page.selectbox if s.label == "Heatmap method"]
    method.set_value("none").run()
    assert not page.exception and not any("Heatmap peak" in t for t in page_text(page).splitlines())


# --- the verdict and the tumor's outline (issue 21) -------------------------------------------

def png_bytes(array) -> bytes:
    import io as _io

    from PIL import Image

    buffer = _io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_image_it_cannot_read_gets_that_headline_and_no_tumor_call_or_type(active_entry, data_root):
    """A blank frame (the cheap image checks) and a head CT (the shipped brain-MRI check)."""
    import numpy as np

    from mri_core.io.reading import VERDICT_TEXT

    page = start_page(active_entry)
    head_ct = sorted((data_root / "not-mri" / "head-ct").iterdir())[0]
    for name, data in (("blank.png", png_bytes(np.full((240, 200), 60, np.uint8))), (head_ct.name, head_ct.read_bytes())):
        upload(page, name, data, "image/png")
        assert page.subheader[0].value == ":gray[Cannot read this image]", name
        text = page_text(page)
        assert VERDICT_TEXT["cannot_read"] in text
        assert "type" not in text and "calibrated" not in text and not page.metric and not page.get("plotly_chart")
        assert "Heatmap peak" not in text and not page.slider and not page.checkbox, "no heatmap, nothing to draw"
        assert page.image[0].captions[0] == f"{name} · not read, so nothing is drawn over it"
        assert page.get("download_button") and not page.error


def test_a_segmenting_model_leads_with_its_verdict_and_outlines_the_tumor(active_entry, tumor_image_path, tmp_path):
    from segmenting import write_segmenting_package

    from mri_core.io import slices as io

    scan = io.read_file(tumor_image_path)[0]
    package = write_segmenting_package(tmp_path / "seg", scan.pixels, band=(0.0, 1.0))  # every reading: uncertain
    registry.activate(package, confirm=True)
    page = upload(start_page(active_entry), tumor_image_path.name, tumor_image_path.read_bytes())
    assert page.subheader[0].value == ":orange[Uncertain: refer to a reader]"
    [expected] = pipeline.read_upload(load_model(package), tumor_image_path.read_bytes(), tumor_image_path.name)
    x0, y0, x1, y1 = expected.lesion["box"]
    text = page_text(page)
    assert f"Tumor outline: {expected.lesion['area_px']:,} pixels" in text and f"box x {x0}–{x1}, y {y0}–{y1}" in text
    assert "radiologist should read this slice" in text
    assert {m.label: m.value for m in page.metric}["Tumor probability"] == percent(expected.tumor_probability)
    assert "Most likely type" not in text and not [m for m in page.markdown if expected.label in m.value
                                                   and not m.value.startswith("Model **")], "no type under uncertain"


def test_outline_heatmap_box_and_peak_each_on_its_own_and_the_tumor_measured_under_the_verdict(
        active_entry, tumor_image_path):
    """The shipped default segments: the reader ticks the outline, the heatmap, its box and its peak apart
    (the box and the peak start unticked: they would cover the outlined tumor); the opacity slider only
    while the heatmap is ticked, and the caption names only what is drawn; the outline's size leads."""
    page = upload(start_page(active_entry), tumor_image_path.name, tumor_image_path.read_bytes())
    [expected] = pipeline.read_upload(load_model(active_entry), tumor_image_path.read_bytes(), tumor_image_path.name)
    assert expected.lesion is not None, "the shipped default outlines the tumor on Y1"
    from mri_core.present import report

    markdown = [m.value for m in page.markdown]
    lesion = markdown.index(f"**{report.lesion_words(expected)}**")
    assert lesion == markdown.index(f"Most likely type: {expected.label}.") + 1, "right under the verdict"
    assert "largest diameter" in markdown[lesion] and "no pixel spacing" in markdown[lesion]
    assert [(c.label, c.value) for c in page.checkbox] == [("Outline", True), ("Heatmap", True), ("Box", False),
                                                           ("Peak", False)]
    assert page.image[0].captions[0] == (f"{tumor_image_path.name} · heatmap (Grad-CAM): evidence for the most likely "
                                         "tumor class · white line: the tumor's outline as the model segments it")
    assert [s.label for s in page.slider] == ["Heatmap opacity"]

    page.checkbox(key="layer-heatmap").uncheck().run()
    assert not page.exception and not page.slider, "no opacity slider without a heatmap"
    caption = page.image[0].captions[0]
    assert "heatmap" not in caption.lower() and caption.endswith("white line: the tumor's outline as the model segments it")

    page.checkbox(key="layer-box").check().run()
    page.checkbox(key="layer-peak").check().run()
    page.checkbox(key="layer-outline").uncheck().run()
    assert not page.exception and not page.slider
    assert page.image[0].captions[0] == f"{tumor_image_path.name} · magenta box: where the evidence is strongest · cross: its peak"
    page.checkbox(key="layer-heatmap").check().run()
    assert not page.exception and "heatmap (Grad-CAM)" in page.image[0].captions[0] and page.slider


# --- the DICOM Segmentation download ----------------------------------------------------------

def test_a_dicom_series_offers_its_tumor_outline_as_a_dicom_segmentation_built_on_request(active_entry, figshare_dir):
    """A button builds it (the shown slice's outline; after Scan all slices, every slice's) and only then
    offers the download; a NIfTI volume is not offered one."""
    from scans import dicom_bytes, nifti_bytes, stack_of

    from mri_core.present import dicom_seg

    stack = stack_of(sorted((figshare_dir / "glioma").iterdir())[:4], size=128)
    files = [(f"IM{i}", dicom_bytes(s, position=4.0 * i, instance=i + 1, PatientID="P-7",
                                           FrameOfReferenceUID="1.2.826.0.1.3680043.8.498.77"), "application/dicom")
             for i, s in enumerate(stack)]
    page = start_page(active_entry)
    page.file_uploader[0].set_value(files)
    page.run()
    assert not page.exception and not page.error
    assert dicom_seg.COPIED_WORDS in page_text(page)
    assert not page.get("download_button")[1:], "only the report: the Segmentation is built on request"

    def segmentation_button():
        [make] = [b for b in page.button if b.label == "Make a DICOM Segmentation"]
        make.click().run()
        assert not page.exception and not page.error, [e.value for e in page.error]
        [seg_button] = [d for d in page.get("download_button") if d.proto.label == "Download the DICOM Segmentation"]
        return seg_button

    seg_button = segmentation_button()
    assert seg_button.proto.url, "bytes behind the button"
    page.button[0].click().run()  # Scan all slices
    assert not page.exception and "mL (slice thickness from ImagePositionPatient)" in page_text(page)
    assert segmentation_button().proto.url  # its bytes are read back in tests/e2e/test_nifti_e2e.py

    nifti = upload(start_page(active_entry), "brain.nii", nifti_bytes(stack), "application/octet-stream")
    assert dicom_seg.COPIED_WORDS not in page_text(nifti) and not [b for b in nifti.button if "DICOM" in b.label]


# --- one upload, one reading; the reading log ------------------------------------------------

def test_the_newest_upload_is_read_and_the_others_are_listed(active_entry, tumor_image_path, no_tumor_image_path):
    """Issue: a tumor slice, then a healthy one added: the page kept the tumor slice's result behind a
    "Series" picker. The newest file is read; both are listed; choosing the first reads it again."""
    tumor, healthy = (tumor_image_path.name, tumor_image_path.read_bytes(), "image/jpeg"), \
        (no_tumor_image_path.name, no_tumor_image_path.read_bytes(), "image/jpeg")
    page = upload(start_page(active_entry), *tumor)
    assert page.subheader[0].value == ":red[Tumor]"
    page.file_uploader[0].set_value([tumor, healthy]).run()  # the second file added to the first
    assert not page.exception and not page.error
    model = load_model(active_entry)
    [expected] = pipeline.read_upload(model, healthy[1], healthy[0])
    assert expected.verdict != "tumor"
    assert tumor_image_path.name not in page.image[0].captions[0] and no_tumor_image_path.name in page.image[0].captions[0]
    assert {m.label: m.value for m in page.metric}["Tumor probability"] == percent(expected.tumor_probability)
    [listed] = [r for r in page.radio if r.label.startswith("Uploaded scans (2)")]
    assert listed.options == [tumor_image_path.name, no_tumor_image_path.name] and listed.value == 1
    assert not [s for s in page.selectbox if s.label == "Series"], "loose slices are files, not a series"

    listed.set_value(0).run()
    assert not page.exception and page.subheader[0].value == ":red[Tumor]"
    assert tumor_image_path.name in page.image[0].captions[0]


def log_rows(event: str | None = None) -> list[dict]:
    from mri_core.present import reading_log

    rows = reading_log.read_log(registry.mri_home())
    return [row for row in rows if event is None or row["event"] == event]


def test_each_reading_shown_is_logged_once_and_the_finding_recorded(active_entry, kaggle_dir):
    """One row per upload, slice and model shown, whatever reruns the page makes (another heatmap method, a
    ticked box); a new slice is a new row, numbered from 1; the finding chosen under the reading goes in
    the log under that reading's id, with a confirmation; the SHA-256 is of the file's bytes."""
    from scans import nifti_bytes, stack_of

    from mri_core.present import reading_log

    data = nifti_bytes(stack_of(sorted((kaggle_dir / "yes").iterdir())[:3], size=128))
    page = upload(start_page(active_entry), "brain.nii", data, "application/octet-stream")
    [row] = log_rows("reading")
    assert (row["model"], row["slice_number"], row["image_sha256"]) == (active_entry.ref, "2",
                                                                        reading_log.image_sha256([data]))
    [method] = [s for s in page.selectbox if s.label == "Heatmap method"]
    method.set_value("none").run()
    page.checkbox(key="layer-outline").uncheck().run()
    assert not page.exception and len(log_rows("reading")) == 1, "a rerun is not a new reading"

    [finding] = [r for r in page.radio if r.label == "Your finding (recorded in the reading log)"]
    assert finding.options == ["Tumor", "No tumor", "Unsure"] and finding.value is None
    finding.set_value("unsure").run()
    assert not page.exception
    assert [(r["reading_id"], r["finding"]) for r in log_rows("finding")] == [(row["reading_id"], "unsure")]
    assert "Recorded in the reading log: Unsure." in page_text(page)

    [slider] = [s for s in page.slider if s.label == "Slice"]
    slider.set_value(3).run()
    readings = log_rows("reading")
    assert len(readings) == 2 and readings[1]["slice_number"] == "3" and readings[1]["reading_id"] != row["reading_id"]
    [finding] = [r for r in page.radio if r.label == "Your finding (recorded in the reading log)"]
    assert finding.value is None, "a new reading asks anew"
    finding.set_value("tumor").run()
    assert [r["finding"] for r in reading_log.readings_with_findings(log_rows())] == ["unsure", "tumor"]


def test_a_log_that_cannot_be_written_gives_one_warning_and_the_reading_stands(active_entry, tumor_image_path):
    from mri_core.present import reading_log

    reading_log.log_path(registry.mri_home()).mkdir(parents=True)  # a folder where the file should be: OSError
    page = upload(start_page(active_entry), tumor_image_path.name, tumor_image_path.read_bytes())
    assert not page.exception and not page.error and page.subheader[0].value == ":red[Tumor]" and page.metric
    [warning] = [w for w in page.warning if "reading log" in w.value]
    assert "could not be written to the reading log" in warning.value
    assert not [r for r in page.radio if r.label.startswith("Your finding")], "no finding without a logged reading"
