"""Resumable training: the state after the last completed epoch, written atomically.

A checkpoint folder holds `epoch-<k>/` subfolders (weights, optimizer variables, the best
validation weights so far) and `state.json`, which names the complete subfolder and carries
the history. `state.json` is replaced atomically only after its subfolder is fully written,
so a crash at any point leaves the previous epoch's checkpoint usable. A checkpoint records
a fingerprint of the settings and data; resuming with different ones is refused.
Never imports streamlit or tensorflow.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mri_core.io.atomic import write_text_atomic
from mri_core.io.errors import SettingsInvalid

STATE_FILE = "state.json"


@dataclass
class CheckpointState:
    """What `fit` needs to continue after `epoch`."""

    epoch: int
    weights: list[np.ndarray]
    optimizer: list[np.ndarray]
    best_weights: list[np.ndarray]
    best_loss: float
    history: list[dict]


def _save_arrays(path: Path, arrays: list[np.ndarray]) -> None:
    np.savez(path, **{f"a{i:05d}": np.asarray(a) for i, a in enumerate(arrays)})


def _load_arrays(path: Path) -> list[np.ndarray]:
    with np.load(path) as stored:
        return [stored[key] for key in sorted(stored.files)]


def save(folder: str | os.PathLike, state: CheckpointState, fingerprint: dict) -> None:
    """Write `state` as the newest checkpoint in `folder`, then drop older ones."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{state.epoch}"
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".partial-"))
    _save_arrays(staging / "weights.npz", state.weights)
    _save_arrays(staging / "optimizer.npz", state.optimizer)
    _save_arrays(staging / "best.npz", state.best_weights)
    shutil.rmtree(folder / name, ignore_errors=True)
    os.rename(staging, folder / name)
    record = {"epoch": state.epoch, "folder": name, "best_loss": state.best_loss,
              "history": state.history, "fingerprint": fingerprint}
    write_text_atomic(folder / STATE_FILE, json.dumps(record))  # the commit point
    for old in folder.glob("epoch-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def load(folder: str | os.PathLike | None, fingerprint: dict) -> CheckpointState | None:
    """The checkpoint in `folder`, None when there is none; SettingsInvalid if it is for other settings."""
    if folder is None or not (Path(folder) / STATE_FILE).is_file():
        return None
    folder = Path(folder)
    record = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    if record["fingerprint"] != fingerprint:
        changed = sorted(k for k in set(fingerprint) | set(record["fingerprint"])
                         if fingerprint.get(k) != record["fingerprint"].get(k))
        raise SettingsInvalid(
            f"The checkpoint in {folder} was made with other settings or data ({', '.join(changed)} differ); "
            "resume with the same settings and data, or delete the checkpoint to start afresh."
        )
    saved = folder / record["folder"]
    return CheckpointState(record["epoch"], _load_arrays(saved / "weights.npz"),
                           _load_arrays(saved / "optimizer.npz"), _load_arrays(saved / "best.npz"),
                           float(record["best_loss"]), list(record["history"]))


def clear(folder: str | os.PathLike | None) -> None:
    """Remove a checkpoint folder (after its model was saved)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
