"""The Train page (pages/train.py and its job view pages/train_job.py), run headless with AppTest on real data folders."""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mri_core.training import data as datasets
from mri_core.training import duplicates
from mri_core.training import splits

from mri_core.training import jobs

from mri_core.package import registry
from mri_core.training.recipes import RECIPES, default_arch, settings_for

APP, PAGE = Path(__file__).resolve().parents[2] / "app.py", "pages/train.py"
RUN_TIMEOUT_S = 180  # a training run's first step imports TensorFlow: slow on 2 shared cores, but bounded
JOB_TIMEOUT_S = 300


pytestmark = pytest.mark.usefixtures("no_leftover_job")


# the page's widget keys (pages/train.py FIELDS)
FIELDS = {"epochs": "train_epochs", "image_size": "train_size", "batch_size": "train_batch", "learning_rate": "train_lr"}

def start_page(run: str | None = None) -> AppTest:
    """A new browser tab on the Train page; `run`: the owner token in its URL (`?run=`), as after a reload."""
    page = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S).switch_page(PAGE)
    if run is not None:
        page.query_params["run"] = run
    page.run()
    assert not page.exception, page.exception
    return page


def choose_paper(page: AppTest) -> AppTest:
    """The seed paper's small CNN: the quickest to train in a test."""
    [architecture] = [s for s in page.selectbox if s.label == "Architecture"]
    architecture.set_value("paper").run()
    assert not page.exception, page.exception
    return page


def give_folders(page: AppTest, *folders: Path) -> AppTest:
    [source] = [r for r in page.radio if r.label == "Training data"]
    source.set_value("Folders on this server").run()
    page.text_area[0].set_value("\n".join(str(f) for f in folders))
    page.run()
    assert not page.exception, page.exception
    return page


def page_text(page: AppTest) -> str:
    parts = [e.value for kind in ("title", "subheader", "markdown", "caption", "info", "error", "warning", "success")
             for e in getattr(page, kind)]
    return "\n".join(str(p) for p in parts)


def test_page_renders_and_asks_for_data():
    page = start_page()
    assert page.title[0].value == "Train"
    assert "Give the data first" in page.info[0].value
    assert not page.error
    [source] = page.radio
    assert source.options == ["Upload a zip", "Folders on this server"], "the zip first: a clinician knows no server paths"
    assert source.value == "Upload a zip" and page.file_uploader and not page.text_area
    assert any("one folder per class" in c.value for c in page.caption), "the zip's layout in one line"


def test_missing_folder_shows_the_dataset_message(tmp_path):
    page = give_folders(start_page(), tmp_path / "missing")
    assert "does not exist" in page.error[0].value
    assert not [b for b in page.button if b.label == "Start training"]


def test_one_class_folder_says_a_second_class_is_needed(small_kaggle, tmp_path):
    (tmp_path / "yes").mkdir()
    for image in sorted((small_kaggle / "yes").iterdir())[:6]:
        (tmp_path / "yes" / image.name).symlink_to(image.resolve())
    page = give_folders(start_page(), tmp_path)
    assert "Only one class" in page.error[0].value


def test_valid_folder_shows_the_summary_and_settings_with_defaults(small_kaggle):
    page = give_folders(start_page(), small_kaggle)
    assert not page.error
    assert "**60 readable images** in 2 classes" in page_text(page)
    assert "tumor / no tumor" in page_text(page)
    assert "groups of near-duplicate images" in page_text(page)
    dataset = datasets.discover([small_kaggle])
    split = splits.split_groups(dataset, duplicates.group_near_duplicates(dataset.records), seed=0)
    train, val, test = (sum(split[r.sha256] == side for r in dataset.records) for side in splits.SPLITS)
    assert train + val + test == 60
    assert f"Split (seed 0): **{train} train · {val} validation · {test} test**" in page_text(page)
    table = page.dataframe[0].value
    assert list(table["notumor"]) == [30] and list(table["tumor"]) == [30]
    [architecture] = [s for s in page.selectbox if s.label == "Architecture"]
    assert architecture.value == default_arch(), "the shipped default's architecture, not the paper's"
    assert architecture.options == [recipe.label for recipe in RECIPES.values()]
    for key in ("epochs", "image_size", "batch_size", "learning_rate"):
        assert page.number_input(key=FIELDS[key]).value == RECIPES[default_arch()].defaults[key]
    page.number_input(key=FIELDS["epochs"]).set_value(3).run()  # a change the next architecture resets
    choose_paper(page)
    for key in ("epochs", "image_size", "batch_size", "learning_rate"):
        assert page.number_input(key=FIELDS[key]).value == RECIPES["paper"].defaults[key]
    assert [b for b in page.button if b.label == "Start training"]


