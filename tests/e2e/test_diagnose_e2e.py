"""The Diagnose page in a real browser: upload a scan, see the verdict and the heatmap.

Also saves the README screenshot diagnose.png (into `screenshot_dir`: docs/screenshots only
through `make screenshots`).
"""

from __future__ import annotations

import re

import pytest
from e2e.browser import UPLOAD_INPUT, save_full_page_screenshot

from mri_core.package import registry

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

VERDICT = re.compile(r"^(Tumor|No tumor)$")


def wait_for_page_ready(page) -> None:
    """The model is loaded and the page asks for a scan."""
    page.get_by_text("Upload one axial brain MRI slice").wait_for()


def test_upload_shows_verdict_model_and_heatmap(page, tumor_image_path, screenshot_dir):
    wait_for_page_ready(page)
    page.locator(UPLOAD_INPUT).set_input_files(str(tumor_image_path))

    page.get_by_text("Tumor probability", exact=True).wait_for()
    heatmap = page.locator('[data-testid="stImage"] img')
    heatmap.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=heatmap.element_handle())
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()

    verdict = page.get_by_role("heading", name=VERDICT)
    assert verdict.count() == 1
    assert "Reported class:" in page.locator("body").inner_text()
    assert registry.default_shipped().ref in page.locator("body").inner_text()
    assert "not a diagnosis" in page.locator("body").inner_text()

    save_full_page_screenshot(page, screenshot_dir / "diagnose.png")


def test_corrupt_upload_shows_the_error_and_names_the_file(page, tumor_image_path):
    wait_for_page_ready(page)
    data = tumor_image_path.read_bytes()
    page.locator(UPLOAD_INPUT).set_input_files(
        files=[{"name": "broken_scan.jpg", "mimeType": "image/jpeg", "buffer": data[: len(data) // 3]}])

    error = page.locator('[data-testid="stAlertContentError"]')
    error.wait_for()
    assert "broken_scan.jpg" in error.inner_text()
    assert page.get_by_text("Tumor probability", exact=True).count() == 0
