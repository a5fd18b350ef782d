"""Train, Models and Diagnose pages together in a real browser.

Trains the `paper` architecture for 2 epochs at 64 px on 60 real Kaggle slices from the Train
page (which starts on the shipped default's architecture), watches the progress and curves,
activates the model, finds it marked active on the Models page and reads a tumor scan with it
on the Diagnose page. Saves the README screenshots train.png and models.png into
`screenshot_dir`. The server and its model registry are this module's own.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
from e2e.browser import PLOT, UPLOAD_INPUT, save_full_page_screenshot
from playwright.sync_api import expect

from mri_core.training.recipes import RECIPES, default_arch

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CHART = '[data-testid="stPlotlyChart"]'
SNAPSHOT_JS = """() => {
    const text = selector => { const e = document.querySelector(selector); return e ? e.innerText : null; };
    // a model that fails the activation rule is announced in an info box, one that passes in a success box
    return {saved: Array.from(document.querySelectorAll('[data-testid="stAlertContentSuccess"], [data-testid="stAlertContentInfo"]'))
                        .some(e => e.innerText.startsWith("Saved model ")),
            error: text('[data-testid="stAlertContentError"]'),
            progress: text('[data-testid="stProgress"]'),
            charts: document.querySelectorAll('[data-testid="stPlotlyChart"]').length};
}"""
TRAINING_TIMEOUT_S = 180  # 2 epochs at 64 px on 60 images, on a busy 2-core machine
EPOCH_TEXT = re.compile(r"Epoch (\d) of 2 · batch \d+ of \d+")
PROGRESS_TEXT = re.compile(r"Reading, checking and splitting the data|Training on \d+ images|Epoch \d of 2")


def commit_number(page, label: str, value: int) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    page.wait_for_function("([el, v]) => el.value === v", arg=[field.element_handle(), str(value)])


def body_text(page) -> str:
    return page.locator("body").inner_text()


def watch_training(page) -> tuple[float, list[str], set[int], int]:
    """Poll the running view until the result shows.

    Returns (seconds until the result, progress bar texts seen, epoch numbers seen in them,
    most curve charts seen while training ran). Epochs of this tiny run can be shorter than
    the page's refresh interval, so which ones show is up to timing.
    """
    started = time.monotonic()
    texts, epochs_seen, charts_while_running = [], set(), 0
    while True:
        # One atomic read: the fragment redraws every 2 s, so elements come and go between calls.
        state = page.evaluate(SNAPSHOT_JS)
        if state["saved"]:
            break
        if state["error"]:
            pytest.fail(f"training failed in the browser: {state['error']}")
        elapsed = time.monotonic() - started
        if elapsed > TRAINING_TIMEOUT_S:
            pytest.fail(f"no result after {elapsed:.0f} s; the page shows:\n{body_text(page)[-2000:]}")
        if state["progress"] is not None:
            texts.append(state["progress"])
            epochs_seen.update(int(n) for n in EPOCH_TEXT.findall(state["progress"]))
            charts_while_running = max(charts_while_running, state["charts"])
        page.wait_for_timeout(300)
    return time.monotonic() - started, texts, epochs_seen, charts_while_running


def test_train_activate_list_and_diagnose_with_the_new_model(page, app_url, small_kaggle, tumor_image_path,
                                                              screenshot_dir):
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    ref = f"{name}@1"

    # Train page: data (the zip is the default source; this test uses the server folder), summary, settings.
    page.goto(f"{app_url}/train")
    source = page.get_by_role("radiogroup", name="Training data")
    assert source.get_by_role("radio").first.is_checked(), "the zip upload comes first and is chosen"
    source.get_by_text("Folders on this server", exact=True).click()  # the label takes the click
    folders = page.get_by_label("Data folders on the server, one per line")
    folders.fill(str(small_kaggle))
    folders.press("Control+Enter")
    page.get_by_text(re.compile(r"^\d+ readable images in 2 classes; this trains a tumor / no tumor model")).wait_for()
    page.get_by_text(re.compile(r"Split \(seed 0\): \d+ train · \d+ validation · \d+ test images")).wait_for()
    page.get_by_role("button", name="Start training").wait_for()

    architecture = page.get_by_role("combobox", name="Architecture")
    assert architecture.input_value() == RECIPES[default_arch()].label  # the shipped default's, not the paper's
    architecture.click()
    page.get_by_role("option", name=RECIPES["paper"].label, exact=True).click()
    expect(page.get_by_label("Epochs", exact=True)).to_have_value(str(RECIPES["paper"].defaults["epochs"]),
                                                                 timeout=120_000)
    commit_number(page, "Epochs", 2)
    commit_number(page, "Image size (px)", 64)
    name_field = page.get_by_label("Model name (optional)")
    name_field.fill(name)
    name_field.press("Enter")
    page.wait_for_timeout(500)  # let the rerun with the name settle before starting
    assert page.get_by_label("Epochs", exact=True).input_value() == "2"
    assert page.get_by_label("Image size (px)", exact=True).input_value() == "64"

    # Training: progress bar with the epoch, curves, then the result.
    page.get_by_role("button", name="Start training").click()
    seconds, texts, epochs_seen, charts_while_running = watch_training(page)
    print(f"\n2-epoch paper training at 64 px on {small_kaggle} in the browser: {seconds:.1f} s "
          f"(from Start to the result); progress showed epochs {sorted(epochs_seen)}, "
          f"{charts_while_running} curve charts while running; progress texts {sorted(set(texts))}")
    assert texts, "no progress bar while training ran"
    assert all(PROGRESS_TEXT.search(text) for text in texts), texts

    result = page.get_by_text(re.compile(r"^Saved model ")).inner_text()
    assert ref in result
    assert re.search(r"[?&]run=[A-Za-z0-9_-]{16,}", page.url), f"the run's token is in the tab's URL: {page.url}"
    for label in ("Test accuracy", "Sensitivity", "Specificity", "ROC AUC"):
        page.get_by_test_id("stMetric").filter(has_text=label).wait_for()
    page.get_by_text(re.compile(r"^Only \d+ test images \(fewer than 100\): these figures are rough")).wait_for()
    assert page.get_by_text(re.compile(r"^\d+ of \d+ · 95% CI ")).count() == 3  # no interval under ROC AUC
    page.get_by_text(re.compile(r"^Confusion matrix on \d+ test images")).wait_for()
    page.locator(PLOT).first.wait_for()
    # confusion matrix, loss and accuracy curves (drawn one after another on a busy machine)
    page.wait_for_function(f"() => document.querySelectorAll('{CHART}').length >= 3")
    charts = page.locator(CHART)
    assert charts.count() == 3
    for curve in (charts.nth(1), charts.nth(2)):  # train and validation, one marker per epoch each
        assert curve.locator(".scatterlayer .trace").count() == 2
        assert curve.locator(".scatterlayer .point").count() == 4
    save_full_page_screenshot(page, screenshot_dir / "train.png")

    # A 2-epoch model on a few images fails the activation rule: it is activated only after a confirmation.
    anyway = page.get_by_role("button", name=f"Activate {ref} anyway")
    assert anyway.is_disabled()
    assert page.get_by_role("button", name=f"Activate {ref}", exact=True).count() == 0
    page.get_by_text(f"I have read why and want to activate {ref} anyway.").click()  # the label takes the click
    page.wait_for_function(
        f"() => [...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Activate {ref} anyway' && !b.disabled)")
    anyway.click()
    page.get_by_text(f"{ref} is the active model").wait_for()

    # Models page: listed and marked active.
    page.goto(f"{app_url}/models")
    page.get_by_text(re.compile(r"^Active model: ")).wait_for()
    assert page.get_by_text(re.compile(r"^Active model: ")).inner_text().startswith(f"Active model: {ref}")
    assert page.get_by_role("combobox", name="Model", exact=True).input_value() == ref  # starts on the active one
    assert page.get_by_role("button", name="Make active").is_disabled()
    page.get_by_text(f"{ref} is the active model: make another model active").wait_for()
    compare_table = page.locator('[data-testid="stTable"]').inner_text()
    assert f"A · {ref}" in compare_table
    assert "paper" in compare_table
    page.locator(PLOT).first.wait_for()
    save_full_page_screenshot(page, screenshot_dir / "models.png")

    # Diagnose page: reads a real tumor scan with the new model.
    page.goto(app_url)
    page.get_by_text("Upload one axial brain MRI slice").wait_for()
    page.locator(UPLOAD_INPUT).set_input_files(str(tumor_image_path))
    page.get_by_text("Tumor probability", exact=True).wait_for()
    page.get_by_role("heading", name=re.compile(r"^(Tumor|No tumor)$")).wait_for()
    assert f"Model {ref} · paper" in body_text(page)
    assert f"Reading with {ref}, not the shipped default model" in body_text(page)  # the banner
