"""The pages under bad input, a lost browser, two sessions at once, and what a session leaves behind.

Run headless with AppTest on the real app scripts, the real model and real data; the corpus is
the one of tests/corpus (its table is in tests/io/test_corpus.py).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mri_core.training import jobs

from mri_core.inference import read as pipeline

from mri_core.package import registry
from mri_core.inference.model import load_model
from mri_core.present.report import percent
from test_faults import left_in, private_tmp, zip_of  # noqa: F401 (private_tmp is a fixture)

ROOT = Path(__file__).resolve().parents[2]
APP, TRAIN_PAGE = ROOT / "app.py", "pages/train.py"
RUN_TIMEOUT_S = 180  # the first run imports TensorFlow: slow on 2 shared cores, but bounded
JOB_TIMEOUT_S = 300
# A few representative corpus items for the page: refused ones show their message, read ones their warning.
PAGE_ITEMS = ("empty.jpg", "report.pdf", "bomb.png", "dicom_sr.dcm", "zip_nested.zip", "nifti_zero_dim.nii",
              "cmyk.jpg", "dicom_rgb.dcm")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    sys.path.insert(0, str(ROOT / "tests" / "corpus"))
    from make_corpus import build_corpus

    return build_corpus(tmp_path_factory.mktemp("corpus"))


def start(page_path: str | None = None) -> AppTest:
    """The app on `page_path` (None: Diagnose, the start page) after its first run."""
    page = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)
    if page_path is not None:
        page.switch_page(page_path)
    page.run()
    assert not page.exception, page.exception
    return page


def choose_paper(page: AppTest) -> AppTest:
    """The seed paper's small CNN on the Train page: the quickest to train in a test."""
    [architecture] = [s for s in page.selectbox if s.label == "Architecture"]
    architecture.set_value("paper").run()
    assert not page.exception, page.exception
    return page


def upload(page: AppTest, name: str, data: bytes) -> AppTest:
    page.file_uploader[0].set_value((name, data, "application/octet-stream"))
    page.run()
    assert not page.exception, page.exception
    return page


def test_bad_uploads_show_their_message_and_the_page_stays_usable(active_entry, corpus, tumor_image_path):
    sys.path.insert(0, str(ROOT / "tests" / "io"))  # the corpus table lives beside the io tests
    from test_corpus import CORPUS, Read

    page = start()
    for name in PAGE_ITEMS:
        expected = CORPUS[name][2]
        upload(page, name, corpus[name].read_bytes())
        if isinstance(expected, Read):
            # decoded: a reading, or (the corpus "scan" is a drawn ellipse, not a brain MRI) a cannot-read verdict
            refused = bool(page.subheader) and "Cannot read this image" in page.subheader[0].value
            assert not page.error and (page.metric or refused), name
            shown = " ".join(w.value for w in page.warning)
            assert all(w.replace("_", " ") in shown for w in expected.warnings), (name, shown)
        else:
            assert [e.value for e in page.error] and expected.fragment in page.error[0].value, name
            assert not page.metric, name
    upload(page, tumor_image_path.name, tumor_image_path.read_bytes())
    assert not page.error and page.metric, "a good scan after the bad ones is read"


@pytest.mark.usefixtures("no_leftover_job")
def test_a_lost_browser_mid_training_keeps_the_job_and_leaves_no_temp_files(small_kaggle, private_tmp):
    page = start(TRAIN_PAGE)
    page.radio[0].set_value("Upload a zip").run()
    upload(page, "upload.zip", zip_of(small_kaggle))
    choose_paper(page)
    page.number_input(key="train_epochs").set_value(2)
    page.number_input(key="train_size").set_value(64)
    page.text_input[0].set_value("lost-tab")
    [begin] = [b for b in page.button if b.label == "Start training"]
    begin.click().run()
    assert not page.exception, page.exception
    job = jobs.current_job()
    assert job is not None and job.snapshot().running
    token = page.query_params["run"]  # the run's owner token, kept in the tab's URL
    del page  # the tab is closed: no session draws the job any more

    assert job.wait(JOB_TIMEOUT_S) and job.snapshot().status == jobs.FINISHED, job.snapshot().error
    assert left_in(private_tmp) == [], "the upload's temp folder (or another temp file) was left behind"
    [entry] = [e for e in registry.list_models() if not e.shipped]
    assert entry.ref == "lost-tab@1" and load_model(entry).ref == "lost-tab@1"  # whole, loadable
    reopened = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S).switch_page(TRAIN_PAGE)
    reopened.query_params["run"] = token  # the tab reopened on its URL finds the result
    reopened.run()
    assert any("lost-tab@1" in s.value for s in [*reopened.success, *reopened.info])  # info: it fails the activation rule


