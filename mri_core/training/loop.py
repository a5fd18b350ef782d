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


def make_step(strategy, model, optimizer, cam_layer: str, tumor_mask, box_weight: float, global_batch: int):
    """The distributed step: a batch (images, labels, weights, masks, has_box) -> sums over
    every replica of (class loss, correct predictions, box loss, boxed images). The loss is
    the weighted class loss plus `box_weight` x the box loss on the Grad-CAM layer's maps."""
    import keras
    import tensorflow as tf

    tumor_mask = tf.constant(tumor_mask)
    # images -> (probabilities, Grad-CAM layer maps (N, h, w, K)); shares the model's weights
    step_model = keras.Model(model.inputs, [model.outputs[0], model.get_layer(cam_layer).output])
    logits_kernel = model.get_layer("logits").kernel  # (K, C)

    def replica_step(images, labels, weights, masks, has_box):
        with tf.GradientTape() as tape:
            probabilities, maps = step_model(images, training=True)
            per_example = losses.class_loss(probabilities, labels, tumor_mask)
            loss = tf.nn.compute_average_loss(per_example * weights, global_batch_size=global_batch)
            boxed = tf.zeros_like(per_example)
            if box_weight:
                boxed = losses.box_loss(maps, logits_kernel, labels, masks, has_box)
                loss += box_weight * tf.nn.compute_average_loss(boxed, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.reduce_sum(losses.hits(probabilities, labels, tumor_mask))
        return tf.reduce_sum(per_example), correct, tf.reduce_sum(boxed), tf.reduce_sum(has_box)

    @tf.function
    def train_step(images, labels, weights, masks, has_box):
        sums = strategy.run(replica_step, args=(images, labels, weights, masks, has_box))
        return tuple(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) for value in sums)

    return train_step


def run(state: LoopState, train_step, batches, steps: int, n_train: int,
        validate: Callable[[], tuple[float, float]], callbacks: Sequence[Callback], boxes: bool = False) -> LoopState:
    """Train epochs state.epoch + 1 .. state.epochs over `batches` (a distributed dataset of
    `steps` batches); `validate()` -> (validation loss, accuracy) after each epoch. With
    `boxes`, each EpochEnd carries the mean box loss over the epoch's boxed images."""
    for callback in callbacks:
        callback.on_start(state)
    started = time.monotonic() - state.elapsed_s
    for epoch in range(state.epoch + 1, state.epochs + 1):
        loss_total, correct_total, box_total, box_count = 0.0, 0.0, 0.0, 0.0
        for step, batch in enumerate(batches, start=1):
            for callback in callbacks:
                callback.on_step_start(state)
            loss_sum, correct, box_sum, boxed = train_step(*batch)
            loss_total += float(loss_sum)
            correct_total += float(correct)
            box_total += float(box_sum)
            box_count += float(boxed)
            done = StepEnd(epoch, step, steps)
            for callback in callbacks:
                callback.on_step_end(state, done)
        val_loss, val_accuracy = validate()
        state.epoch, state.elapsed_s = epoch, time.monotonic() - started
        event = EpochEnd(epoch, state.epochs, loss_total / n_train, correct_total / n_train, val_loss, val_accuracy,
                         state.elapsed_s, state.elapsed_s / epoch * (state.epochs - epoch),
                         box_total / max(box_count, 1.0) if boxes else None)
        for callback in callbacks:
            callback.on_epoch_end(state, event)
    for callback in callbacks:
        callback.on_end(state)
    return state
