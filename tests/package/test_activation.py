"""The activation rule (mri_core/package/activation.py) on the shipped packages, copies of them and a really
trained model, and `registry.activate` refusing what fails it unless confirmed (issue 19, item 3)."""

from __future__ import annotations

import copy
import shutil

import pytest

from mri_core.inference import ood
from mri_core.io.errors import ModelInvalid
from mri_core.package import activation, registry


def shipped(name: str) -> registry.ModelEntry:
    [entry] = [e for e in registry.list_models() if e.shipped and e.name == name] or [None]
    if entry is None:
        pytest.skip(f"{name} is not shipped in assets/models")
    return entry


def copy_package(entry: registry.ModelEntry, name: str, info: dict | None = None, files=(registry.MODEL_FILE,)):
    """A copy of a shipped package in the test's registry, with `files` of it and `info` as model.json."""
    return registry.save_package(name, info or entry.info, lambda folder: [
        shutil.copyfile(entry.path / file, folder / file) for file in files])


def test_the_rule_reads_the_same_ood_files_as_the_reading():
    assert (activation.OOD_FILE, activation.OOD_INFO_KEY) == (ood.OOD_FILE, ood.INFO_KEY)
    assert activation.OOD_MIN_IMAGES == ood.MIN_FIT_IMAGES


def test_the_shipped_default_passes_and_activates_without_confirmation():
    default = registry.default_shipped()
    assert registry.activation_problems(default) == []
    assert activation.is_calibrated(default.info["test_metrics"])
    assert min(activation.images_per_class(default.info).values()) >= activation.MIN_TEST_PER_CLASS
    assert registry.activate(default.ref).path == default.path


def test_the_shipped_paper_reproduction_fails_on_every_count_and_is_refused():
    paper = shipped("paper-kaggle")
    found = registry.activation_problems(paper)
    words = " | ".join(found)
    assert "no out-of-distribution statistics" in words
    assert "only 14 notumor image(s)" in words and "tumor" not in words.split("only 14 notumor")[1].split(";")[0]
    assert "sensitivity is 69.6%, below the 80% floor" in words
    assert "accuracy is 64.9%, below the 70% floor" in words
    assert "poorly calibrated" in words and "18.0%" in words
    with pytest.raises(activation.NeedsConfirmation) as refused:
        registry.activate(paper.ref)
    assert isinstance(refused.value, ModelInvalid) and refused.value.problems == found
    assert str(refused.value).startswith(f"{paper.ref} was not activated: it has no out-of-distribution")
    assert "--activate-anyway" in str(refused.value)
    assert registry.active().ref == registry.default_shipped().ref  # nothing changed

    assert registry.activate(paper.ref, confirm=True).ref == paper.ref
    assert registry.active().ref == paper.ref


def test_a_package_without_its_ood_file_or_with_a_mismatched_one_fails_only_on_that():
    default = registry.default_shipped()
    without = copy_package(default, "no-ood")
    assert [p[:45] for p in registry.activation_problems(without)] == [
        "it has no out-of-distribution statistics (ood"]
    with pytest.raises(activation.NeedsConfirmation, match="no-ood@1 was not activated"):
        registry.activate(without.ref)
    assert registry.active().ref == default.ref

    info = copy.deepcopy(default.info)
    info[ood.INFO_KEY]["sha256"] = "0" * 64  # an npz other than the one model.json names
    mismatched = copy_package(default, "other-ood", info, (registry.MODEL_FILE, ood.OOD_FILE))
    assert len(registry.activation_problems(mismatched)) == 1
    whole = copy_package(default, "whole", files=(registry.MODEL_FILE, ood.OOD_FILE))
    assert registry.activation_problems(whole) == []


def test_each_threshold_of_the_rule_is_a_reason_of_its_own():
    default = registry.resolve("default-4class@4")  # a shipped package whose test figures are known here
    info = copy.deepcopy(default.info)
    metrics = info["test_metrics"]
    metrics["per_class"]["notumor"]["support"] = activation.MIN_TEST_PER_CLASS - 1
    metrics["sensitivity"], metrics["accuracy"] = activation.MIN_SENSITIVITY - 0.01, activation.MIN_ACCURACY - 0.01
    metrics["ece_tumor"] = activation.MAX_ECE + 0.001
    found = activation.problems(default.path, info)
    assert len(found) == 4
    assert found[0].startswith(f"its test set holds only {activation.MIN_TEST_PER_CLASS - 1} notumor image(s)")
    assert [reason.split(" ")[2] for reason in found[1:3]] == ["sensitivity", "accuracy"]
    assert "poorly calibrated" in found[3] and not activation.is_calibrated(metrics)

    metrics.pop("per_class")  # older packages: counted from the confusion matrix rows
    assert activation.images_per_class(info) == {"glioma": 379, "meningioma": 280, "notumor": 152, "pituitary": 302}
    assert activation.problems(default.path, {**info, "test_metrics": {}}) == [
        "its model.json records no test figures, so nothing says how well it reads scans"]


def test_a_really_trained_tiny_model_is_refused_with_its_own_figures(tiny_model_dir):
    info = registry.read_info(tiny_model_dir)
    found = activation.problems(tiny_model_dir, info)
    n_test = info["data"]["split_sizes"]["test"]
    assert n_test < 2 * activation.MIN_TEST_PER_CLASS
    assert "no out-of-distribution statistics" in found[0]
    assert any(reason.startswith("its test set holds only") for reason in found)
    with pytest.raises(activation.NeedsConfirmation):
        registry.activate(tiny_model_dir)
    assert registry.activate(tiny_model_dir, confirm=True).path == tiny_model_dir
    assert registry.active().path == tiny_model_dir


def test_check_words_state_the_rule_and_list_every_reason():
    words = activation.check_words("x@1", ["it has a flaw", "its test set is small"])
    assert words.startswith("**x@1 does not pass the activation checks** (at least 20 test images per class, "
                            "sensitivity ≥ 80%, accuracy ≥ 70%, ECE ≤ 5%, out-of-distribution statistics)")
    assert words.endswith("\n- It has a flaw.\n- Its test set is small.")