def test_uploaded_zip_is_checked_and_summarized(small_kaggle, tmp_path):
    zip_path = tmp_path / "upload.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for image in sorted(small_kaggle.glob("*/*"))[:40]:
            archive.writestr(f"mydata/{image.parent.name}/{image.name}", image.read_bytes())
    page = start_page()  # the zip is the default source
    page.file_uploader[0].set_value(("upload.zip", zip_path.read_bytes(), "application/zip"))
    page.run()
    assert not page.exception, page.exception
    assert not page.error
    assert "**40 readable images** in 2 classes" in page_text(page)


def test_training_from_the_page_shows_what_failed_and_activates_only_after_a_confirmation(small_kaggle):
    page = choose_paper(give_folders(start_page(), small_kaggle))
    page.number_input(key=FIELDS["epochs"]).set_value(1)
    page.number_input(key=FIELDS["image_size"]).set_value(64)
    page.text_input[0].set_value("page-test")
    [start] = [b for b in page.button if b.label == "Start training"]
    start.click()
    page.run()
    assert not page.exception, page.exception

    job = jobs.current_job()
    assert job is not None and job.settings.epochs == 1 and job.settings.image_size == 64
    token = page.query_params.get("run")
    assert token and job.owner == token, "the run's owner token is in the tab's URL"
    assert job.wait(JOB_TIMEOUT_S)
    assert "Saved model" not in page_text(start_page()), "a new tab (another user) does not see the result"
    page = start_page(run=token)  # a reload of the tab reattaches to the (now finished) job
    assert "Saved model **page-test@1**" in page_text(page), page_text(page)
    assert not page.success, "no green message for a model that fails the activation checks"
    assert page.get("plotly_chart"), "curves and confusion matrix are drawn"
    # 60 images: the failed ood fit is on the page (not only in the log), and so are the activation checks
    warnings = [w.value for w in page.warning]
    assert warnings[0].startswith("No out-of-distribution statistics: fitting the out-of-distribution check needs")
    n = job.snapshot().result.info["test_metrics"]["n"]
    assert n < 100 and warnings[1] == (f"Only {n} test images (fewer than 100): these figures are rough; "
                                       "the intervals show how rough.")
    assert warnings[2].startswith("**page-test@1 does not pass the activation checks**")
    intervals = [c.value for c in page.caption if "95% CI" in c.value]
    assert len(intervals) == 3, intervals  # accuracy, sensitivity, specificity; none for ROC AUC
    assert re.fullmatch(rf"\d+ of {n} · 95% CI \d+\.\d%–\d+\.\d%", intervals[0]), intervals
    assert [m.label for m in page.metric] == ["Test accuracy", "Sensitivity", "Specificity", "ROC AUC"]
    assert not [b for b in page.button if b.label == "Activate page-test@1"], "no one-click Activate"
    [activate] = [b for b in page.button if b.label == "Activate page-test@1 anyway"]
    assert activate.disabled and activate.proto.type != "primary"
    page.checkbox(key="confirm-activate-page-test@1").check()
    page.run()
    [activate] = [b for b in page.button if b.label == "Activate page-test@1 anyway"]
    assert not activate.disabled
    activate.click()
    page.run()
    assert not page.exception, page.exception
    assert registry.active().ref == "page-test@1"
    assert "is the active model" in page_text(page)


def test_a_run_is_its_tabs_own_and_another_session_only_learns_the_server_is_busy(small_kaggle):
    token = "tab-token-0123456789abcdef"
    job = jobs.start_job([small_kaggle], settings_for("paper", epochs=200, image_size=64), owner=token)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while job.snapshot().step is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    other = start_page()  # another user, or a new tab: no token in its URL
    assert not other.exception, other.exception
    [note] = [i.value for i in other.info if "another user's model" in i.value]
    assert note.startswith("The server is training another user's model (epoch ") and " of 200, started " in note
    assert note.endswith("only one model trains at a time. You can start yours when it finishes.")
    assert not other.get("progress") and not other.get("plotly_chart"), "not the other run's progress or curves"
    assert str(small_kaggle) not in page_text(other), "not the other run's data folder"
    assert not [b for b in other.button if b.label == "Cancel training"]
    give_folders(other, small_kaggle)  # the form is there to prepare a run, but it cannot start one
    [start] = [b for b in other.button if b.label == "Start training"]
    assert start.disabled

    page = start_page(run=token)  # a reload of the tab that started it: progress and Cancel
    assert page.get("progress"), "a progress bar is shown"
    assert "Epoch " in page.get("progress")[0].proto.text
    assert not [b for b in page.button if b.label == "Start training"]
    assert not [i for i in page.info if "another user's model" in i.value]
    [cancel] = [b for b in page.button if b.label == "Cancel training"]
    cancel.click()
    page.run()
    assert job.cancel_requested
    assert job.wait(JOB_TIMEOUT_S)
    page = start_page(run=token)
    assert "no model was saved" in page.warning[0].value
    assert not [e for e in registry.list_models() if not e.shipped]
    other = give_folders(start_page(), small_kaggle)  # once it has ended, others get the form, not its outcome
    assert "no model was saved" not in page_text(other) and "another user's model" not in page_text(other)
    [start] = [b for b in other.button if b.label == "Start training"]
    assert not start.disabled
