"""The Diagnose page (app.py), run headless with Streamlit's AppTest on real scans and the real model."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mri_core import pipeline, registry
from mri_core.model import load_model

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
    assert page.file_uploader[0].allowed_type == [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"]
    assert not page.error


def test_tumor_scan_shows_verdict_probability_and_heatmap(active_entry, tumor_image_path):
    page = upload(start_page(active_entry), tumor_image_path.name, tumor_image_path.read_bytes())
    expected = pipeline.read_upload(load_model(active_entry), tumor_image_path.read_bytes(), tumor_image_path.name)[0]

    assert page.subheader[0].value == (":red[Tumor]" if expected.tumor else ":green[No tumor]")
    assert f"Reported class: **{expected.label}**" in page_text(page)
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Tumor probability"] == f"{expected.tumor_probability:.1%}"
    assert metrics["Decision threshold"] == f"{expected.threshold:.1%}"
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
    registry.activate(damaged.ref)

    page = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)
    page.run()
    assert not page.exception, page.exception
    assert len(page.error) == 1 and str(damaged.path) in page.error[0].value
    assert not page.file_uploader


def test_photo_gets_the_out_of_distribution_warning_and_a_report_to_download(active_entry):
    skimage_data = pytest.importorskip("skimage.data")
    import io as _io

    from PIL import Image

    buffer = _io.BytesIO()
    Image.fromarray(skimage_data.astronaut()).save(buffer, format="PNG")
    page = upload(start_page(active_entry), "astronaut.png", buffer.getvalue(), "image/png")
    assert any("out of distribution" in w.value for w in page.warning)
    assert "calibrated" in page_text(page)
    assert page.get("download_button"), "the reading report can be downloaded"


def test_cam_method_selector_offers_every_method_and_rereads(active_entry, tumor_image_path):
    page = start_page(active_entry)
    assert page.selectbox[0].options == ["Grad-CAM", "Grad-CAM++", "Score-CAM", "none"]
    upload(page, tumor_image_path.name, tumor_image_path.read_bytes())
    page.selectbox[0].set_value("gradcam++").run()
    assert not page.exception and "Grad-CAM++" in page.image[0].captions[0]
    page.selectbox[0].set_value("none").run()
    assert not page.exception and not any("Heatmap peak" in t for t in page_text(page).splitlines())
