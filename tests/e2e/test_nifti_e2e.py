"""The Diagnose page in a real browser with a NIfTI volume and a DICOM series: upload, move the slider,
scan every slice, see the tumor outlined and measured.

The volume and the series are built at test time from real shared slices (nothing committed). Saves
the README screenshot nifti.png into `screenshot_dir`.
"""

from __future__ import annotations

import re

import highdicom
import pytest
from e2e.browser import UPLOAD_INPUT, save_full_page_screenshot
from e2e.test_diagnose_e2e import wait_for_page_ready, wait_until_idle
from scans import dicom_bytes, nifti_bytes, stack_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
# What a scanned volume shows when the model outlines its tumor: the volume and where its thickness came from
VOLUME_WORDS = re.compile(r"Tumor volume [\d,.]+ mL \(slice thickness from {source}\); tumor on \d+ slices? ")


def scan_all_and_see_the_tumor_measured(page, thickness_source: str) -> None:
    """Press "Scan all slices"; the volume sentence, both per-slice charts and the outline's words appear."""
    page.get_by_role("button", name="Scan all slices").click()
    page.get_by_text("Tumor probability per slice").wait_for()
    page.get_by_text(re.compile(VOLUME_WORDS.pattern.format(source=re.escape(thickness_source)))).wait_for()
    page.get_by_text("Tumor area per slice").wait_for()
    outline = page.get_by_text("Tumor outline:")  # the most suspicious slice, read after the scan
    outline.wait_for()
    assert "largest diameter" in outline.inner_text(), "the slice shown is outlined and measured"


def test_nifti_upload_slider_and_scan_all(page, figshare_dir, typed_dir, tmp_path, screenshot_dir):
    no_tumor = sorted((typed_dir / "notumor").iterdir())[:6]
    glioma = sorted((figshare_dir / "glioma").iterdir())[:3]
    volume = tmp_path / "brain_volume.nii.gz"  # 9 real slices: tumor in the middle three
    volume.write_bytes(nifti_bytes(stack_of(no_tumor[:3] + glioma + no_tumor[3:], size=256), gz=True))

    wait_for_page_ready(page)
    page.locator(UPLOAD_INPUT).set_input_files(str(volume))
    page.get_by_text("Tumor probability").first.wait_for()
    page.get_by_text("axial slice 5 of 9").wait_for()  # the middle slice first, counted from 1

    slider = page.get_by_role("slider", name="Slice")
    thumb = page.locator('[data-testid="stSlider"]', has_text="Slice").get_by_test_id("stSliderThumbValue")
    assert thumb.inner_text() == "5", "the slider counts as its caption does"
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.get_by_text("axial slice 7 of 9").wait_for()
    page.get_by_text("Tumor probability").first.wait_for()
    verdict = re.compile(r"^(Tumor|No tumor|Uncertain: refer to a reader)")  # a scan gets a tumor call or a deferral
    assert page.get_by_role("heading", name=verdict).count() >= 1

    scan_all_and_see_the_tumor_measured(page, "NIfTI zooms")
    page.mouse.move(0, 0)  # no tooltip over the slider in the screenshot
    wait_until_idle(page)  # the scan's rerun has replaced the previous slice's image
    heatmap = page.locator('[data-testid="stImage"] img')
    heatmap.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=heatmap.element_handle())
    save_full_page_screenshot(page, screenshot_dir / "nifti.png")


def test_dicom_series_scan_all_measures_the_tumor_volume_from_the_slice_positions(page, figshare_dir, typed_dir):
    """Eight files of one series at 5 mm apart (PixelSpacing 0.5 mm), given in shuffled order; then the
    scanned outlines downloaded as a DICOM Segmentation."""
    paths = sorted((typed_dir / "notumor").iterdir())[:3] + sorted((figshare_dir / "glioma").iterdir())[3:6] \
        + sorted((typed_dir / "notumor").iterdir())[3:5]
    stack = stack_of(paths, size=256)
    files = [{"name": f"IM{number:04d}", "mimeType": "application/dicom",
              "buffer": dicom_bytes(stack[number], position=5.0 * number, instance=number + 1,
                                    SeriesDescription="T1 AX POST", PatientID="E2E-7",
                                    FrameOfReferenceUID="1.2.826.0.1.3680043.8.498.77")}
             for number in (3, 0, 7, 5, 1, 6, 2, 4)]

    wait_for_page_ready(page)
    page.locator(UPLOAD_INPUT).set_input_files(files=files)
    page.get_by_text("axial slice 5 of 8").wait_for()
    scan_all_and_see_the_tumor_measured(page, "ImagePositionPatient")
    assert "mm²" in page.locator("body").inner_text(), "DICOM PixelSpacing: the area in mm²"

    # every scanned slice's outline as a DICOM Segmentation, built on request, filed with the source's patient
    wait_until_idle(page)  # a click on a button the scan's rerun is still replacing would be lost
    page.get_by_role("button", name="Make a DICOM Segmentation").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the DICOM Segmentation").click()
    segmentation = highdicom.seg.segread(download.value.path())
    assert segmentation.NumberOfFrames == len(files) and segmentation.PatientID == "E2E-7"
    assert segmentation.pixel_array.any(), "the tumor the page measured is in it"
