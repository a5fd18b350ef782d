"""Training, assembled: events, a saved package that loads, cancel, repeatable runs, boxes, and a
package written whole (out-of-distribution statistics included) before its one rename."""

import hashlib
import json
import os
from pathlib import Path

import pytest
from subsets import link_subset

from mri_core.inference.model import load_model
from mri_core.inference.ood import INFO_KEY, OOD_FILE
from mri_core.io.errors import TrainingCancelled
from mri_core.package import registry
from mri_core.training.batches import epoch_size
from mri_core.training.events import DataReady, EpochEnd, PartFailed, StepEnd
from mri_core.training.recipes import RECIPES, TrainSettings, settings_for
from mri_core.training.train import fit, train, train_and_save

FAST = dict(arch="paper", epochs=2, image_size=64, batch_size=16)


def test_training_emits_events_and_saves_a_loadable_package(small_kaggle):
    events = []
    entry = train_and_save([small_kaggle], TrainSettings(**FAST, name="clinic"), on_event=events.append,
                           activate=True)
    assert isinstance(events[0], DataReady) and events[0].class_names == ("notumor", "tumor")
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in epochs] == [1, 2]
    assert all(0 <= e.accuracy <= 1 and 0 <= e.val_accuracy <= 1 and e.loss > 0 for e in epochs)
    assert epochs[-1].eta_s == 0 and epochs[0].eta_s > 0
    assert any(isinstance(e, StepEnd) for e in events)

    info = json.loads((entry.path / "model.json").read_text())
    assert entry.ref == "clinic@1"
    assert [h["epoch"] for h in info["history"]] == [1, 2]
    assert [h["loss"] for h in info["history"]] == [e.loss for e in epochs]
    assert info["class_names"] == ["notumor", "tumor"] and info["no_tumor_classes"] == ["notumor"]
    assert info["data"]["counts_per_class"] == {"notumor": 30, "tumor": 30}
    assert sum(info["data"]["split_sizes"].values()) == 60
    assert info["test_metrics"]["n"] == info["data"]["split_sizes"]["test"]
    assert info["command"].startswith("python -m mri_core train")
    assert info["reading"] == RECIPES["paper"].reading and info["threshold"] == 0.5  # read as published
    model = load_model(entry)
    assert model.ref == "clinic@1" and model.image_size == 64

    # 60 images: too few to fit the ood check (reported, not only logged) and to activate the model
    failed = [e for e in events if isinstance(e, PartFailed)]
    assert [e.part for e in failed] == ["ood", "activation"]
    assert failed[0].message.startswith("No out-of-distribution statistics: fitting the out-of-distribution check "
                                        "needs at least 20 training and validation images, got ")
    assert "saved without them" in failed[0].message and INFO_KEY not in info and not (entry.path / OOD_FILE).exists()
    assert failed[1].message.startswith("clinic@1 was not activated: it has no out-of-distribution statistics")
    assert "its test set holds only" in failed[1].message
    assert registry.active().path != entry.path  # asked, but refused by the activation rule


def test_cancel_mid_training_saves_nothing(small_kaggle):
    steps = []

    def stop_after_two_steps():
        return len(steps) >= 2

    with pytest.raises(TrainingCancelled):
        train_and_save([small_kaggle], TrainSettings(**FAST, name="cancelled"),
                       on_event=lambda e: isinstance(e, StepEnd) and steps.append(e),
                       should_stop=stop_after_two_steps)
    assert len(steps) == 2
    assert not [e for e in registry.list_models() if e.name == "cancelled"]


def test_same_seed_gives_the_same_history(small_kaggle):
    settings = TrainSettings(**{**FAST, "epochs": 1})
    first, second = train([small_kaggle], settings), train([small_kaggle], settings)
    assert first.info["history"][0]["loss"] == pytest.approx(second.info["history"][0]["loss"], rel=1e-4)


@pytest.fixture(scope="module")
def boxed_run(figshare_dir, kaggle_dir, tmp_path_factory):
    """One `default`-recipe run (augmented, box loss on, 2 epochs at 64 px) on real boxed tumors and
    healthy Kaggle slices: (its settings, its TrainResult). Shared by the boxed-run and repeat tests."""
    root = tmp_path_factory.mktemp("boxed-run")
    # 27 boxed + 12 healthy: 24 training groups, three whole batches of 8 an epoch, so each run traces
    # its step once and not again for a smaller last batch
    boxed = link_subset(figshare_dir, root / "figshare-boxes", per_class=9)
    (boxed / "boxes.csv").symlink_to(figshare_dir / "boxes.csv")
    healthy = link_subset(kaggle_dir, root / "kaggle", per_class=12, classes=["no"])
    settings = settings_for("default", epochs=2, image_size=64, batch_size=8, box_weight=0.5)
    with pytest.MonkeyPatch.context() as patch:  # train saves nothing; never near the user's registry all the same
        patch.setenv("MRI_HOME", str(tmp_path_factory.mktemp("home")))
        return settings, train([boxed, healthy], settings)


