"""Training: events, history, calibration, cancel, and the saved package."""

import json

import numpy as np
import pytest

from mri_core.package import registry
from mri_core.io.errors import SettingsInvalid, TrainingCancelled
from mri_core.inference.model import load_model
from mri_core.training.train import DataReady, EpochEnd, StepEnd, TrainSettings, fit_temperature, train, train_and_save

FAST = dict(arch="paper", epochs=2, image_size=64, batch_size=16)


def test_training_emits_events_and_saves_a_loadable_package(small_kaggle):
    events = []
    entry = train_and_save([small_kaggle], TrainSettings(**FAST, name="clinic"), on_event=events.append)
    assert isinstance(events[0], DataReady) and events[0].class_names == ("notumor", "tumor")
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in epochs] == [1, 2]
    assert all(0 <= e.accuracy <= 1 and 0 <= e.val_accuracy <= 1 and e.loss > 0 for e in epochs)
    assert epochs[-1].eta_s == 0 and epochs[0].eta_s > 0
    assert any(isinstance(e, StepEnd) for e in events)

    info = json.loads((entry.path / "model.json").read_text())
    assert entry.ref == "clinic@1"
    assert [h["epoch"] for h in info["history"]] == [1, 2]
    assert info["class_names"] == ["notumor", "tumor"] and info["no_tumor_classes"] == ["notumor"]
    assert info["data"]["counts_per_class"] == {"notumor": 30, "tumor": 30}
    assert sum(info["data"]["split_sizes"].values()) == 60
    assert info["test_metrics"]["n"] == info["data"]["split_sizes"]["test"]
    assert info["command"].startswith("python -m mri_core train")
    assert info["reading"] == {"mirror_average": False, "heatmap_sigma": 0.0}  # the paper is read as published
    model = load_model(entry)
    assert model.ref == "clinic@1" and model.image_size == 64
    assert registry.active().path != entry.path  # not activated unless asked


def test_cancel_mid_training_saves_nothing(small_kaggle):
    steps = []

    def stop_after_two_steps():
        return len(steps) >= 2

    with pytest.raises(TrainingCancelled):
        train_and_save([small_kaggle], TrainSettings(**FAST, name="cancelled"),
                       on_event=lambda e: isinstance(e, StepEnd) and steps.append(e),
                       should_stop=stop_after_two_steps)
    assert not [e for e in registry.list_models() if e.name == "cancelled"]


def test_same_seed_gives_the_same_history(small_kaggle):
    settings = TrainSettings(**{**FAST, "epochs": 1})
    first, second = train([small_kaggle], settings), train([small_kaggle], settings)
    assert first.info["history"][0]["loss"] == pytest.approx(second.info["history"][0]["loss"], rel=1e-4)


def test_an_augmented_run_repeats_exactly(small_kaggle):
    # the default recipe augments in a parallel tf.data map: a stateful random layer there drew
    # in whatever order the batches ran, and two runs of the same command parted after epoch 1
    from mri_core.training.train import fit, load_training_data, settings_for

    settings = settings_for("default", epochs=2, image_size=48, batch_size=8)
    data = load_training_data([small_kaggle], settings)
    histories = [fit(data, settings)[1] for _ in range(2)]
    strip = [[{k: v for k, v in record.items() if k != "elapsed_s"} for record in h] for h in histories]
    assert strip[0] == strip[1]


def test_geometric_augmentation_is_a_function_of_the_batch_seeds():
    import tensorflow as tf

    from mri_core.training.train import geometric_augment

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


def test_head_inversion_turns_dark_tissue_bright_and_keeps_the_background_black(typed_dir):
    import tensorflow as tf

    from mri_core.io import slices as io

    from mri_core.io import preprocess
    from mri_core.training.train import HEAD_LEVEL, invert_head

    path = sorted((typed_dir / "glioma").iterdir())[0]  # a T1 slice: dark CSF, bright fat
    image = preprocess.prepare(io.decode_image(path.read_bytes(), path.name).pixels, 128).image
    images = np.stack([image, image])
    out = invert_head(tf.constant(images), tf.constant([True, False])).numpy()
    np.testing.assert_array_equal(out[1], image)  # not chosen: untouched
    head = image[..., 0] > HEAD_LEVEL
    np.testing.assert_allclose(out[0][..., 0][head], 1.0 - image[..., 0][head], atol=1e-6)
    assert out[0][:6, :6].max() == 0.0  # the corner outside the head stays black
    # grey order reversed inside the head: the brightest tenth now darker than the darkest tenth was
    bright = image[..., 0] >= np.percentile(image[..., 0][head], 90)
    dark = head & (image[..., 0] <= np.percentile(image[..., 0][head], 10))
    assert out[0][..., 0][bright].mean() < out[0][..., 0][dark].mean()


