"""The Batch page in a real browser: upload several scans, see the table, open one on Diagnose; upload the
files of a DICOM series (built at test time from real slices) and see them read as one series, slice by slice.

Also saves the README screenshots batch.png and batch-dicom-series.png into `screenshot_dir`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from playwright.sync_api import expect
from e2e.browser import UPLOAD_INPUT, save_full_page_screenshot
from scans import dicom_bytes, stack_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
VERDICT_WORDS = {"Tumor", "No tumor", "Uncertain: refer to a reader", "Cannot read this image"}


def table_rows(page, until: str) -> list[list[str]]:
    """The results table's rows in view, each a list of its cells' text, as the grid gives them to screen
    readers (a table inside its canvas), once a cell reads `until`."""
    grid = page.locator('[data-testid="stDataFrame"] [role="gridcell"]')
    grid.filter(has_text=until).first.wait_for(state="attached")
    return page.evaluate("""() => [...document.querySelectorAll('[data-testid="stDataFrame"] tr[role="row"]')]
        .map(tr => [...tr.querySelectorAll('[role="gridcell"]')].map(td => td.textContent))
        .filter(cells => cells.length)""")


def open_batch_page(page, app_url: str) -> None:
    """The Batch page by its own URL, ready for an upload."""
    page.goto(f"{app_url}/batch")  # a page's own URL as the server's first request: app.py still serves it
    # The first answer may still be Streamlit's pages-folder sidebar, until the page reruns through
    # app.py (pages/common.py); wait for the app's own navigation, then for the page.
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stSidebarNav"] a')]
                 .map(a => a.innerText.trim().split(/\\s+/).pop()).join() === "Diagnose,Batch,Train,Models" """,
        timeout=60_000)
    page.get_by_text("Upload several slices").wait_for()


def test_batch_upload_shows_table_downloads_and_opens_a_row_on_diagnose(page, app_url, kaggle_dir, typed_dir,
                                                                         screenshot_dir):
    scans = (sorted((kaggle_dir / "yes").iterdir())[:2] + sorted((kaggle_dir / "no").iterdir())[:1]
             + [sorted((typed_dir / c).iterdir())[0] for c in ("glioma", "meningioma", "pituitary")])
    open_batch_page(page, app_url)
    navigation = page.locator('[data-testid="stSidebarNav"] a')
    assert [link.inner_text().split()[-1] for link in navigation.all()] == ["Diagnose", "Batch", "Train", "Models"]
    page.locator(UPLOAD_INPUT).set_input_files([str(p) for p in scans])

    page.get_by_text(f"{len(scans)} slices read").wait_for()
    rows = table_rows(page, until=scans[0].name)
    assert len(rows) >= 4  # the rows in view, in upload order: plain images have no slice, each a verdict in words
    assert [row[1:3] for row in rows] == [[p.name, ""] for p in scans[:len(rows)]]
    assert all(row[3] in VERDICT_WORDS for row in rows), rows
    page.get_by_role("button", name="Table (CSV)").wait_for()
    page.get_by_role("button", name="Heatmaps (zip)").wait_for()
    page.wait_for_timeout(1500)  # thumbnails are drawn into the grid's canvas after the data arrives
    save_full_page_screenshot(page, screenshot_dir / "batch.png", wait_for=None)

    with page.expect_download() as download:
        page.get_by_role("button", name="Table (CSV)").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == len(scans) + 1 and lines[0].startswith("file,")

    open_button = page.get_by_role("button", name="Open on Diagnose")
    expect(open_button).to_have_count(1)  # the download's rerun can show the old and the new button for a moment
    open_button.click()
    page.locator('[data-testid="stMetric"]').filter(has_text="Tumor probability").wait_for()
    assert page.get_by_role("heading", name="Diagnose").is_visible()
    page.locator('[data-testid="stImage"]').filter(has_text=scans[0].name).wait_for()  # the caption names the file


def test_batch_reads_the_files_of_a_dicom_series_as_one_series_slice_by_slice(page, app_url, figshare_dir, tmp_path,
                                                                             screenshot_dir):
    """Six DICOM files of one series (no extension, uploaded out of order), every slice read: six rows named
    by the series and its slice counted from 1, each with a verdict in words; the CSV says the same."""
    stack = stack_of(sorted((figshare_dir / "meningioma").iterdir())[:6], size=256)
    paths = []
    for k in (4, 1, 5, 0, 3, 2):
        paths.append(tmp_path / f"IM{k:04d}")  # as a PACS exports them: no extension; the bytes decide
        paths[-1].write_bytes(dicom_bytes(stack[k], position=5.0 * k, instance=k + 1))
    open_batch_page(page, app_url)
    page.locator(UPLOAD_INPUT).set_input_files([str(p) for p in paths])
    page.get_by_text("1 slice read").wait_for()  # one series, its middle slice, as Diagnose starts
    page.get_by_text("The middle slice of each volume and series").wait_for()

    page.get_by_text("Read every slice of volumes and series").click()
    page.get_by_text("6 slices read").wait_for()
    page.get_by_text("Every slice of each volume and series.").wait_for()
    assert not page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count()
    rows = table_rows(page, until="1 of 6")
    assert len(rows) >= 4  # the rows in view: one series, its slices counted from 1, a verdict in words each
    for number, row in enumerate(rows, start=1):
        assert row[1:3] == ["IM0004 (6 files)", f"{number} of 6"], row
        assert row[3] in VERDICT_WORDS, row
    page.wait_for_timeout(1500)  # thumbnails are drawn into the grid's canvas after the data arrives
    save_full_page_screenshot(page, screenshot_dir / "batch-dicom-series.png", wait_for=None)

    with page.expect_download() as download:
        page.get_by_role("button", name="Table (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(r["file"], r["slice_number"], r["slice_count"]) for r in rows] == [  # every row, also those out of view
        ("IM0004 (6 files)", str(n), "6") for n in range(1, 7)]
    assert {r["verdict"] for r in rows} <= {"tumor", "no_tumor", "uncertain", "cannot_read"} and all(
        r["verdict"] for r in rows)