def test_an_augmented_run_repeats_exactly(boxed_run):
    # the default recipe augments in a parallel tf.data map: a stateful random layer there drew
    # in whatever order the batches ran, and two runs of the same command parted after epoch 1.
    # The second run: `fit` again on the same prepared data with the same settings (several
    # augmented batches per epoch, boxes moving with their images), against the shared run's history.
    settings, first = boxed_run
    assert epoch_size(first.data, settings.group_sampling) > 2 * settings.batch_size  # several batches an epoch
    _, again = fit(first.data, settings)
    strip = [[{k: v for k, v in record.items() if k != "elapsed_s"} for record in h]
             for h in (first.info["history"], again)]
    assert len(strip[0]) == settings.epochs and strip[0] == strip[1]


def test_typed_folders_with_a_yes_folder_train_a_typed_model(typed_dir, kaggle_dir, tmp_path):
    link_subset(typed_dir, tmp_path / "typed", per_class=12)
    link_subset(kaggle_dir, tmp_path / "kaggle", per_class=12, classes={"yes"})
    result = train([tmp_path / "typed", tmp_path / "kaggle"], TrainSettings(**{**FAST, "epochs": 1}))
    assert result.info["class_names"] == ["glioma", "meningioma", "notumor", "pituitary"]
    assert result.info["data"]["counts_per_class"]["tumor"] == 12
    assert "unknown type" in result.info["outputs"]
    assert result.info["test_metrics"]["n"] == result.info["data"]["split_sizes"]["test"]


def test_boxed_images_train_the_heatmap_and_the_run_records_it(boxed_run):
    _, result = boxed_run
    assert result.info["data"]["boxed_train_images"] > 10
    assert all(h["box_loss"] > 0 for h in result.info["history"])
    assert "--box-weight 0.5" in result.info["command"]
    # a default-recipe package is read with the mirror average and a smoothed heatmap, with an uncertainty band
    assert result.info["reading"] == {"mirror_average": True, "heatmap_sigma": 2.0}
    assert result.info["operating_point"]["band_rule"]["miss_rate"] == RECIPES["default"].band_rule[0]
    low, high = result.info["uncertainty_band"]
    assert low <= result.info["threshold"] <= high
    # no tumor outlines in these folders: a classifier only, and model.json says so
    assert result.info["segmentation"] is None and len(result.keras_model.outputs) == 1


# --- a package appears whole -----------------------------------------------------------------

def _snapshot(folder: Path) -> dict:
    """Every file of a folder: (size, modification time, sha256)."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns,
                                            hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def saved_whole(typed_dir, tmp_path_factory):
    """A package from train_and_save (activated with a confirmation), its events, and what its folder held the
    moment it was renamed into place."""
    data = link_subset(typed_dir, tmp_path_factory.mktemp("typed"), per_class=40)  # enough to fit the OOD check
    real_rename, at_rename, events = os.rename, {}, []

    def rename(source, target):
        real_rename(source, target)
        if Path(target).parent.name == "with-ood":  # the package appearing in the registry
            at_rename[Path(target)] = _snapshot(Path(target))

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MRI_HOME", str(tmp_path_factory.mktemp("home")))
        patch.setattr(os, "rename", rename)
        entry = train_and_save([data], TrainSettings(**{**FAST, "epochs": 1}, name="with-ood"),
                               on_event=events.append, activate=True, confirm=True)
        active = registry.active()
    return entry, at_rename, events, active


def test_a_trained_package_carries_its_out_of_distribution_statistics(saved_whole):
    entry, _, events, active = saved_whole
    assert not [e for e in events if isinstance(e, PartFailed)]  # the fit worked; activation was confirmed
    assert registry.activation_problems(entry) and active.path == entry.path  # few test images: confirmed
    section = json.loads((entry.path / "model.json").read_text())[INFO_KEY]
    assert section["sha256"] == hashlib.sha256((entry.path / OOD_FILE).read_bytes()).hexdigest()
    assert section["n_threshold"] == entry.info["data"]["split_sizes"]["val"]
    assert section["n_fit"] == entry.info["data"]["split_sizes"]["train"]
    assert load_model(entry.path).ood.stats is not None


def test_nothing_is_written_into_a_package_after_its_rename(saved_whole):
    entry, at_rename, _, _ = saved_whole
    assert list(at_rename) == [entry.path]
    assert {"model.keras", "model.json", OOD_FILE} <= set(at_rename[entry.path])
    assert _snapshot(entry.path) == at_rename[entry.path]  # same files, untouched since
