"""What training minimises, and the matching figures on validation arrays.

A label is a class index, or `n_classes` for an image known to show a tumor of unknown type
(a `yes/` folder next to typed folders): its loss is on the summed probability of the tumor
classes, so it still teaches "tumor". The class loss is the negative log of the probability
given to the label; the box loss (on images with a tumor box) pushes the class evidence map
inside the box; the mask loss (on a segmenting network) is binary cross-entropy plus Dice
against a tumor outline, or cross-entropy outside a box where only a box is known. The
tensor versions run inside the training step, the NumPy ones on
validation predictions.
"""

from __future__ import annotations

import numpy as np


def target_probability(probabilities: np.ndarray, labels: np.ndarray, tumor_mask: np.ndarray) -> np.ndarray:
    """Probability given to each image's label; for `any tumor` labels, the summed tumor classes."""
    n_classes = probabilities.shape[1]
    own = probabilities[np.arange(len(labels)), np.minimum(labels, n_classes - 1)]
    return np.where(labels == n_classes, probabilities @ tumor_mask, own)


def is_correct(probabilities: np.ndarray, labels: np.ndarray, tumor_mask: np.ndarray) -> np.ndarray:
    """Whether the most likely class is the label (for `any tumor` labels: any tumor class)."""
    predicted = probabilities.argmax(-1)
    return np.where(labels == probabilities.shape[1], tumor_mask[predicted] == 1.0, predicted == labels)


def mean_loss(probabilities: np.ndarray, labels: np.ndarray, tumor_mask: np.ndarray) -> float:
    """Mean class loss over arrays (the validation loss)."""
    return float(np.mean(-np.log(np.clip(target_probability(probabilities, labels, tumor_mask), 1e-7, 1.0))))


def class_loss(probabilities, labels, tumor_mask):
    """Tensors: (N, C) probabilities, (N,) int32 labels, (C,) tumor mask -> (N,) class loss."""
    import tensorflow as tf

    n_classes = probabilities.shape[-1]
    own = tf.gather(probabilities, tf.minimum(labels, n_classes - 1), axis=1, batch_dims=1)
    any_tumor = tf.reduce_sum(probabilities * tumor_mask, axis=-1)
    target = tf.where(labels == n_classes, any_tumor, own)
    return -tf.math.log(tf.clip_by_value(target, 1e-7, 1.0))


def hits(probabilities, labels, tumor_mask):
    """Tensors: (N,) float 1.0 where the most likely class is right (as `is_correct`)."""
    import tensorflow as tf

    n_classes = probabilities.shape[-1]
    predicted = tf.argmax(probabilities, -1, output_type=tf.int32)
    hit = tf.where(labels == n_classes, tf.gather(tumor_mask, predicted) > 0.5, tf.equal(predicted, labels))
    return tf.cast(hit, tf.float32)


def box_loss(maps, logits_kernel, labels, masks, has_box):
    """Per image: -log(share of its true class's spatial evidence softmax that lies inside its box).

    maps (N, h, w, K) Grad-CAM layer output; logits_kernel (K, C); labels (N,) int32; masks
    (N, S, S, 1) float 1 inside the box; has_box (N,) float. With global average pooling
    before `logits`, the class evidence map sum_k A_k w_kc is exactly what Grad-CAM on the
    logit shows, so this teaches the heatmap to land on the tumor. A tumor of unknown type
    has no class map of its own and adds no loss. Returns (N,) float32, 0 where an image has
    no usable box.
    """
    import tensorflow as tf

    n_classes = logits_kernel.shape[-1]
    evidence = tf.einsum("nhwk,kc->nhwc", maps, logits_kernel)
    typed = labels < n_classes
    own = tf.gather(evidence, tf.minimum(labels, n_classes - 1), axis=3, batch_dims=1)  # (N, h, w)
    n, cells = tf.shape(own)[0], tf.shape(own)[1] * tf.shape(own)[2]
    log_share = tf.nn.log_softmax(tf.reshape(own, [n, cells]), axis=-1)
    inside = tf.image.resize(masks, tf.shape(own)[1:3], method="area")  # share of each cell in the box
    inside = tf.reshape(inside, [n, cells])
    usable = has_box * tf.cast(tf.reduce_max(inside, axis=-1) > 0, tf.float32) * tf.cast(typed, tf.float32)
    per_example = -tf.reduce_logsumexp(log_share + tf.math.log(inside + 1e-6), axis=-1)
    return per_example * usable


MASK_SMOOTH = 1.0  # Dice smoothing, in pixels


def mask_loss(predicted, masks, kind):
    """Per image mask loss -> (N,) float32.

    predicted (N, S, S, 1) sigmoid; masks (N, S, S, 1) float 0/1; kind (N,) int (`prepared`:
    0 none, 1 outline, 2 box). An outline (a healthy slice's is empty) gives the mean pixel
    binary cross-entropy plus, where it holds tumor, the soft Dice loss; a box gives the
    cross-entropy on the pixels outside it (no tumor there); nothing known gives 0.
    """
    import tensorflow as tf

    p = tf.clip_by_value(tf.cast(predicted, tf.float32), 1e-6, 1.0 - 1e-6)
    m = tf.cast(masks, tf.float32)
    axes = (1, 2, 3)
    pixel_bce = -(m * tf.math.log(p) + (1.0 - m) * tf.math.log(1.0 - p))
    bce = tf.reduce_mean(pixel_bce, axis=axes)
    outside = 1.0 - m
    bce_outside = tf.reduce_sum(pixel_bce * outside, axis=axes) / tf.maximum(tf.reduce_sum(outside, axis=axes), 1.0)
    area = tf.reduce_sum(m, axis=axes)
    dice = 1.0 - (2.0 * tf.reduce_sum(p * m, axis=axes) + MASK_SMOOTH) / (tf.reduce_sum(p, axis=axes) + area + MASK_SMOOTH)
    outline_loss = bce + tf.where(area > 0, dice, tf.zeros_like(dice))
    kind = tf.cast(kind, tf.int32)
    return tf.where(kind == 1, outline_loss, tf.where(kind == 2, bce_outside, tf.zeros_like(bce)))


def dice_scores(predicted: np.ndarray, masks: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(N, ...) probabilities and 0/1 masks -> (N,) Dice of the thresholded prediction (1.0
    where both are empty)."""
    predicted = np.asarray(predicted).reshape(len(predicted), -1) >= threshold
    masks = np.asarray(masks).reshape(len(masks), -1) > 0
    overlap = (predicted & masks).sum(axis=1)
    total = predicted.sum(axis=1) + masks.sum(axis=1)
    return np.where(total > 0, 2.0 * overlap / np.maximum(total, 1), 1.0)
