"""Prepared training data: every split read as a reading reads it, labels, weights and tumor boxes."""

import numpy as np
import pytest
from subsets import link_subset

from mri_core.io.inputs import prepare_files
from mri_core.training.prepared import load_training_data, model_classes, stratum_weights
from mri_core.training.recipes import settings_for


def test_every_split_holds_the_model_inputs_a_reading_would_make(small_kaggle):
    data = load_training_data([small_kaggle], settings_for("paper", image_size=64, split="naive"))
    assert data.class_names == ["notumor", "tumor"] and data.summary["split"] == "naive"
    assert sum(data.summary["split_sizes"].values()) == 60 and data.summary["test_leakage"] >= 0
    for part, (images, labels) in data.arrays.items():
        assert images.dtype == np.float32 and images.shape[1:] == (64, 64, 1) and len(images) == len(labels)
        assert 0.0 <= images.min() and images.max() <= 1.0
        assert len(data.paths[part]) == len(data.true_names[part]) == len(labels)
    # one input path: exactly what io.inputs.prepare_files gives a reading
    np.testing.assert_array_equal(data.arrays["test"][0], prepare_files(data.paths["test"], 64))
    assert np.allclose(data.train_weights, 1.0)  # the paper's recipe weighs every image the same
    assert data.train_masks is None and data.summary["boxed_train_images"] == 0


def test_typed_folders_with_a_yes_folder_make_a_typed_model_with_unknown_type_labels(typed_dir, kaggle_dir, tmp_path):
    link_subset(typed_dir, tmp_path / "typed", per_class=12)
    link_subset(kaggle_dir, tmp_path / "kaggle", per_class=12, classes={"yes"})
    data = load_training_data([tmp_path / "typed", tmp_path / "kaggle"], settings_for("paper", image_size=48))
    assert data.class_names == ["glioma", "meningioma", "notumor", "pituitary"]
    assert data.summary["counts_per_class"]["tumor"] == 12
    labels = np.concatenate([data.arrays[part][1] for part in data.arrays])
    names = sum((data.true_names[part] for part in data.arrays), [])
    assert all((label == data.any_tumor_label) == (name == "tumor") for label, name in zip(labels, names))
    assert data.tumor_mask.tolist() == [1.0, 1.0, 0.0, 1.0]
    assert set(data.val_sources) <= {"typed", "kaggle"}


def test_tumor_boxes_become_masks_on_the_model_input(figshare_dir, tmp_path):
    boxed = link_subset(figshare_dir, tmp_path / "figshare-boxes", per_class=6)
    (boxed / "boxes.csv").symlink_to(figshare_dir / "boxes.csv")
    data = load_training_data([boxed], settings_for("default", image_size=64))
    assert data.train_masks.shape == (len(data.arrays["train"][1]), 64, 64, 1)
    boxed_images = data.train_has_box > 0
    assert data.summary["boxed_train_images"] == int(boxed_images.sum()) > 0
    area = data.train_masks[boxed_images].mean(axis=(1, 2, 3))
    assert (area > 0).all() and (area < 0.5).all()  # a box, not the whole slice
    assert not data.train_masks[~boxed_images].any()


def test_model_classes_fold_the_unknown_type_into_the_types():
    assert model_classes(["glioma", "meningioma", "notumor", "pituitary", "tumor"]) == [
        "glioma", "meningioma", "notumor", "pituitary"]
    assert model_classes(["notumor", "tumor"]) == ["notumor", "tumor"]  # a yes/no model keeps "tumor"


def test_source_balance_raises_rare_strata_and_keeps_the_mean_weight():
    strata = [("big", "notumor")] * 90 + [("rare", "tumor")] * 10
    assert np.allclose(stratum_weights(strata, 0.0), 1.0)
    weights = stratum_weights(strata, 0.5)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[-1] / weights[0] == pytest.approx(3.0)  # sqrt(90 / 10)


def test_outlines_follow_the_crop_and_healthy_slices_get_an_empty_outline(brisc_dir, tmp_path):
    from subsets import link_with_masks

    from mri_core.io import preprocess
    from mri_core.io.slices import read_file
    from mri_core.training.prepared import REGION_NONE, REGION_OUTLINE, tumor_regions
    from mri_core.training.data import discover

    root = link_with_masks(brisc_dir, tmp_path / "brisc2025", per_class=5, classes=("meningioma", "notumor"))
    records = discover([root]).records
    masks, has_region, kind = tumor_regions(records, 64, boxes=False, outlines=True)
    tumors = np.array([r.class_name == "meningioma" for r in records])
    assert (kind == REGION_OUTLINE).all() and (has_region[tumors] == 1).all() and not has_region[~tumors].any()
    assert not masks[~tumors].any()
    first = int(np.flatnonzero(tumors)[0])  # the model-input outline is the original's, cropped as the image was
    pixels = read_file(records[first].path)[0].pixels
    outline = read_file(records[first].mask_path)[0].pixels > 0.5
    expected = preprocess.mask_to_model(outline, preprocess.prepare(pixels, 64).crop_box, 64)
    np.testing.assert_array_equal(masks[first, ..., 0], expected)
    _, _, without = tumor_regions(records, 64, boxes=False, outlines=False)
    assert without is None or (without == REGION_NONE).all()


def test_an_outline_is_lent_to_a_resized_copy_of_its_slice_in_another_set(brisc_dir, tmp_path):
    from PIL import Image
    from subsets import link_with_masks

    from mri_core.training.prepared import REGION_OUTLINE

    root = link_with_masks(brisc_dir, tmp_path / "brisc2025", per_class=6, classes=("glioma", "notumor"))
    copies = tmp_path / "other" / "glioma"
    copies.mkdir(parents=True)
    originals = sorted((root / "glioma").iterdir())
    for original in originals:  # the same slices, stored smaller in another set (no outlines there)
        Image.open(original).convert("L").resize((200, 200)).save(copies / f"copy_{original.stem}.png")
    (tmp_path / "other" / "notumor").mkdir()
    for healthy in sorted((root / "notumor").iterdir()):
        (tmp_path / "other" / "notumor" / healthy.name).symlink_to(healthy.resolve())
    settings = settings_for("default", image_size=64, split="naive")
    data = load_training_data([root, tmp_path / "other"], settings)
    train_paths = data.paths["train"]
    lent = [i for i, path in enumerate(train_paths) if path.name.startswith("copy_")
            and data.train_mask_kind[i] == REGION_OUTLINE and data.train_has_box[i] > 0]
    assert data.summary["outlines_lent_to_near_duplicates"] == len(lent) > 0
    for i in lent:  # the copy's outline is its original's, where the original is in train too
        original = [j for j, path in enumerate(train_paths) if path.stem == train_paths[i].stem[len("copy_"):]]
        if original:
            overlap = (data.train_masks[i] & data.train_masks[original[0]]).sum() / data.train_masks[i].sum()
            assert overlap > 0.9
