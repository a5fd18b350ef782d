"""Training batches: augmented in a parallel map yet repeatable, reshuffled every epoch, epoch
after epoch from one iterator."""

import numpy as np
import pytest

from mri_core.training.augment import scanner_variation
from mri_core.training.batches import epoch_size, training_batches
from mri_core.training.distribute import make_strategy
from mri_core.training.prepared import load_training_data
from mri_core.training.recipes import settings_for


@pytest.fixture(scope="module")
def data(small_kaggle):
    return load_training_data([small_kaggle], settings_for("paper", image_size=48))


def _epochs(data, seed, epochs=2, augment=scanner_variation, group_sampling=False):
    """The batches of the first `epochs` epochs, as the loop takes them: one iterator, its next
    ceil(epoch size / 8) batches an epoch."""
    batches = iter(training_batches(data, seed, 8, augment, False, make_strategy("auto"),
                                    group_sampling=group_sampling))
    steps = int(np.ceil(epoch_size(data, group_sampling) / 8))
    return [[[np.asarray(part) for part in next(batches)] for _ in range(steps)] for _ in range(epochs)]


def test_the_same_seed_gives_the_same_batches_and_every_epoch_new_ones(data):
    first, second = _epochs(data, seed=3), _epochs(data, seed=3)
    for epoch_a, epoch_b in zip(first, second):
        for batch_a, batch_b in zip(epoch_a, epoch_b):
            for part_a, part_b in zip(batch_a, batch_b):
                np.testing.assert_array_equal(part_a, part_b)
    assert not np.array_equal(first[0][0][0], first[1][0][0])  # epoch 2 is shuffled and augmented anew
    assert not np.array_equal(first[0][0][0], _epochs(data, seed=4, epochs=1)[0][0][0])


def test_a_batch_holds_every_training_image_once_per_epoch_with_stand_in_masks(data):
    train_x, train_y = data.arrays["train"]
    assert len(train_y) % 8  # a partial last batch: the next epoch must still start on a batch of its own
    for epoch in _epochs(data, seed=0, epochs=2, augment=None):  # no augmentation: the images as prepared
        images, labels, weights, masks, has_box, kind = (np.concatenate(parts) for parts in zip(*epoch))
        assert images.dtype == np.float32 and sorted(labels.tolist()) == sorted(train_y.tolist())
        np.testing.assert_allclose(np.sort(images.sum(axis=(1, 2, 3))), np.sort(train_x.sum(axis=(1, 2, 3))),
                                   rtol=1e-6)
        assert masks.shape == (len(train_y), 1, 1, 1) and not has_box.any() and np.allclose(weights, 1.0)
        assert not kind.any()


def test_group_sampling_draws_one_image_per_near_duplicate_group_each_epoch_afresh(data):
    train_x, _ = data.arrays["train"]
    groups = data.train_groups
    assert len(np.unique(groups)) < len(groups)  # the Kaggle set holds near-duplicates
    assert epoch_size(data, True) == len(np.unique(groups)) and epoch_size(data, False) == len(groups)
    sums = train_x.sum(axis=(1, 2, 3))
    drawn = []
    for epoch in _epochs(data, seed=5, epochs=3, augment=None, group_sampling=True):
        images = np.concatenate([batch[0] for batch in epoch])
        index = [int(np.argmin(np.abs(sums - s))) for s in images.sum(axis=(1, 2, 3))]
        assert len(index) == len(np.unique(groups))
        assert sorted(groups[index].tolist()) == sorted(np.unique(groups).tolist())  # each group once
        drawn.append(index)
    assert drawn[0] != drawn[1] or drawn[1] != drawn[2]  # members and order are drawn anew
