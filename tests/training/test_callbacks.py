"""Callbacks: history records, the best epoch's weights, cancelling, and checkpoints that resume a run."""

import json

import numpy as np
import pytest

from mri_core.io.errors import SettingsInvalid, TrainingCancelled
from mri_core.training.callbacks import Cancel, Checkpoint, History, KeepBest, Progress, fingerprint
from mri_core.training.events import EpochEnd, StepEnd
from mri_core.training.loop import LoopState
from mri_core.training.recipes import TrainSettings, build
from mri_core.training.train import train, train_and_save

FAST = dict(arch="paper", epochs=3, image_size=64, batch_size=16)


def _state(epochs=3):
    import keras

    from mri_core.training.distribute import make_strategy

    model = build("paper", 48, 2)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    return LoopState(model, optimizer, make_strategy("auto"), epochs)


def _epoch(epoch, val_loss, box_loss=None):
    return EpochEnd(epoch, 3, 0.5, 0.75, val_loss, 0.5, 10.0 * epoch, 10.0 * (3 - epoch), box_loss)


def test_history_keeps_one_model_json_record_per_epoch():
    state, history = _state(), History()
    history.on_epoch_end(state, _epoch(1, 0.7))
    history.on_epoch_end(state, _epoch(2, 0.6, box_loss=2.5))
    assert state.history == [
        {"epoch": 1, "loss": 0.5, "accuracy": 0.75, "val_loss": 0.7, "val_accuracy": 0.5, "elapsed_s": 10.0},
        {"epoch": 2, "loss": 0.5, "accuracy": 0.75, "val_loss": 0.6, "val_accuracy": 0.5, "elapsed_s": 20.0,
         "box_loss": 2.5}]


def test_the_run_ends_with_the_weights_of_its_best_validation_epoch():
    state, best = _state(), KeepBest()
    weights = [np.full_like(w, 1.0) for w in state.model.get_weights()]
    state.model.set_weights(weights)
    best.on_epoch_end(state, _epoch(1, 0.4))
    state.model.set_weights([w * 2 for w in weights])
    best.on_epoch_end(state, _epoch(2, 0.9))  # worse: not kept
    best.on_end(state)
    assert state.best_loss == 0.4
    assert all(np.array_equal(a, b) for a, b in zip(state.model.get_weights(), weights))


def test_cancel_raises_before_the_next_step_and_progress_passes_events_on():
    state, seen = _state(), []
    Cancel(lambda: False).on_step_start(state)
    with pytest.raises(TrainingCancelled, match="no model was saved"):
        Cancel(lambda: True).on_step_start(state)
    progress = Progress(seen.append)
    progress.on_step_end(state, StepEnd(1, 1, 4))
    progress.on_epoch_end(state, _epoch(1, 0.5))
    assert [type(e) for e in seen] == [StepEnd, EpochEnd]


def test_a_checkpoint_restores_weights_optimizer_history_and_best_epoch(tmp_path):
    saved = _state()
    saved.epoch, saved.elapsed_s, saved.history = 1, 10.0, [{"epoch": 1, "elapsed_s": 10.0}]
    saved.best_loss, saved.best_weights = 0.4, [w + 1 for w in saved.model.get_weights()]
    for variable in saved.optimizer.variables:
        variable.assign(np.full(variable.shape, 3).astype(str(variable.dtype)))  # as if after 3 steps
    Checkpoint(tmp_path, {"arch": "paper"}).on_epoch_end(saved, _epoch(1, 0.4))

    fresh = _state()
    Checkpoint(tmp_path, {"arch": "paper"}).on_start(fresh)
    assert (fresh.epoch, fresh.elapsed_s, fresh.history, fresh.best_loss) == (1, 10.0, saved.history, 0.4)
    for a, b in zip(fresh.model.get_weights(), saved.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(fresh.best_weights, saved.best_weights):
        np.testing.assert_array_equal(a, b)
    assert all((np.asarray(v) == 3).all() for v in fresh.optimizer.variables)
    with pytest.raises(SettingsInvalid, match="other settings"):
        Checkpoint(tmp_path, {"arch": "default"}).on_start(_state())
    Checkpoint(tmp_path / "none", {}).on_start(untouched := _state())
    assert untouched.epoch == 0 and untouched.history == []


def test_the_fingerprint_lets_a_run_grow_its_epochs_but_not_change_its_recipe(small_kaggle):
    from mri_core.training.prepared import load_training_data

    settings = TrainSettings(**FAST)
    data = load_training_data([small_kaggle], settings)
    same = fingerprint(data, settings)
    assert fingerprint(data, TrainSettings(**{**FAST, "epochs": 9, "name": "other"})) == same
    assert fingerprint(data, TrainSettings(**{**FAST, "learning_rate": 0.01})) != same


def test_a_stopped_run_resumes_from_its_last_completed_epoch(small_kaggle, tmp_path):
    settings = TrainSettings(**FAST)
    first_events = []

    def stop_in_epoch_two():
        return any(isinstance(e, StepEnd) and e.epoch == 2 for e in first_events)

    with pytest.raises(TrainingCancelled):
        train([small_kaggle], settings, on_event=first_events.append, should_stop=stop_in_epoch_two,
              checkpoint_dir=tmp_path / "ck")
    first_epoch = [e for e in first_events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in first_epoch] == [1]

    resumed_events = []
    entry = train_and_save([small_kaggle], settings, on_event=resumed_events.append, checkpoint_dir=tmp_path / "ck")
    assert [e.epoch for e in resumed_events if isinstance(e, EpochEnd)] == [2, 3]  # epoch 1 not redone
    history = json.loads((entry.path / "model.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[0]["loss"] == pytest.approx(first_epoch[0].loss)
    assert not (tmp_path / "ck").exists()  # removed once the package is saved
