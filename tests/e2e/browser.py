"""What the browser tests share: the upload input and a full-page screenshot of a Streamlit page."""

from __future__ import annotations

from pathlib import Path

UPLOAD_INPUT = '[data-testid="stFileUploader"] input[type="file"]'
PLOT = '[data-testid="stPlotlyChart"] .main-svg'
VIEWPORT = {"width": 1280, "height": 1000}


def save_full_page_screenshot(page, path: Path, wait_for: str | None = PLOT) -> None:
    """Streamlit scrolls inside its main container, so grow the viewport to the content first; then wait
    for `wait_for` (a page's chart by default; None for a page without one)."""
    content_height = page.evaluate(
        "() => Math.max(...Array.from(document.querySelectorAll('[data-testid=\"stMain\"], "
        "[data-testid=\"stAppViewContainer\"]'), e => e.scrollHeight), document.body.scrollHeight)")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], content_height)})
    if wait_for:
        page.locator(wait_for).first.wait_for()
    page.wait_for_timeout(500)  # let plotly (or a table's canvas) finish laying out after the resize
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)
