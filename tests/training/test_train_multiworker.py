"""Training past one machine: two local worker processes under MultiWorkerMirroredStrategy.

Each worker is its own process (as on two hosts) with the standard TF_CONFIG on loopback
ports and its own MRI_HOME; they train for one epoch the `paper` model on a small real Kaggle
subset, and the segmenting `default` model (mask loss, box loss, one image per near-duplicate
group) on a small brisc2025 subset with its outlines. Both must end with identical weights, and
only the chief saves a package.
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
WORKER_TIMEOUT_S = 420
# One worker process: the real training path, then the weights it ended with for the test.
WORKER_SCRIPT = """
import sys, numpy as np
from mri_core.training.distribute import make_strategy
from mri_core.training.recipes import settings_for
from mri_core.training.train import save_if_chief, train
data_dir, weights_out, arch = sys.argv[1], sys.argv[2], sys.argv[3]
settings = settings_for(arch, epochs=1, image_size=48 if arch == "default" else 64, batch_size=8,
                        strategy="multiworker", name="two-workers")
strategy = make_strategy(settings.strategy)  # first, before any other TensorFlow op
result = train([data_dir], settings, strategy=strategy)
np.savez(weights_out, *result.keras_model.get_weights())
entry = save_if_chief(result, strategy, settings.name)
print(entry.path if entry else "no package (worker)")
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


@pytest.mark.parametrize("arch", ["paper", "default"])
def test_two_workers_end_with_identical_weights_and_only_the_chief_saves(arch, kaggle_dir, brisc_dir, tmp_path):
    if arch == "paper":
        data = link_subset(kaggle_dir, tmp_path / "data", per_class=20)
    else:
        data = link_with_masks(brisc_dir, tmp_path / "data", per_class=12, classes=("glioma", "notumor"))
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        home = tmp_path / f"home{index}"
        env = {**os.environ, "MRI_HOME": str(home), "CUDA_VISIBLE_DEVICES": "",
               "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(PROJECT_ROOT),
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        log = open(tmp_path / f"worker{index}.log", "wb")
        processes.append((subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, str(data), str(tmp_path / f"weights{index}.npz"), arch],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=log), log))
    outputs = []
    try:
        for process, log in processes:
            stdout, _ = process.communicate(timeout=WORKER_TIMEOUT_S)
            log.close()
            outputs.append(stdout.decode().strip().splitlines())
    finally:
        for process, _ in processes:
            if process.poll() is None:
                process.kill()
    for index, (process, _) in enumerate(processes):
        assert process.returncode == 0, (tmp_path / f"worker{index}.log").read_text()[-3000:]

    chief_weights, worker_weights = (np.load(tmp_path / f"weights{i}.npz") for i in range(2))
    assert len(chief_weights.files) == len(worker_weights.files) > 0
    for key in chief_weights.files:
        np.testing.assert_array_equal(chief_weights[key], worker_weights[key])

    chief_package = Path(outputs[0][-1])
    assert chief_package.is_dir() and chief_package.is_relative_to(tmp_path / "home0")
    assert sorted(p.name for p in (tmp_path / "home0" / "models").iterdir()) == ["two-workers"]
    assert outputs[1][-1] == "no package (worker)"
    assert not (tmp_path / "home1" / "models").exists() or not any((tmp_path / "home1" / "models").iterdir())
    saved = json.loads((chief_package / "model.json").read_text())
    assert saved["settings"]["strategy"] == "multiworker" and len(saved["history"]) == 1
    if arch == "default":  # the new architecture: a mask output, trained on the outlines
        assert saved["segmentation"]["output"] == "mask" and "mask_loss" in saved["history"][0]
