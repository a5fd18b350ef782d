"""Losses: tumors of unknown type teach "tumor"; the box loss keeps the class evidence inside the box."""

import numpy as np
import pytest

from mri_core.training.losses import box_loss, class_loss, hits, is_correct, mean_loss, target_probability

MASK = np.array([1, 1, 0, 1], np.float32)  # glioma, meningioma, notumor, pituitary
PROBABILITIES = np.array([[0.2, 0.3, 0.1, 0.4], [0.1, 0.1, 0.7, 0.1], [0.05, 0.05, 0.1, 0.8]], np.float32)


def test_tumor_of_unknown_type_teaches_tumor_through_the_summed_tumor_classes():
    unknown_type = np.array([4, 4, 4])
    np.testing.assert_allclose(target_probability(PROBABILITIES, unknown_type, MASK), [0.9, 0.3, 0.9], atol=1e-6)
    assert is_correct(PROBABILITIES, unknown_type, MASK).tolist() == [True, False, True]
    typed = np.array([3, 2, 0])
    np.testing.assert_allclose(target_probability(PROBABILITIES, typed, MASK), [0.4, 0.7, 0.05], atol=1e-6)
    assert mean_loss(PROBABILITIES, typed, MASK) == pytest.approx(np.mean(-np.log([0.4, 0.7, 0.05])), rel=1e-6)


def test_the_training_steps_tensors_agree_with_the_validation_figures():
    import tensorflow as tf

    labels = np.array([4, 2, 0], np.int32)
    losses = class_loss(tf.constant(PROBABILITIES), tf.constant(labels), tf.constant(MASK)).numpy()
    np.testing.assert_allclose(losses, -np.log(target_probability(PROBABILITIES, labels, MASK)), rtol=1e-5)
    correct = hits(tf.constant(PROBABILITIES), tf.constant(labels), tf.constant(MASK)).numpy()
    assert correct.tolist() == is_correct(PROBABILITIES, labels, MASK).astype(float).tolist()


def _box_loss_of(evidence_at: tuple[int, int], box: tuple[int, int, int, int], label: int = 0,
                 has_box: float = 1.0) -> float:
    """Box loss of one 8x8 map whose class-0 evidence peaks at one cell, box in 32 px input."""
    import tensorflow as tf

    maps = np.zeros((1, 8, 8, 2), np.float32)
    maps[0, evidence_at[1], evidence_at[0], 0] = 8.0  # feature 0 feeds class 0
    kernel = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    masks = np.zeros((1, 32, 32, 1), np.float32)
    x0, y0, x1, y1 = box
    masks[0, y0:y1 + 1, x0:x1 + 1] = 1.0
    return float(box_loss(tf.constant(maps), kernel, tf.constant([label]), tf.constant(masks),
                          tf.constant([has_box]))[0])


def test_box_loss_is_low_when_the_evidence_lies_in_the_tumor_box_and_high_outside():
    box = (8, 8, 15, 15)  # model pixels: cells (2..3, 2..3) of the 8x8 map
    inside, outside = _box_loss_of((2, 3), box), _box_loss_of((6, 6), box)
    assert inside < 1.0 < outside
    assert _box_loss_of((6, 6), box, has_box=0.0) == 0.0  # images without a box add nothing
    assert _box_loss_of((6, 6), box, label=2) == 0.0  # a tumor of unknown type has no class map


def test_mask_loss_rewards_the_outline_ignores_unknown_and_punishes_tumor_outside_a_box():
    from mri_core.training.losses import dice_scores, mask_loss

    truth = np.zeros((1, 16, 16, 1), np.float32)
    truth[0, 4:8, 4:8] = 1.0
    right, wrong = np.where(truth > 0, 0.95, 0.02), np.where(truth > 0, 0.02, 0.02)
    wrong[0, 10:14, 10:14] = 0.95
    outline, unknown, box = np.array([1]), np.array([0]), np.array([2])
    assert float(mask_loss(right, truth, outline)[0]) < 0.2 < float(mask_loss(wrong, truth, outline)[0])
    assert float(mask_loss(wrong, truth, unknown)[0]) == 0.0
    # a box: only what lies outside it is known to be healthy
    assert float(mask_loss(right, truth, box)[0]) < float(mask_loss(wrong, truth, box)[0])
    healthy = np.zeros_like(truth)  # a healthy slice's outline is empty: any tumor pixel costs
    assert float(mask_loss(np.full_like(truth, 0.02), healthy, outline)[0]) < float(mask_loss(right, healthy, outline)[0])
    assert dice_scores(right, truth)[0] == 1.0 and dice_scores(wrong, truth)[0] == 0.0
    half = np.zeros_like(truth)
    half[0, 4:8, 4:6] = 1.0  # 8 of the 16 tumor pixels, none outside: Dice = 2 * 8 / (8 + 16)
    assert dice_scores(half, truth)[0] == pytest.approx(2 * 8 / 24)
    assert dice_scores(np.zeros_like(truth), healthy)[0] == 1.0  # both empty
