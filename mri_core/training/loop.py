"""The training loop: our own step through `strategy.run`, epochs of it, and events out.

Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy (DESIGN.md), so the step is
our own and used under every strategy. The loop only trains and tells: a `StepEnd` after
every batch, an `EpochEnd` (validation figures included) after every epoch, each handed to
the callbacks with the loop's `LoopState`. History, the best weights, checkpoints, progress
and cancelling are callbacks attached from outside (`callbacks`), as handlers on an engine.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from mri_core.training import losses
from mri_core.training.events import EpochEnd, StepEnd


@dataclass
class LoopState:
    """What the run has done; callbacks read and update it (a resumed run restores it in `on_start`)."""

    model: Any
    optimizer: Any
    strategy: Any
    epochs: int
    epoch: int = 0  # epochs completed
    elapsed_s: float = 0.0  # training time so far, including before a resume
    history: list[dict] = field(default_factory=list)  # one record per completed epoch
    best_loss: float = math.inf
    best_weights: list | None = None


class Callback:
    """Hooks the loop calls, callbacks in the order given; override the ones you need."""

    def on_start(self, state: LoopState) -> None: ...
    def on_step_start(self, state: LoopState) -> None: ...
    def on_step_end(self, state: LoopState, event: StepEnd) -> None: ...
    def on_epoch_end(self, state: LoopState, event: EpochEnd) -> None: ...
    def on_end(self, state: LoopState) -> None: ...


def make_step(strategy, model, optimizer, cam_layer: str, tumor_mask, box_weight: float, global_batch: int,
              mask_weight: float = 0.0):
    """The distributed step: a batch (images, labels, weights, masks, has_box, mask_kind) -> sums
    over every replica of (class loss, correct predictions, box loss, boxed images, mask loss,
    outlined images). The loss is the weighted class loss plus `box_weight` x the box loss on
    the Grad-CAM layer's maps plus, for a segmenting model (a second output), `mask_weight` x
    the mask loss."""
    import keras
    import tensorflow as tf

    tumor_mask = tf.constant(tumor_mask)
    segmenting = len(model.outputs) > 1
    # images -> (probabilities, Grad-CAM layer maps (N, h, w, K)[, mask]); shares the model's weights
    step_model = keras.Model(model.inputs, [model.outputs[0], model.get_layer(cam_layer).output,
                                            *model.outputs[1:2]])
    logits_kernel = model.get_layer("logits").kernel  # (K, C)

    def replica_step(images, labels, weights, masks, has_box, mask_kind):
        with tf.GradientTape() as tape:
            probabilities, maps, *predicted_mask = step_model(images, training=True)
            per_example = losses.class_loss(probabilities, labels, tumor_mask)
            loss = tf.nn.compute_average_loss(per_example * weights, global_batch_size=global_batch)
            boxed = tf.zeros_like(per_example)
            if box_weight:
                boxed = losses.box_loss(maps, logits_kernel, labels, masks, has_box)
                loss += box_weight * tf.nn.compute_average_loss(boxed, global_batch_size=global_batch)
            masked = tf.zeros_like(per_example)
            if segmenting and mask_weight:
                masked = losses.mask_loss(predicted_mask[0], masks, mask_kind)
                loss += mask_weight * tf.nn.compute_average_loss(masked, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.reduce_sum(losses.hits(probabilities, labels, tumor_mask))
        outlined = tf.reduce_sum(tf.cast(mask_kind == 1, tf.float32))
        return (tf.reduce_sum(per_example), correct, tf.reduce_sum(boxed), tf.reduce_sum(has_box),
                tf.reduce_sum(masked), outlined)

    @tf.function
    def train_step(images, labels, weights, masks, has_box, mask_kind):
        sums = strategy.run(replica_step, args=(images, labels, weights, masks, has_box, mask_kind))
        return tuple(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) for value in sums)

    return train_step


def run(state: LoopState, train_step, batches, steps: int, n_train: int,
        validate: Callable[[], tuple[float, float]], callbacks: Sequence[Callback], boxes: bool = False,
        masks: bool = False) -> LoopState:
    """Train epochs state.epoch + 1 .. state.epochs over `batches` (a distributed dataset without
    end, `training_batches`: each epoch its next `steps` batches, `n_train` images, from one iterator
    for the whole run); `validate()` -> (validation loss, accuracy) after each epoch. With `boxes`
    (`masks`), each EpochEnd carries the mean box (mask) loss over the epoch's boxed (outlined) images."""
    for callback in callbacks:
        callback.on_start(state)
    started = time.monotonic() - state.elapsed_s
    batch_iterator = iter(batches)
    for epoch in range(state.epoch + 1, state.epochs + 1):
        totals = np.zeros(6)  # class loss, correct, box loss, boxed, mask loss, outlined
        for step in range(1, steps + 1):
            for callback in callbacks:
                callback.on_step_start(state)
            totals += [float(value) for value in train_step(*next(batch_iterator))]
            done = StepEnd(epoch, step, steps)
            for callback in callbacks:
                callback.on_step_end(state, done)
        val_loss, val_accuracy = validate()
        state.epoch, state.elapsed_s = epoch, time.monotonic() - started
        event = EpochEnd(epoch, state.epochs, totals[0] / n_train, totals[1] / n_train, val_loss, val_accuracy,
                         state.elapsed_s, state.elapsed_s / epoch * (state.epochs - epoch),
                         totals[2] / max(totals[3], 1.0) if boxes else None,
                         totals[4] / max(totals[5], 1.0) if masks else None)
        for callback in callbacks:
            callback.on_epoch_end(state, event)
    for callback in callbacks:
        callback.on_end(state)
    return state