@pytest.mark.usefixtures("no_leftover_job")
def test_one_session_diagnoses_while_another_trains_and_the_shared_model_gives_the_same_readings(
        active_entry, small_kaggle, kaggle_dir, tumor_image_path):
    images = [tumor_image_path, *sorted((kaggle_dir / "no").iterdir())[:3]]
    scan_model = load_model(active_entry)
    expected = {p: pipeline.read_upload(scan_model, p.read_bytes(), p.name)[0] for p in images}

    trainer = start(TRAIN_PAGE)  # session 1: trains
    trainer.radio[0].set_value("Folders on this server").run()  # the zip is the default source
    trainer.text_area[0].set_value(str(small_kaggle)).run()
    choose_paper(trainer)
    trainer.number_input(key="train_epochs").set_value(200)
    trainer.number_input(key="train_size").set_value(64)
    [begin] = [b for b in trainer.button if b.label == "Start training"]
    begin.click().run()
    job = jobs.current_job()
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while job.snapshot().step is None:
        assert time.monotonic() < deadline and job.snapshot().running, job.snapshot().error
        time.sleep(0.05)

    diagnoser = start()  # session 2: diagnoses while session 1's model trains
    upload(diagnoser, tumor_image_path.name, tumor_image_path.read_bytes())
    assert not diagnoser.error
    assert diagnoser.metric[0].value == percent(expected[tumor_image_path].tumor_probability)

    results, failures = {}, []

    def read_all(worker: int) -> None:  # the one model object every session shares, from many threads
        try:
            for path in images[worker:] + images[:worker]:
                reading = pipeline.read_upload(scan_model, path.read_bytes(), path.name)[0]
                results.setdefault(path, []).append(reading)
        except Exception as exc:  # collected: an assert in a thread would be lost
            failures.append(exc)

    threads = [threading.Thread(target=read_all, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOB_TIMEOUT_S)
    assert not failures, failures
    for path, readings in results.items():
        assert len(readings) == 4
        for reading in readings:
            assert reading.tumor_probability == pytest.approx(expected[path].tumor_probability, abs=1e-5)
            assert np.allclose(reading.heatmap, expected[path].heatmap, atol=1e-4)
    assert job.snapshot().running, "training went on meanwhile"
    trainer.run()  # session 1 still draws its job
    assert trainer.get("progress") and not trainer.exception
    job.cancel()
    assert job.wait(JOB_TIMEOUT_S)


def test_a_dicom_session_writes_nothing_and_logs_no_tag(active_entry, kaggle_dir, private_tmp, caplog):
    from scans import SECRET_TAGS, dicom_bytes, grey_uint8

    from mri_core.present import reading_log

    caplog.set_level(logging.DEBUG)
    data = dicom_bytes(grey_uint8(sorted((kaggle_dir / "yes").iterdir())[0]), **SECRET_TAGS)
    home = registry.mri_home()
    before = set(home.rglob("*")) if home.exists() else set()
    started = time.time()
    page = upload(start(), "IM0001", data)
    assert page.metric, "the DICOM was read"
    assert left_in(private_tmp) == [], "the session wrote to the temp folder"
    leftovers = b"".join(p.read_bytes() for p in private_tmp.rglob("*") if p.is_file())
    # the one deliberate write: the reading log's row (DESIGN.md's exception), with no tag value or file name
    assert (set(home.rglob("*")) if home.exists() else set()) - before == {reading_log.log_path(home)}, \
        "the session wrote to the registry beyond the reading log"
    log_text = reading_log.log_path(home).read_text()
    assert len(reading_log.read_log(home)) == 1 and "IM0001" not in log_text
    leftovers += log_text.encode()
    written = [p for p in ROOT.rglob("*") if p.is_file() and p.stat().st_mtime >= started
               and not {".git", ".venv", "__pycache__", ".pytest_cache"} & set(p.relative_to(ROOT).parts)]
    assert written == [], f"the session wrote {written}"
    logged = caplog.text
    for value in SECRET_TAGS.values():
        for part in value.split("^"):
            assert part not in logged, f"{part!r} reached a log"
            assert part.encode() not in leftovers, f"{part!r} reached a temp file"
