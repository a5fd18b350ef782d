"""The training split as batches for the loop: reshuffled every epoch, augmented per batch.

Each batch is (images float32 (N, S, S, 1), labels, loss weights, tumor-region masks, has_box,
mask kinds). The recipe's augmentation runs in a parallel tf.data map and draws only from
per-batch seeds (`augment`), so a run is repeatable. Without tumor regions a (N, 1, 1, 1)
stand-in keeps one pipeline and one step for every case. With group sampling an epoch holds
one image per near-duplicate group, drawn afresh every epoch (the same slice stored in three
data sets counts once, and epochs are shorter).

The epochs follow one another in one dataset that never ends, read by one iterator for the whole
run: under multi-worker, deleting an iterator often waits for its tf.data autotuning threads to
wake on their own (up to a minute, the CPU idle and the other workers waiting), which an iterator
per epoch paid at the end of every epoch and one iterator pays at most once, at the end of the run.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from mri_core.training.prepared import TrainingData


def epoch_size(data: TrainingData, group_sampling: bool) -> int:
    """Images per epoch: one per near-duplicate group with `group_sampling`, else every one."""
    n = len(data.arrays["train"][1])
    if group_sampling and data.train_groups is not None:
        return int(len(np.unique(data.train_groups)))
    return n


def _group_draw(groups: np.ndarray, seed: int):
    """A dataset of training indices: every group once per iteration, in a fresh order, each
    represented by a member drawn afresh (stateless: repeatable for a seed)."""
    import tensorflow as tf

    order = np.argsort(groups, kind="stable")
    _, starts, sizes = np.unique(groups[order], return_index=True, return_counts=True)
    order, starts, sizes = (tf.constant(a, tf.int64) for a in (order, starts, sizes))
    draws = tf.data.Dataset.random(seed=seed + 7, rerandomize_each_iteration=True)
    return (tf.data.Dataset.zip(tf.data.Dataset.range(len(sizes)), draws)
            .shuffle(len(sizes), seed=seed, reshuffle_each_iteration=True)
            .map(lambda g, r: tf.gather(order, tf.gather(starts, g) + tf.math.floormod(r, tf.gather(sizes, g)))))


def training_batches(data: TrainingData, seed: int, global_batch: int, augment: Callable | None,
                     boxes: bool, strategy, masks: bool = False, group_sampling: bool = False):
    """A distributed dataset of batches, epoch after epoch without end: each epoch ceil(`epoch_size`
    / `global_batch`) batches, the last one partial, reshuffled and augmented afresh (as iterating
    a one-epoch dataset again would). `boxes` / `masks`: the batches carry the tumor regions
    (boxes, or outlines and boxes)."""
    import tensorflow as tf

    train_x, train_y = data.arrays["train"]
    n = len(train_y)
    weights = data.train_weights if data.train_weights is not None else np.ones(n, np.float32)
    regions = boxes or masks
    region = data.train_masks if regions else np.zeros((n, 1, 1, 1), np.uint8)
    has_box = data.train_has_box if regions else np.zeros(n, np.float32)
    kind = data.train_mask_kind if masks else np.zeros(n, np.int8)
    if kind is None:
        kind = np.zeros(n, np.int8)
    vary = tf.autograph.experimental.do_not_convert(augment) if augment is not None else None
    batch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    columns = (train_x, train_y, weights, region, has_box, kind)
    if group_sampling and data.train_groups is not None:
        tensors = tuple(tf.constant(c) for c in columns)
        batches = (_group_draw(np.asarray(data.train_groups), seed).batch(global_batch)
                   .map(lambda index: tuple(tf.gather(t, index) for t in tensors)))
    else:
        batches = (tf.data.Dataset.from_tensor_slices(columns)
                   .shuffle(n, seed=seed, reshuffle_each_iteration=True)
                   .batch(global_batch))

    def augment_batch(batch, seeds):
        images, labels, weights, region, has_box, kind = batch
        images, region = tf.cast(images, tf.float32), tf.cast(region, tf.float32)
        if vary is not None:
            images, region = vary(images, region, seeds)
        return images, labels, weights, region, has_box, kind

    dataset = (
        tf.data.Dataset.zip(batches, batch_seeds)
        .repeat()  # each repetition iterates both anew: a fresh order, fresh members and fresh seeds
        .map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(2)
    )
    return strategy.experimental_distribute_dataset(dataset)