def test_a_synthetic_lesion_is_one_focal_change_inside_the_head(typed_dir):
    import tensorflow as tf

    from mri_core.io import slices as io

    from mri_core.io import preprocess
    from mri_core.training.train import HEAD_LEVEL, synthetic_lesions

    path = sorted((typed_dir / "notumor").iterdir())[0]
    image = preprocess.prepare(io.decode_image(path.read_bytes(), path.name).pixels, 128).image
    images = tf.constant(np.stack([image] * 4))
    chosen = tf.constant([True, True, True, False])
    seeds = tf.constant([3, 4], tf.int64)
    out, cores = (x.numpy() for x in synthetic_lesions(images, chosen, seeds))
    np.testing.assert_array_equal(out, synthetic_lesions(images, chosen, seeds)[0].numpy())  # seeds decide all
    np.testing.assert_array_equal(out[3], image)  # not chosen: untouched, and no lesion box
    assert cores.shape == out.shape and not cores[3].any()
    head = image[..., 0] > HEAD_LEVEL
    for lesioned, core in zip(out[:3], cores[:3, ..., 0] > 0):
        changed = np.abs(lesioned - image)[..., 0] > 0.1
        assert not (changed & ~head).any()  # nothing drawn on the background
        assert 0.005 < changed.sum() / head.sum() < 0.35  # a focal lesion, not a new contrast
        rows, cols = np.nonzero(changed)
        assert np.ptp(rows) < 0.6 * 128 and np.ptp(cols) < 0.6 * 128  # in one place
        # its box (the core) lies on the drawn lesion, inside the head
        assert core.any() and not (core & ~head).any()
        assert (core & changed).sum() > 0.5 * core.sum()
    assert len({tuple(np.argwhere(np.abs(x - image)[..., 0] > 0.1).mean(0).round()) for x in out[:3]}) == 3


def test_inversion_and_lesions_are_recorded_in_the_command(small_kaggle):
    settings = TrainSettings(**{**FAST, "arch": "default", "epochs": 1, "image_size": 48, "invert": 0.5,
                                "lesions": 0.5})
    result = train([small_kaggle], settings)
    assert "--invert 0.5" in result.info["command"] and "--lesions 0.5" in result.info["command"]
    assert result.info["settings"]["lesions"] == 0.5


def test_naive_and_grouped_splits_are_recorded(small_kaggle):
    result = train([small_kaggle], TrainSettings(**{**FAST, "epochs": 1, "split": "naive"}))
    assert result.info["data"]["split"] == "naive"
    assert result.info["data"]["test_leakage"] >= 0


def test_temperature_softens_overconfident_predictions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    correct = rng.random(400) < 0.7  # right 70% of the time but always 99% sure
    predicted = np.where(correct, labels, 1 - labels)
    probabilities = np.full((400, 2), 0.01, np.float32)
    probabilities[np.arange(400), predicted] = 0.99
    assert fit_temperature(probabilities, labels) > 2.0


@pytest.mark.parametrize("change, fragment", [
    (dict(epochs=0), "Epochs"), (dict(arch="vgg"), "architecture"), (dict(batch_size=0), "Batch size"),
    (dict(learning_rate=5.0), "Learning rate"), (dict(image_size=4), "Image size"),
    (dict(strategy="tpu"), "strategy"), (dict(name="../x"), "not allowed"),
    (dict(box_weight=11.0), "Box weight"), (dict(box_mix=1.5), "Box mix"), (dict(invert=-0.1), "Invert"),
    (dict(lesions=2.0), "Lesion share"),
])
def test_bad_settings_are_refused(change, fragment):
    with pytest.raises(SettingsInvalid, match=fragment):
        TrainSettings(**change).check()


