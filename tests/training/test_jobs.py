"""Background training jobs: real `paper` training at 64 px on a small real Kaggle subset."""

from __future__ import annotations

import time

import pytest

from mri_core.training import jobs

from mri_core.package import registry
from mri_core.io.errors import SettingsInvalid
from mri_core.training.recipes import settings_for

JOB_TIMEOUT_S = 300  # generous bound on 2 shared cores; never a speed assertion


def wait_for(condition, timeout: float = JOB_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the job did not get there in time"
        time.sleep(0.05)


pytestmark = pytest.mark.usefixtures("no_leftover_job")


def test_job_trains_in_the_background_and_saves_a_package(small_kaggle):
    cleaned = []
    settings = settings_for("paper", epochs=1, image_size=64, name="job-test")
    job = jobs.start_job([small_kaggle], settings, cleanup=lambda: cleaned.append(True))

    assert jobs.current_job() is job, "a reload finds the same job"
    assert job.wait(JOB_TIMEOUT_S)
    final = job.snapshot()
    assert final.status == jobs.FINISHED, final.error
    assert [e.epoch for e in final.history] == [1]
    assert final.data is not None and set(final.data.class_names) == {"notumor", "tumor"}
    assert final.progress == 1.0
    assert final.result.name == "job-test"
    assert [e.ref for e in registry.list_models() if not e.shipped] == ["job-test@1"]
    assert final.result.info["history"][0]["epoch"] == 1
    assert "accuracy" in final.result.info["test_metrics"]
    assert cleaned == [True], "the upload's temp folder is removed when the job ends"
    # 60 images: the ood fit fails, and the job says so (the Train page shows it), not only the log
    [warning] = final.warnings
    assert warning.startswith("No out-of-distribution statistics: ") and "explicit confirmation" in warning


def test_cancel_mid_run_saves_nothing_and_a_second_start_is_refused(small_kaggle):
    cleaned = []
    settings = settings_for("paper", epochs=200, image_size=64, name="cancelled")
    job = jobs.start_job([small_kaggle], settings, cleanup=lambda: cleaned.append(True))
    wait_for(lambda: job.snapshot().step is not None)

    with pytest.raises(SettingsInvalid, match="already running"):
        jobs.start_job([small_kaggle], settings)
    assert jobs.current_job() is job

    job.cancel()
    assert job.wait(JOB_TIMEOUT_S)
    final = job.snapshot()
    assert final.status == jobs.CANCELLED
    assert "no model was saved" in final.error
    assert final.result is None
    assert not [e for e in registry.list_models() if not e.shipped]
    assert not list(registry.models_dir().glob("**/model.keras")), "nothing half-written is left"
    assert cleaned == [True]


def test_a_job_is_its_owners_and_others_only_learn_that_the_server_is_busy(small_kaggle, tmp_path):
    settings = settings_for("paper", epochs=200, image_size=64, name="alices")
    job = jobs.start_job([small_kaggle], settings, owner="alice")
    wait_for(lambda: job.snapshot().step is not None)

    assert jobs.own_job("alice") is job and job.snapshot().owner == "alice", "her reload finds it"
    assert jobs.own_job("bob") is None and jobs.own_job(None) is None, "another session does not"
    assert jobs.busy_elsewhere("alice") is None
    busy = jobs.busy_elsewhere("bob")
    assert busy == jobs.Busy(busy.epoch, 200, job.started) and busy.epoch >= 1
    assert not hasattr(busy, "data_dirs") and not hasattr(busy, "history"), "no paths, curves or result"
    with pytest.raises(SettingsInvalid, match="only one model trains at a time"):
        jobs.start_job([small_kaggle], settings, owner="bob")
    with pytest.raises(SettingsInvalid, match="cancel it on the Train page"):
        jobs.start_job([small_kaggle], settings, owner="alice")
    jobs.dismiss_job("bob")
    jobs.dismiss_job("alice")  # a running job is kept
    assert jobs.own_job("alice") is job and job.snapshot().running

    job.cancel()
    assert job.wait(JOB_TIMEOUT_S)
    assert jobs.busy_elsewhere("bob") is None, "an ended job keeps no one waiting"
    bobs = jobs.start_job([tmp_path / "missing"], settings_for("paper", epochs=1, image_size=64), owner="bob")
    assert bobs.wait(JOB_TIMEOUT_S)
    assert jobs.own_job("bob") is bobs and jobs.current_job() is bobs
    assert jobs.own_job("alice") is job, "her ended run is still hers after bob's"
    jobs.dismiss_job("alice")
    assert jobs.own_job("alice") is None and jobs.own_job("bob") is bobs


def test_only_the_latest_ended_jobs_are_kept(tmp_path):
    settings = settings_for("paper", epochs=1, image_size=64)
    started = []
    for i in range(jobs.MAX_ENDED_JOBS + 2):
        started.append(jobs.start_job([tmp_path / "missing"], settings, owner=f"user-{i}"))
        assert started[-1].wait(JOB_TIMEOUT_S)
    kept = [i for i in range(len(started)) if jobs.own_job(f"user-{i}") is started[i]]
    assert kept == list(range(1, len(started))), "the oldest ended job goes first"


def test_a_bad_data_folder_ends_the_job_as_failed_with_the_reason(tmp_path):
    job = jobs.start_job([tmp_path / "missing"], settings_for("paper", epochs=1, image_size=64))
    assert job.wait(JOB_TIMEOUT_S)
    final = job.snapshot()
    assert final.status == jobs.FAILED
    assert "does not exist" in final.error
    jobs.dismiss_job()
    assert jobs.current_job() is None


def test_bad_settings_are_refused_before_any_job_starts(small_kaggle):
    with pytest.raises(SettingsInvalid, match="Epochs"):
        jobs.start_job([small_kaggle], settings_for("paper", epochs=0))
    assert jobs.current_job() is None


def test_a_job_killed_mid_training_is_resumed_from_its_last_epoch(small_kaggle, tmp_path):
    """A real crash: the server process is SIGKILLed after epoch 1; a new process resumes."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from mri_core.training import checkpoint

    home = os.environ["MRI_HOME"]
    script = (
        "import sys; from mri_core.training import jobs; from mri_core.training.recipes import settings_for; "
        f"jobs.start_job([{str(small_kaggle)!r}], settings_for('paper', epochs=40, image_size=64, name='crashy')).wait()"
    )
    server = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "MRI_HOME": home},
                              cwd=registry.PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = jobs.checkpoint_dir() / checkpoint.STATE_FILE
    try:
        wait_for(lambda: state.is_file() or server.poll() is not None)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    interrupted = jobs.interrupted_job()
    assert interrupted is not None and interrupted.epochs_done >= 1
    assert interrupted.settings.name == "crashy" and interrupted.data_dirs == (str(small_kaggle),)
    done_before = json.loads(state.read_text())["epoch"]

    job = jobs.resume_interrupted()
    first_new_epoch = []
    wait_for(lambda: job.snapshot().history or not job.snapshot().running)
    first_new_epoch = job.snapshot().history[0].epoch if job.snapshot().history else None
    job.cancel()  # no need to run all 40 epochs: resuming is what is tested
    job.wait(JOB_TIMEOUT_S)
    assert first_new_epoch == done_before + 1
    assert jobs.interrupted_job() is None and not jobs.checkpoint_dir().exists()  # cancel discards it
    assert "crashy" not in {e.name for e in registry.list_models()}
