"""Faults: a process killed (SIGKILL) while it saves a model, and training cancelled mid-run.

The registry must never list a half package and the active model must keep loading; a
cancelled training from an uploaded zip must leave no temp folder and no model behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from mri_core.training import uploads

from mri_core.training import jobs

from mri_core.package import registry
from mri_core.training.recipes import settings_for

PROJECT_ROOT = Path(__file__).resolve().parents[1]
KILLS = 16
JOB_TIMEOUT_S = 300
# A child that saves a package again and again until it is killed: each kill lands at a random point.
SAVE_FOREVER = """
import json, shutil, sys
from pathlib import Path
from mri_core.package import registry
weights, info = Path(sys.argv[1]), json.loads(sys.argv[2])
print("ready", flush=True)
while True:
    registry.save_package("victim", info, lambda folder: shutil.copyfile(weights, folder / "model.keras"))
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_at_random_points_of_saving_never_lists_a_half_package(tmp_path, monkeypatch):
    from mri_core.inference.model import load_model

    monkeypatch.setenv("MRI_HOME", str(tmp_path / "home"))
    shipped = registry.default_shipped()
    weights = shipped.path / registry.MODEL_FILE
    kept = registry.save_package("kept", shipped.info, lambda folder: shutil.copyfile(weights, folder / "model.keras"))
    registry.activate(kept.path, confirm=True)  # no ood.npz copied: activated only when confirmed
    expected, rng = digest(weights), random.Random(9)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "MRI_HOME": str(tmp_path / "home")}
    killed_mid_save = 0
    for kill in range(KILLS):
        partial_before = set(registry.models_dir().glob(".partial-*"))
        child = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(weights), json.dumps(shipped.info)],
                                 stdout=subprocess.PIPE, env=env, cwd=PROJECT_ROOT)
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        killed_mid_save += bool(set(registry.models_dir().glob(".partial-*")) - partial_before)

        trained = [e for e in registry.list_models() if not e.shipped]
        assert trained[0].ref == "kept@1"
        for entry in trained:  # every listed package is whole
            assert ".partial-" not in str(entry.path)
            assert digest(entry.path / registry.MODEL_FILE) == expected, f"half model.keras listed after kill {kill}"
            assert registry.read_info(entry.path)["name"] == entry.name
        assert registry.active().ref == "kept@1"
        if kill % 8 == 7:
            assert load_model(registry.active()).ref == "kept@1"
    print(f"{KILLS} kills, {killed_mid_save} inside a save, {len(trained) - 1} versions saved whole")
    assert killed_mid_save > 0, "no kill landed inside a save: the test proves nothing"

    leftovers = list(registry.models_dir().glob(".partial-*"))
    for staging in leftovers:  # left by the killed saves: never listed, swept once stale
        os.utime(staging, (time.time() - 2 * registry.STALE_PARTIAL_S,) * 2)
    registry.save_package("after", shipped.info, lambda folder: shutil.copyfile(weights, folder / "model.keras"))
    assert not list(registry.models_dir().glob(".partial-*"))
    assert load_model(registry.active()).ref == "kept@1"


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """This process's temp folder, emptied and private: what a session leaves there shows."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def left_in(folder: Path) -> list[Path]:
    """What a session left in a temp folder, less TensorFlow's autograph modules (generated code of
    our own functions, no data; TensorFlow removes them when the process exits)."""
    return [p for p in folder.iterdir() if not p.name.startswith("__autograph_generated_file")]


def zip_of(folder: Path, count: int = 40) -> bytes:
    path = folder.parent / f"{folder.name}.zip"
    with zipfile.ZipFile(path, "w") as upload:
        for image in sorted(folder.glob("*/*"))[:count]:
            upload.writestr(f"mydata/{image.parent.name}/{image.name}", image.read_bytes())
    return path.read_bytes()


@pytest.mark.usefixtures("no_leftover_job")
def test_cancelling_training_from_a_zip_leaves_no_temp_files_and_no_model(small_kaggle, private_tmp, tmp_path):
    data = zip_of(small_kaggle)
    folder = uploads.make_temp_folder()  # what the Train page does with an uploaded zip
    root = uploads.extract_zip(data, folder)
    job = jobs.start_job([root], settings_for("paper", epochs=200, image_size=64),
                         cleanup=lambda: shutil.rmtree(folder, ignore_errors=True), resumable=False)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while job.snapshot().step is None:
        assert time.monotonic() < deadline and job.snapshot().running, job.snapshot().error
        time.sleep(0.05)
    job.cancel()
    assert job.wait(JOB_TIMEOUT_S)
    assert job.snapshot().status == jobs.CANCELLED
    assert left_in(private_tmp) == [], "the upload's temp folder (or another temp file) was left behind"
    assert not [e for e in registry.list_models() if not e.shipped]
    models = registry.models_dir()
    assert not models.exists() or not list(models.rglob("*.keras")), "a half model was written"
