"""Training past one machine: two local worker processes under MultiWorkerMirroredStrategy.

Each worker is its own process (as on two hosts) with the standard TF_CONFIG on loopback
ports and its own MRI_HOME; they train the `paper` model for two epochs (read from one iterator) on
a small real Kaggle subset, and the segmenting `default` model (mask loss, box loss, one image per
near-duplicate group) for one epoch on a small brisc2025 subset with its outlines. Both must end
with identical weights, and only the chief saves a package.

One pair of worker processes trains both architectures, one after the other, under the one
strategy each process creates (TensorFlow is imported and the cluster joined once, not once per
architecture); each architecture has its own data, MRI_HOME and weights, and its own test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from subsets import link_subset, link_with_masks

pytestmark = pytest.mark.timeout(600)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARCHS = ("paper", "default")
WORKER_TIMEOUT_S = 480
# One worker process: for each architecture in turn, the real training path under the one strategy, then
# the weights it ended with for the test, and a line `<arch> <its package folder | no package (worker)>`.
WORKER_SCRIPT = """
import os, sys, numpy as np
from mri_core.training.distribute import make_strategy
from mri_core.training.recipes import settings_for
from mri_core.training.train import save_if_chief, train
root, index, archs = sys.argv[1], sys.argv[2], sys.argv[3:]
strategy = make_strategy("multiworker")  # first, before any other TensorFlow op
for arch in archs:
    os.environ["MRI_HOME"] = f"{root}/{arch}/home{index}"
    # default: a global batch of 2 x 16 holds its whole training split (18 images), so the epoch is one
    # step and its large step is traced once, not again for a smaller last batch (seconds a trace);
    # paper: 2 x 8 over 28 images, so its epoch takes two steps, the last a partial batch, and its second
    # epoch starts on a batch of its own
    settings = settings_for(arch, epochs=2 if arch == "paper" else 1, image_size=48 if arch == "default" else 64,
                            batch_size=16 if arch == "default" else 8, strategy="multiworker", name="two-workers")
    result = train([f"{root}/{arch}/data"], settings, strategy=strategy)
    np.savez(f"{root}/{arch}/weights{index}.npz", *result.keras_model.get_weights())
    entry = save_if_chief(result, strategy, settings.name)
    print(arch, entry.path if entry else "no package (worker)", flush=True)
"""


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def two_worker_runs(kaggle_dir, brisc_dir, tmp_path_factory) -> tuple[Path, list[dict[str, str]]]:
    """Both workers run to the end: (the run's folder, per worker {arch: its last line's package or
    'no package (worker)'})."""
    root = tmp_path_factory.mktemp("two-workers")
    link_subset(kaggle_dir, root / "paper" / "data", per_class=20)
    link_with_masks(brisc_dir, root / "default" / "data", per_class=12, classes=("glioma", "notumor"))
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "",
               "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(PROJECT_ROOT),
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        log = open(root / f"worker{index}.log", "wb")
        processes.append((subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, str(root), str(index), *ARCHS],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=log), log))
    outputs = []
    try:
        for process, log in processes:
            stdout, _ = process.communicate(timeout=WORKER_TIMEOUT_S)
            log.close()
            outputs.append(dict(line.split(" ", 1) for line in stdout.decode().strip().splitlines()
                                if line.split(" ", 1)[0] in ARCHS))
    finally:
        for process, _ in processes:
            if process.poll() is None:
                process.kill()
    for index, (process, _) in enumerate(processes):
        assert process.returncode == 0, (root / f"worker{index}.log").read_text()[-3000:]
    return root, outputs


@pytest.mark.parametrize("arch", ARCHS)
def test_two_workers_end_with_identical_weights_and_only_the_chief_saves(arch, two_worker_runs):
    root, outputs = two_worker_runs
    run = root / arch
    chief_weights, worker_weights = (np.load(run / f"weights{i}.npz") for i in range(2))
    assert len(chief_weights.files) == len(worker_weights.files) > 0
    for key in chief_weights.files:
        np.testing.assert_array_equal(chief_weights[key], worker_weights[key])

    chief_package = Path(outputs[0][arch])
    assert chief_package.is_dir() and chief_package.is_relative_to(run / "home0")
    assert sorted(p.name for p in (run / "home0" / "models").iterdir()) == ["two-workers"]
    assert outputs[1][arch] == "no package (worker)"
    assert not (run / "home1" / "models").exists() or not any((run / "home1" / "models").iterdir())
    saved = json.loads((chief_package / "model.json").read_text())
    assert saved["settings"]["strategy"] == "multiworker" and len(saved["history"]) == (2 if arch == "paper" else 1)
    if arch == "default":  # the new architecture: a mask output, trained on the outlines
        assert saved["segmentation"]["output"] == "mask" and "mask_loss" in saved["history"][0]