def test_tumor_of_unknown_type_teaches_tumor_through_the_summed_tumor_classes():
    from mri_core.training.train import is_correct, model_classes, target_probability

    classes = model_classes(["glioma", "meningioma", "notumor", "pituitary", "tumor"])
    assert classes == ["glioma", "meningioma", "notumor", "pituitary"]
    assert model_classes(["notumor", "tumor"]) == ["notumor", "tumor"]  # a yes/no model keeps "tumor"
    mask = np.array([1, 1, 0, 1], np.float32)
    probabilities = np.array([[0.2, 0.3, 0.1, 0.4], [0.1, 0.1, 0.7, 0.1]], np.float32)
    unknown_type = np.array([4, 4])
    np.testing.assert_allclose(target_probability(probabilities, unknown_type, mask), [0.9, 0.3], atol=1e-6)
    assert is_correct(probabilities, unknown_type, mask).tolist() == [True, False]
    np.testing.assert_allclose(target_probability(probabilities, np.array([3, 2]), mask), [0.4, 0.7], atol=1e-6)


def test_typed_folders_with_a_yes_folder_train_a_typed_model(typed_dir, kaggle_dir, tmp_path):
    from subsets import link_subset

    link_subset(typed_dir, tmp_path / "typed", per_class=12)
    link_subset(kaggle_dir, tmp_path / "kaggle", per_class=12, classes={"yes"})
    result = train([tmp_path / "typed", tmp_path / "kaggle"], TrainSettings(**{**FAST, "epochs": 1}))
    assert result.info["class_names"] == ["glioma", "meningioma", "notumor", "pituitary"]
    assert result.info["data"]["counts_per_class"]["tumor"] == 12
    assert "unknown type" in result.info["outputs"]
    assert result.info["test_metrics"]["n"] == result.info["data"]["split_sizes"]["test"]


def test_threshold_is_chosen_for_high_sensitivity_on_validation():
    from mri_core.training.train import choose_threshold

    rng = np.random.default_rng(0)
    tumor_scores = rng.uniform(0.05, 1.0, 200)
    scores = np.concatenate([tumor_scores, rng.uniform(0.0, 0.3, 100)])
    is_tumor = np.arange(300) < 200
    threshold = choose_threshold(scores, is_tumor, target_sensitivity=0.98)
    assert np.mean(tumor_scores >= threshold) >= 0.98
    assert np.mean(tumor_scores >= threshold + 0.01) < 0.98 or threshold == 0.5  # the highest such threshold


def test_unset_settings_take_the_architecture_defaults():
    from mri_core.training.train import ARCH_DEFAULTS, settings_for

    assert settings_for("default").batch_size == ARCH_DEFAULTS["default"]["batch_size"]
    assert settings_for("paper", epochs=None, batch_size=8).batch_size == 8
    assert settings_for("paper").epochs == ARCH_DEFAULTS["paper"]["epochs"]
    with pytest.raises(SettingsInvalid, match="Unknown architecture"):
        settings_for("vgg")


def test_source_balance_raises_rare_strata_and_keeps_the_mean_weight():
    from mri_core.training.train import stratum_weights

    strata = [("big", "notumor")] * 90 + [("rare", "tumor")] * 10
    assert np.allclose(stratum_weights(strata, 0.0), 1.0)
    weights = stratum_weights(strata, 0.5)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[-1] / weights[0] == pytest.approx(3.0)  # sqrt(90 / 10)
    with pytest.raises(SettingsInvalid, match="Source balance"):
        TrainSettings(source_balance=2.0).check()


