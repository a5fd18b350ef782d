"""What is attached to the training loop from outside: history, best weights, checkpoints,
progress and cancelling (see `loop.Callback`). `train.fit` always attaches `History` and
`KeepBest`, then these in the order given: a checkpoint saves what they recorded."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from mri_core.io.errors import TrainingCancelled
from mri_core.training import checkpoint
from mri_core.training.events import EpochEnd, Event, StepEnd
from mri_core.training.loop import Callback, LoopState
from mri_core.training.prepared import TrainingData
from mri_core.training.recipes import TrainSettings


class History(Callback):
    """Appends one model.json history record per epoch to `state.history`."""

    def on_epoch_end(self, state: LoopState, event: EpochEnd) -> None:
        record = {"epoch": event.epoch, "loss": event.loss, "accuracy": event.accuracy, "val_loss": event.val_loss,
                  "val_accuracy": event.val_accuracy, "elapsed_s": round(event.elapsed_s, 2)}
        if event.box_loss is not None:
            record["box_loss"] = event.box_loss
        if event.mask_loss is not None:
            record["mask_loss"] = event.mask_loss
        state.history.append(record)


class KeepBest(Callback):
    """Keeps the weights of the epoch with the lowest validation loss, and ends with them."""

    def on_epoch_end(self, state: LoopState, event: EpochEnd) -> None:
        if event.val_loss < state.best_loss:
            state.best_loss, state.best_weights = event.val_loss, [w.copy() for w in state.model.get_weights()]

    def on_end(self, state: LoopState) -> None:
        state.model.set_weights(state.best_weights)


def fingerprint(data: TrainingData, settings: TrainSettings) -> dict:
    """What must match for a checkpoint to be resumed (the number of epochs may grow)."""
    kept = {k: v for k, v in asdict(settings).items() if k not in ("epochs", "name", "strategy")}
    return {**kept, "class_names": data.class_names, "split_sizes": data.summary["split_sizes"]}


class Checkpoint(Callback):
    """Saves the state after every completed epoch into `folder`; resumes from one found there."""

    def __init__(self, folder: str | Path, fingerprint: dict):
        self.folder, self.fingerprint = folder, fingerprint

    def on_start(self, state: LoopState) -> None:
        resumed = checkpoint.load(self.folder, self.fingerprint)
        if resumed is None:
            return
        state.model.set_weights(resumed.weights)
        with state.strategy.scope():
            state.optimizer.build(state.model.trainable_variables)
        for variable, value in zip(state.optimizer.variables, resumed.optimizer):
            variable.assign(value)
        state.epoch, state.history = resumed.epoch, resumed.history
        state.best_loss, state.best_weights = resumed.best_loss, resumed.best_weights
        state.elapsed_s = resumed.history[-1]["elapsed_s"] if resumed.history else 0.0

    def on_epoch_end(self, state: LoopState, event: EpochEnd) -> None:
        weights = state.model.get_weights()
        checkpoint.save(self.folder, checkpoint.CheckpointState(
            state.epoch, weights, [np.asarray(v) for v in state.optimizer.variables],
            state.best_weights if state.best_weights is not None else weights,
            float(state.best_loss), state.history), self.fingerprint)


class Progress(Callback):
    """Passes every StepEnd and EpochEnd to `on_event`."""

    def __init__(self, on_event: Callable[[Event], None]):
        self.on_event = on_event

    def on_step_end(self, state: LoopState, event: StepEnd) -> None:
        self.on_event(event)

    def on_epoch_end(self, state: LoopState, event: EpochEnd) -> None:
        self.on_event(event)


class Cancel(Callback):
    """Stops the run before the next batch once `should_stop()` is true; nothing is saved."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop

    def on_step_start(self, state: LoopState) -> None:
        if self.should_stop():
            raise TrainingCancelled("Training was cancelled; no model was saved.")
