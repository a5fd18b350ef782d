"""The training split as batches for the loop: reshuffled every epoch, augmented per batch.

Each batch is (images float32 (N, S, S, 1), labels, loss weights, tumor-box masks, has_box).
The recipe's augmentation runs in a parallel tf.data map and draws only from per-batch seeds
(`augment`), so a run is repeatable. Without boxes a (N, 1, 1, 1) stand-in keeps one pipeline
and one step for both cases.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from mri_core.training.prepared import TrainingData


def training_batches(data: TrainingData, seed: int, global_batch: int, augment: Callable | None,
                     boxes: bool, strategy):
    """A distributed dataset of one epoch's batches (iterate it again for the next epoch)."""
    import tensorflow as tf

    train_x, train_y = data.arrays["train"]
    n = len(train_y)
    weights = data.train_weights if data.train_weights is not None else np.ones(n, np.float32)
    masks = data.train_masks if boxes else np.zeros((n, 1, 1, 1), np.uint8)
    has_box = data.train_has_box if boxes else np.zeros(n, np.float32)
    vary = tf.autograph.experimental.do_not_convert(augment) if augment is not None else None
    batch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    batches = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y, weights, masks, has_box))
        .shuffle(n, seed=seed, reshuffle_each_iteration=True)
        .batch(global_batch)
    )

    def augment_batch(batch, seeds):
        images, labels, weights, masks, has_box = batch
        images, masks = tf.cast(images, tf.float32), tf.cast(masks, tf.float32)
        if vary is not None:
            images, masks = vary(images, masks, seeds)
        return images, labels, weights, masks, has_box

    dataset = (
        tf.data.Dataset.zip(batches, batch_seeds)
        .map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(2)
    )
    return strategy.experimental_distribute_dataset(dataset)