def test_a_stopped_run_resumes_from_its_last_completed_epoch(small_kaggle, tmp_path):
    settings = TrainSettings(**{**FAST, "epochs": 3})
    first_events = []

    def stop_in_epoch_two():
        return any(isinstance(e, StepEnd) and e.epoch == 2 for e in first_events)

    with pytest.raises(TrainingCancelled):
        train([small_kaggle], settings, on_event=first_events.append, should_stop=stop_in_epoch_two,
              checkpoint_dir=tmp_path / "ck")
    first_epoch = [e for e in first_events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in first_epoch] == [1]

    resumed_events = []
    entry = train_and_save([small_kaggle], settings, on_event=resumed_events.append, checkpoint_dir=tmp_path / "ck")
    assert [e.epoch for e in resumed_events if isinstance(e, EpochEnd)] == [2, 3]  # epoch 1 not redone
    history = json.loads((entry.path / "model.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[0]["loss"] == pytest.approx(first_epoch[0].loss)
    assert not (tmp_path / "ck").exists()  # removed once the package is saved


# --- tumor boxes and the operating point ---------------------------------------------------

def _box_loss_of(evidence_at: tuple[int, int], box: tuple[int, int, int, int], label: int = 0,
                 has_box: float = 1.0, untyped_class: int | None = None) -> float:
    """Box loss of one 8x8 map whose class-0 evidence peaks at one cell, box in 32 px input."""
    import tensorflow as tf

    from mri_core.training.train import box_loss

    maps = np.zeros((1, 8, 8, 2), np.float32)
    maps[0, evidence_at[1], evidence_at[0], 0] = 8.0  # feature 0 feeds class 0
    kernel = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    masks = np.zeros((1, 32, 32, 1), np.float32)
    x0, y0, x1, y1 = box
    masks[0, y0:y1 + 1, x0:x1 + 1] = 1.0
    shown = None if untyped_class is None else tf.constant([untyped_class])
    return float(box_loss(tf.constant(maps), kernel, tf.constant([label]), tf.constant(masks),
                          tf.constant([has_box]), untyped_class=shown)[0])


def test_box_loss_is_low_when_the_evidence_lies_in_the_tumor_box_and_high_outside():
    box = (8, 8, 15, 15)  # model pixels: cells (2..3, 2..3) of the 8x8 map
    inside, outside = _box_loss_of((2, 3), box), _box_loss_of((6, 6), box)
    assert inside < 1.0 < outside
    assert _box_loss_of((6, 6), box, has_box=0.0) == 0.0  # images without a box add nothing
    assert _box_loss_of((6, 6), box, label=2) == 0.0  # a tumor of unknown type has no class map
    # unless the caller names the tumor class shown for it (a boxed synthetic lesion)
    assert _box_loss_of((2, 3), box, label=2, untyped_class=0) == inside
    assert _box_loss_of((6, 6), box, label=2, untyped_class=0) == outside


def _mix_batch(share: float, seed: int = 1):
    """Three 32x32 images: healthy (0.2), a tumor boxed at the left (0.9 inside), a tumor boxed
    across the midline; labels: 1 = healthy, 0 and 2 tumor classes."""
    import tensorflow as tf
    from mri_core.training.train import box_mix

    images = np.full((3, 32, 32, 1), 0.2, np.float32)
    images[1, :, 16:] = 0.5  # the other side of the boxed slice
    masks = np.zeros((3, 32, 32, 1), np.float32)
    masks[1, 10:20, 2:10] = 1.0
    images[1][masks[1] > 0] = 0.9
    masks[2, 10:20, 12:20] = 1.0
    labels, has_box = np.array([1, 0, 2], np.int32), np.array([0.0, 1.0, 1.0], np.float32)
    out = box_mix(tf.constant(images), tf.constant(labels), tf.ones(3), tf.constant(masks), tf.constant(has_box),
                  tf.constant([seed, 2], tf.int64), share, healthy_label=1)
    return images, masks, [np.asarray(o) for o in out]


def test_box_mix_transplants_tumors_into_healthy_slices_and_covers_them_in_tumor_slices():
    images, masks, (mixed, labels, _, mixed_masks, has_box) = _mix_batch(share=1.0)
    inside, outside = (slice(12, 18), slice(4, 8)), (slice(0, 5), slice(20, 32))
    # the boxed tumor is covered by the mirror image of its other side: healthy, no box
    assert labels[1] == 1 and has_box[1] == 0.0
    np.testing.assert_allclose(mixed[1][inside], 0.5)
    np.testing.assert_allclose(mixed[1][outside], images[1][outside])
    # a box across the midline would be covered by itself: left alone
    assert labels[2] == 2 and has_box[2] == 1.0
    np.testing.assert_allclose(mixed[2], images[2])
    # the healthy slice takes a boxed tumor whenever its drawn donor has a box: class and box move with it
    transplants = 0
    for seed in range(8):
        _, _, (mixed, labels, _, mixed_masks, has_box) = _mix_batch(share=1.0, seed=seed)
        if labels[0] == 1:
            assert has_box[0] == 0.0 and np.allclose(mixed[0], images[0])
            continue
        transplants += 1
        donor = 1 if labels[0] == 0 else 2
        assert has_box[0] == 1.0 and np.array_equal(mixed_masks[0], masks[donor])
        core = (slice(12, 18), slice(4, 8)) if donor == 1 else (slice(12, 18), slice(14, 18))
        np.testing.assert_allclose(mixed[0][core], images[donor][core], atol=1e-5)
    assert transplants > 0


def test_box_mix_off_changes_nothing():
    images, masks, (mixed, labels, _, mixed_masks, has_box) = _mix_batch(share=0.0)
    np.testing.assert_allclose(mixed, images)
    assert labels.tolist() == [1, 0, 2] and has_box.tolist() == [0.0, 1.0, 1.0]


def test_threshold_keeps_the_target_sensitivity_within_every_source():
    from mri_core.training.train import choose_threshold, choose_threshold_per_source

    rng = np.random.default_rng(0)
    common = rng.uniform(0.6, 1.0, 200)  # tumors of the common style score high
    rare = rng.uniform(0.1, 1.0, 20)  # tumors in a rare style score lower
    healthy = rng.uniform(0.0, 0.05, 100)
    scores = np.concatenate([common, rare, healthy])
    is_tumor = np.r_[np.ones(220, bool), np.zeros(100, bool)]
    sources = ["common"] * 200 + ["rare"] * 20 + ["common"] * 100
    pooled = choose_threshold(scores, is_tumor)
    per_source = choose_threshold_per_source(scores, is_tumor, sources)
    assert per_source < pooled
    assert (rare >= per_source).all() and (common >= per_source).all()
    few = ["common"] * 215 + ["few"] * 5 + ["common"] * 100  # 5 tumors cannot set it
    assert choose_threshold_per_source(scores, is_tumor, few) >= per_source


def test_boxed_images_train_the_heatmap_and_the_run_records_it(tmp_path, figshare_dir, kaggle_dir):
    from subsets import link_subset

    boxed = link_subset(figshare_dir, tmp_path / "figshare-boxes", per_class=8)
    (boxed / "boxes.csv").symlink_to(figshare_dir / "boxes.csv")
    healthy = link_subset(kaggle_dir, tmp_path / "kaggle", per_class=12, classes=["no"])
    settings = TrainSettings(arch="default", epochs=2, image_size=64, batch_size=8, box_weight=0.5, box_mix=0.5,
                             lesions=0.5)  # lesioned healthy slices get their lesion as box
    result = train([boxed, healthy], settings)
    assert result.info["data"]["boxed_train_images"] > 10
    assert all(h["box_loss"] > 0 for h in result.info["history"])
    assert "--box-weight 0.5" in result.info["command"] and "--box-mix 0.5" in result.info["command"]
    # a default-architecture package is read with the mirror average and a smoothed heatmap
    assert result.info["reading"] == {"mirror_average": True, "heatmap_sigma": 2.0}


def test_a_trained_package_carries_its_out_of_distribution_statistics(tmp_path, typed_dir):
    from subsets import link_subset

    from mri_core.inference import ood

    data = link_subset(typed_dir, tmp_path / "typed", per_class=40)
    entry = train_and_save([data], TrainSettings(**{**FAST, "epochs": 1}, name="with-ood"))
    assert (entry.path / ood.OOD_FILE).is_file()
    section = entry.info[ood.INFO_KEY]
    assert section["n_threshold"] == entry.info["data"]["split_sizes"]["val"]
    assert section["n_fit"] == entry.info["data"]["split_sizes"]["train"]
    assert load_model(entry).ood.stats is not None
