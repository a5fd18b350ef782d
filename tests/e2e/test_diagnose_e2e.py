"""The Diagnose page in a real browser: upload a scan, see the verdict and the heatmap; a photograph and a
head CT cannot be read; a second upload is the one read; findings recorded under three readings are counted
on the Models page and are in its reading log download.

Also saves the README screenshots diagnose.png, report.png (the downloaded PDF's first page) and diagnose-cannot-read.png (into `screenshot_dir`:
docs/screenshots only through `make screenshots`). The head CT's screenshot goes to a temporary folder
only, whatever SCREENSHOT_DIR says: the CT images carry no licence to publish.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from e2e.browser import UPLOAD_INPUT, save_full_page_screenshot

from mri_core.package import registry

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

VERDICT = re.compile(r"^(Tumor|No tumor)$")
IMAGE = '[data-testid="stImage"]'
FINDING = "Your finding (recorded in the reading log)"


def wait_for_page_ready(page) -> None:
    """The model is loaded and the page asks for a scan."""
    page.get_by_text("Upload one axial brain MRI slice").wait_for()


def test_upload_shows_verdict_model_and_heatmap(page, app_url, tumor_image_path, screenshot_dir):
    wait_for_page_ready(page)
    page.locator(UPLOAD_INPUT).set_input_files(str(tumor_image_path))

    page.get_by_text("Tumor probability", exact=True).wait_for()
    heatmap = page.locator('[data-testid="stImage"] img')
    heatmap.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=heatmap.element_handle())
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()

    verdict = page.get_by_role("heading", name=VERDICT)
    assert verdict.count() == 1
    body = page.locator("body").inner_text()
    assert ("Most likely type:" in body) == (verdict.inner_text() == "Tumor"), "a type only under a tumor verdict"
    assert 'A "tumor" call means a tumor probability of at least' in body, "the operating point in words"
    assert registry.default_shipped().ref in page.locator("body").inner_text()
    assert "not a diagnosis" in page.locator("body").inner_text()

    save_full_page_screenshot(page, screenshot_dir / "diagnose.png")

    # the PDF the page offers leads with the same verdict; its first page is the README's report.png
    import pypdfium2
    from pypdf import PdfReader

    with page.expect_download() as download:
        page.get_by_role("button", name="Download report (PDF)").click()
    pdf = Path(download.value.path()).read_bytes()
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert f"Result: {verdict.inner_text().upper()}" in text and "axial slice" not in text  # a plain slice
    document = pypdfium2.PdfDocument(pdf)
    document[0].render(scale=1.5).to_pil().save(screenshot_dir / "report.png")

    # the overlay's layers each on its own: without the heatmap, no opacity slider and no heatmap words
    caption = page.locator('[data-testid="stImage"]').first
    assert "heatmap (Grad-CAM)" in caption.inner_text() and "white line" in caption.inner_text()
    page.get_by_text("Heatmap", exact=True).click()  # the checkbox's label takes the click
    page.get_by_text("Heatmap opacity").wait_for(state="detached")
    page.wait_for_function("() => !document.body.innerText.includes('heatmap (Grad-CAM)')")
    assert "white line" in caption.inner_text() and "heatmap" not in caption.inner_text().lower()
    page.get_by_text("Peak", exact=True).click()
    page.get_by_text("cross: its peak").wait_for()

    # one ECE on every page: the figure in Diagnose's calibrated sentence is the Models page's
    ece = re.search(r"differed by ([0-9.]+%) on average \(ECE\)", page.locator("body").inner_text()).group(1)
    page.get_by_text("How reliable are these probabilities?").click()
    page.get_by_text(re.compile(r"fewer than 10 scans .* not drawn")).wait_for()  # near-empty groups hidden, said so
    page.goto(f"{app_url}/models")
    page.get_by_role("heading", name="Compare two models").wait_for()
    # model A of the comparison starts on the active model: the shipped default, which read the scan
    page.wait_for_function(f"() => document.body.innerText.includes('A · {registry.default_shipped().ref}')")
    row = page.locator('[data-testid="stTable"] tr', has_text="ECE (tumor probability)").inner_text()
    assert row.split("\t")[1].strip() == ece, (ece, row)


def test_corrupt_upload_shows_the_error_and_names_the_file(page, tumor_image_path):
    wait_for_page_ready(page)
    data = tumor_image_path.read_bytes()
    page.locator(UPLOAD_INPUT).set_input_files(
        files=[{"name": "broken_scan.jpg", "mimeType": "image/jpeg", "buffer": data[: len(data) // 3]}])

    error = page.locator('[data-testid="stAlertContentError"]')
    error.wait_for()
    assert "broken_scan.jpg" in error.inner_text()
    assert page.get_by_text("Tumor probability", exact=True).count() == 0


def wait_until_idle(page) -> None:
    """The script run that a click or upload started has ended: no running icon, no stale element."""
    page.wait_for_timeout(300)
    page.wait_for_function("""() => !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')
                                    && !document.querySelector('[data-stale="true"]')""")


def read_upload(page, path: Path) -> str:
    """Add `path` to the uploads; wait until the page shows its reading -> the text of the page."""
    page.locator(UPLOAD_INPUT).set_input_files(str(path))
    page.locator(IMAGE).filter(has_text=path.name).wait_for()
    wait_until_idle(page)
    return page.locator("body").inner_text()


def test_a_photograph_and_a_head_ct_cannot_be_read(page, head_ct_dir, tmp_path, screenshot_dir):
    """(a) A colour photograph made at test time (scikit-image's astronaut): the headline says it cannot be
    read and why, with no tumor type, no probability and no heatmap words. (b) A head CT added after it is
    the one read, and cannot be read either; its screenshot stays in a temporary folder."""
    from PIL import Image
    from skimage import data as skimage_data

    photo = tmp_path / "holiday_photo.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    wait_for_page_ready(page)
    for path in (photo, sorted(head_ct_dir.iterdir())[0]):
        body = read_upload(page, path)
        page.get_by_role("heading", name="Cannot read this image").wait_for()
        assert "does not look like a brain MRI slice" in body
        for absent in ("Most likely type", "Tumor probability", "calibrated", "Heatmap opacity", "Heatmap peak"):
            assert absent not in body, absent
        caption = page.locator(IMAGE).inner_text()
        assert caption == f"{path.name} · not read, so nothing is drawn over it" and "heatmap" not in caption.lower()
        assert not page.get_by_role("checkbox").count(), "nothing to draw over it"
        if path == photo:
            save_full_page_screenshot(page, screenshot_dir / "diagnose-cannot-read.png", wait_for=None)
    assert page.get_by_role("radio", name=photo.name).count() == 1, "the photo is listed, the CT read"
    save_full_page_screenshot(page, tmp_path / "diagnose-head-ct.png", wait_for=None)  # never docs/: no licence


def test_a_second_upload_is_the_one_read(page, tumor_image_path, no_tumor_image_path):
    """(c) Issue: a tumor slice, then a healthy one: the page kept showing the tumor slice's result."""
    wait_for_page_ready(page)
    read_upload(page, tumor_image_path)
    page.get_by_role("heading", name="Tumor", exact=True).wait_for()
    read_upload(page, no_tumor_image_path)
    page.get_by_role("heading", name=re.compile(r"^(No tumor|Uncertain: refer to a reader)$")).wait_for()
    assert tumor_image_path.name not in page.locator(IMAGE).inner_text()
    listed = page.get_by_role("radiogroup", name=re.compile(r"^Uploaded scans \(2\)"))
    assert listed.get_by_role("radio", name=no_tumor_image_path.name).is_checked()
    assert not listed.get_by_role("radio", name=tumor_image_path.name).is_checked()


def test_findings_recorded_under_three_readings_are_counted_on_the_models_page(page, app_url, kaggle_dir,
                                                                                typed_dir, screenshot_dir):
    """(d) Three readings, a finding recorded under each through the page; the Models page counts them per
    model and its reading log download holds the three readings with their findings (no row is written
    here but by the page)."""
    from mri_core.package import registry
    from mri_core.present.model_table import MISSING
    from mri_core.present.reading_log import MIN_FINDINGS

    scans = [sorted((typed_dir / "glioma").iterdir())[0], sorted((kaggle_dir / "no").iterdir())[1],
             sorted((typed_dir / "pituitary").iterdir())[0]]
    findings = ["Tumor", "No tumor", "Unsure"]
    wait_for_page_ready(page)
    verdicts = []
    for path, finding in zip(scans, findings):
        read_upload(page, path)
        verdicts.append(page.get_by_role("heading", level=3).filter(
            has_text=re.compile(r"^(Tumor|No tumor|Uncertain: refer to a reader|Cannot read this image)$")).inner_text())
        page.get_by_role("radiogroup", name=FINDING).get_by_text(finding, exact=True).click()
        page.get_by_text(f"Recorded in the reading log: {finding}.").wait_for()
        wait_until_idle(page)
    save_full_page_screenshot(page, screenshot_dir / "diagnose-finding.png")

    page.goto(f"{app_url}/models")
    page.get_by_role("heading", name="Agreement with your findings").wait_for()
    wait_until_idle(page)
    model = registry.default_shipped().ref
    called = sum(v in ("Tumor", "No tumor") and f in ("Tumor", "No tumor") for v, f in zip(verdicts, findings))
    deferred = sum(v not in ("Tumor", "No tumor") for v in verdicts)
    # the grid draws on a canvas; its screen-reader table holds the cells
    page.locator('[data-testid="stDataFrame"] [role="gridcell"]').filter(has_text="so far").first.wait_for(
        state="attached")
    rows = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stDataFrame"] tr[role="row"]')]
        .map(tr => [...tr.querySelectorAll('[role="gridcell"]')].map(td => td.textContent))
        .filter(cells => cells.some(cell => cell.includes("so far")))""")
    assert rows == [[model, "3", f"{MISSING} (shown from {MIN_FINDINGS} calls; {called} so far)", str(deferred)]]
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the reading log (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    found = {row["reading_id"]: row["finding"] for row in rows if row["event"] == "finding"}
    with_findings = [row for row in rows if row["event"] == "reading" and row["reading_id"] in found]
    assert len(with_findings) == 3 and all(row["model"] == model for row in with_findings)
    assert [found[row["reading_id"]] for row in with_findings] == ["tumor", "no_tumor", "unsure"]
    assert [row["verdict"] for row in with_findings] == [
        {"Tumor": "tumor", "No tumor": "no_tumor"}.get(v, "uncertain" if v.startswith("Uncertain") else "cannot_read")
        for v in verdicts]
