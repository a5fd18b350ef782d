"""The Diagnose page in a real browser with a NIfTI volume: upload, move the slider, see the reading.

The volume is built at test time from real shared slices (nothing committed). Saves the README
screenshot nifti.png into `screenshot_dir`.
"""

from __future__ import annotations

import re

import pytest
from e2e.browser import UPLOAD_INPUT, save_full_page_screenshot
from e2e.test_diagnose_e2e import wait_for_page_ready
from scans import nifti_bytes, stack_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

def test_nifti_upload_slider_and_scan_all(page, figshare_dir, typed_dir, tmp_path, screenshot_dir):
    no_tumor = sorted((typed_dir / "notumor").iterdir())[:6]
    glioma = sorted((figshare_dir / "glioma").iterdir())[:3]
    volume = tmp_path / "brain_volume.nii.gz"  # 9 real slices: tumor in the middle three
    volume.write_bytes(nifti_bytes(stack_of(no_tumor[:3] + glioma + no_tumor[3:], size=256), gz=True))

    wait_for_page_ready(page)
    page.locator(UPLOAD_INPUT).set_input_files(str(volume))
    page.get_by_text("Tumor probability").first.wait_for()
    page.get_by_text("axial slice 4 of 9").wait_for()  # the middle slice first

    slider = page.get_by_role("slider", name="Slice")
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.get_by_text("axial slice 6 of 9").wait_for()
    page.get_by_text("Tumor probability").first.wait_for()
    verdict = re.compile(r"^(Tumor|No tumor|Uncertain: refer to a reader)")  # a scan gets a tumor call or a deferral
    assert page.get_by_role("heading", name=verdict).count() >= 1

    page.get_by_role("button", name="Scan all slices").click()
    page.get_by_text("Tumor probability per slice").wait_for()
    page.mouse.move(0, 0)  # no tooltip over the slider in the screenshot
    heatmap = page.locator('[data-testid="stImage"] img')
    heatmap.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=heatmap.element_handle())
    save_full_page_screenshot(page, screenshot_dir / "nifti.png")
