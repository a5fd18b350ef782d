"""What training minimises, and the matching figures on validation arrays.

A label is a class index, or `n_classes` for an image known to show a tumor of unknown type
(a `yes/` folder next to typed folders): its loss is on the summed probability of the tumor
classes, so it still teaches "tumor". The class loss is the negative log of the probability
given to the label; the box loss (on images with a tumor box) pushes the class evidence map
inside the box. The tensor versions run inside the training step, the NumPy ones on
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
