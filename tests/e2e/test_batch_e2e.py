"""The Batch page in a real browser: upload several scans, see the table, open one on Diagnose.

Also saves the README screenshot batch.png into `screenshot_dir`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect
from e2e.browser import UPLOAD_INPUT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_batch_upload_shows_table_downloads_and_opens_a_row_on_diagnose(page, app_url, kaggle_dir, typed_dir,
                                                                         screenshot_dir):
    scans = (sorted((kaggle_dir / "yes").iterdir())[:2] + sorted((kaggle_dir / "no").iterdir())[:1]
             + [sorted((typed_dir / c).iterdir())[0] for c in ("glioma", "meningioma", "pituitary")])
    page.goto(f"{app_url}/batch")  # a page's own URL as the server's first request: app.py still serves it
    # The first answer may still be Streamlit's pages-folder sidebar, until the page reruns through
    # app.py (pages/common.py); wait for the app's own navigation, then check it.
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stSidebarNav"] a')]
                 .map(a => a.innerText.trim().split(/\\s+/).pop()).join() === "Diagnose,Batch,Train,Models" """,
        timeout=60_000)
    navigation = page.locator('[data-testid="stSidebarNav"] a')
    assert [link.inner_text().split()[-1] for link in navigation.all()] == ["Diagnose", "Batch", "Train", "Models"]
    page.get_by_text("Upload several slices").wait_for()
    page.locator(UPLOAD_INPUT).set_input_files([str(p) for p in scans])

    page.get_by_text(f"{len(scans)} answers").wait_for()
    table = page.locator('[data-testid="stDataFrame"]')
    table.wait_for()
    page.get_by_role("button", name="Table (CSV)").wait_for()
    page.get_by_role("button", name="Heatmaps (zip)").wait_for()
    page.wait_for_timeout(1500)  # thumbnails are drawn into the grid's canvas after the data arrives
    page.screenshot(path=str(screenshot_dir / "batch.png"), full_page=True)

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
