"""Augmentation of a training batch, all as tensors (a recipe names the one it uses).

An augmentation maps (images (N, S, S, 1) in [0, 1], tumor-box masks, per-batch seeds (2,))
to (images, masks); the masks are (N, S, S, 1) where the data has boxes (they move with the
image) and a (N, 1, 1, 1) stand-in where it has none. Every random draw is stateless, a
pure function of the batch's seeds, so a run is repeatable however tf.data schedules its
batches (a stateful random layer in the parallel map drew in whatever order batches ran).
"""

from __future__ import annotations

import math

ROTATION_TURNS = 0.04  # largest rotation, in turns (0.04 = 14.4 degrees)
ZOOM = 0.1  # largest change of scale, either way


def scanner_variation(images, masks, seeds):
    """The `default` recipe's augmentation: flips, small rotations and zoom (applied to the
    tumor-box masks alike), then blur, gamma, contrast and noise, so that the network does
    not learn one scanner's look."""
    import tensorflow as tf

    if masks.shape[1] == images.shape[1]:  # real masks: move them with the image
        both = geometric_augment(tf.concat([images, masks], axis=-1), seeds)
        images, masks = both[..., :1], tf.round(both[..., 1:])
    else:
        images = geometric_augment(images, seeds)
    per_image = [tf.shape(images)[0], 1, 1, 1]
    # blur: blend with a down-and-up sampled copy (lower scanner resolution, web JPEGs)
    side = tf.shape(images)[1]
    low = tf.cast(tf.cast(side, tf.float32) * tf.random.stateless_uniform([], seeds + 4, 0.35, 0.8), tf.int32)
    blurred = tf.image.resize(tf.image.resize(images, [low, low], method="area"), [side, side], method="bilinear")
    amount = tf.random.stateless_uniform(per_image, seeds + 5, 0.0, 1.0)
    images = images + (blurred - images) * amount
    gamma = tf.exp(tf.random.stateless_uniform(per_image, seeds, -0.3, 0.3))
    images = tf.pow(images + 1e-6, gamma)
    contrast = tf.random.stateless_uniform(per_image, seeds + 1, 0.85, 1.15)
    mean = tf.reduce_mean(images, axis=(1, 2, 3), keepdims=True)
    images = (images - mean) * contrast + mean
    noise_level = tf.random.stateless_uniform(per_image, seeds + 2, 0.0, 0.03)
    images += tf.random.stateless_normal(tf.shape(images), seeds + 3) * noise_level
    return tf.clip_by_value(images, 0.0, 1.0), masks


def geometric_augment(images, seeds):
    """(N, S, S, C) -> the same, each image flipped left-right at random, rotated and zoomed
    about its centre (bilinear, black outside)."""
    import tensorflow as tf

    n, side = tf.shape(images)[0], tf.shape(images)[1]
    flip = tf.random.stateless_uniform([n], seeds + 9) < 0.5
    images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
    angle = tf.random.stateless_uniform([n], seeds + 10, -ROTATION_TURNS, ROTATION_TURNS) * (2.0 * math.pi)
    scale = 1.0 + tf.random.stateless_uniform([n], seeds + 11, -ZOOM, ZOOM)
    centre = (tf.cast(side, tf.float32) - 1.0) / 2.0
    # output pixel (x, y) samples the input at scale * rotation * ((x, y) - centre) + centre
    a0, a1 = scale * tf.cos(angle), -scale * tf.sin(angle)
    b0, b1 = scale * tf.sin(angle), scale * tf.cos(angle)
    a2, b2 = centre - a0 * centre - a1 * centre, centre - b0 * centre - b1 * centre
    zero = tf.zeros_like(angle)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.stack([side, side]), fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT")
