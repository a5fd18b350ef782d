"""Augmentation: a pure function of the batch seeds, masks moved with their images, values kept in [0, 1]."""

import numpy as np

from mri_core.training.augment import geometric_augment, scanner_variation


def _real_batch(typed_dir, n=4, size=64):
    from mri_core.io.inputs import prepare_files

    return prepare_files(sorted((typed_dir / "glioma").iterdir())[:n], size)


def test_geometric_augmentation_is_a_function_of_the_batch_seeds():
    import tensorflow as tf

    images = np.zeros((6, 40, 40, 1), np.float32)
    images[:, 5:12, 25:33] = 1.0  # a bright patch right of centre, top
    seeds = tf.constant([11, 12], tf.int64)
    first = geometric_augment(images, seeds).numpy()
    np.testing.assert_array_equal(first, geometric_augment(images, seeds).numpy())
    assert not np.array_equal(first, geometric_augment(images, seeds + 1).numpy())
    patch_columns = [np.argwhere(image[..., 0] > 0.5)[:, 1].mean() for image in first]
    assert min(patch_columns) < 20 < max(patch_columns)  # some images flipped left-right, some not
    # rotation and zoom are small: the patch stays in the top half and keeps most of its area
    assert all(np.argwhere(image[..., 0] > 0.5)[:, 0].mean() < 20 for image in first)
    assert np.all(np.abs(first.sum(axis=(1, 2, 3)) - images[0].sum()) < 0.4 * images[0].sum())


def test_scanner_variation_repeats_with_its_seeds_and_moves_the_boxes_with_the_images(typed_dir):
    import tensorflow as tf

    images = tf.constant(_real_batch(typed_dir))
    masks = np.zeros(images.shape, np.float32)
    masks[:, 20:30, 36:50] = 1.0  # a box right of the midline
    seeds = tf.constant([5, 6], tf.int64)
    varied, moved = (x.numpy() for x in scanner_variation(images, tf.constant(masks), seeds))
    again, _ = scanner_variation(images, tf.constant(masks), seeds)
    np.testing.assert_array_equal(varied, again.numpy())
    assert varied.min() >= 0.0 and varied.max() <= 1.0 and not np.allclose(varied, images.numpy())
    assert set(np.unique(moved)) <= {0.0, 1.0}
    # the box goes where the image went: a flipped image has its box left of the midline
    geometric = geometric_augment(tf.concat([images, tf.constant(masks)], -1), seeds).numpy()[..., 1:]
    np.testing.assert_array_equal(moved, np.round(geometric))
    assert {bool(np.argwhere(m[..., 0] > 0)[:, 1].mean() < 32) for m in moved} == {True, False}


def test_without_boxes_the_stand_in_masks_pass_through(typed_dir):
    import tensorflow as tf

    images = tf.constant(_real_batch(typed_dir))
    stand_in = tf.zeros((4, 1, 1, 1))
    varied, masks = scanner_variation(images, stand_in, tf.constant([1, 2], tf.int64))
    assert varied.shape == images.shape and masks.shape == (4, 1, 1, 1)
