"""Checkpoints: the last completed epoch survives a crash and is only resumed with the same settings."""

import json

import numpy as np
import pytest

from mri_core.training import checkpoint
from mri_core.io.errors import SettingsInvalid

FINGERPRINT = {"arch": "paper", "seed": 0, "class_names": ["notumor", "tumor"]}


def _state(epoch: int) -> checkpoint.CheckpointState:
    weights = [np.full((2, 2), float(epoch)), np.arange(3.0)]
    return checkpoint.CheckpointState(epoch, weights, [np.array(epoch)], weights, 0.5 / epoch,
                                      [{"epoch": e, "loss": 1.0 / e} for e in range(1, epoch + 1)])


def test_round_trip_keeps_only_the_newest_epoch(tmp_path):
    checkpoint.save(tmp_path, _state(1), FINGERPRINT)
    checkpoint.save(tmp_path, _state(2), FINGERPRINT)
    loaded = checkpoint.load(tmp_path, FINGERPRINT)
    assert loaded.epoch == 2 and len(loaded.history) == 2 and loaded.best_loss == 0.25
    np.testing.assert_array_equal(loaded.weights[0], np.full((2, 2), 2.0))
    assert sorted(p.name for p in tmp_path.glob("epoch-*")) == ["epoch-2"]


def test_no_checkpoint_means_a_fresh_start(tmp_path):
    assert checkpoint.load(tmp_path, FINGERPRINT) is None
    assert checkpoint.load(None, FINGERPRINT) is None


def test_a_crash_while_writing_the_next_epoch_leaves_the_previous_one_usable(tmp_path):
    checkpoint.save(tmp_path, _state(1), FINGERPRINT)
    # what a kill during the next save leaves: a half-written staging folder, state.json untouched
    half = tmp_path / ".partial-abc"
    half.mkdir()
    (half / "weights.npz").write_bytes(b"PK\x03\x04 truncated")
    assert checkpoint.load(tmp_path, FINGERPRINT).epoch == 1


def test_other_settings_are_refused_naming_what_differs(tmp_path):
    checkpoint.save(tmp_path, _state(1), FINGERPRINT)
    with pytest.raises(SettingsInvalid, match="seed"):
        checkpoint.load(tmp_path, {**FINGERPRINT, "seed": 1})
    assert json.loads((tmp_path / checkpoint.STATE_FILE).read_text())["epoch"] == 1


def test_clear_removes_the_checkpoint(tmp_path):
    checkpoint.save(tmp_path / "ck", _state(1), FINGERPRINT)
    checkpoint.clear(tmp_path / "ck")
    assert not (tmp_path / "ck").exists()
