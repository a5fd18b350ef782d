"""Recipes: one per architecture model.json knows, the defaults a run starts from, settings checks."""

import json

import pytest

from mri_core.io.errors import SettingsInvalid
from mri_core.package import registry
from mri_core.package.info import ARCHITECTURES
from mri_core.training.recipes import (MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, RECIPES, TrainSettings, build, default_arch,
                                       settings_for)


def test_there_is_one_recipe_for_every_architecture_a_package_may_name():
    assert set(RECIPES) == set(ARCHITECTURES)
    assert all(name == recipe.name and recipe.label for name, recipe in RECIPES.items())


def test_the_default_architecture_is_the_shipped_default_models():
    shipped = json.loads((registry.default_shipped().path / "model.json").read_text())
    assert default_arch() == shipped["architecture"] in RECIPES


def test_a_recipes_reading_is_what_its_packages_record():
    assert RECIPES["paper"].reading == {"mirror_average": False, "heatmap_sigma": 0.0}  # read as published
    assert RECIPES["default"].reading == {"mirror_average": True, "heatmap_sigma": 2.0}


def test_unset_settings_take_the_recipes_defaults():
    for name, recipe in RECIPES.items():
        settings = settings_for(name)
        assert {key: getattr(settings, key) for key in recipe.defaults} == recipe.defaults
        assert MIN_IMAGE_SIZE <= settings.image_size <= MAX_IMAGE_SIZE
    assert settings_for("paper", epochs=None, batch_size=8).batch_size == 8
    assert settings_for().arch == default_arch()
    assert TrainSettings(arch="paper", epochs=2) == settings_for("paper", epochs=2)
    with pytest.raises(SettingsInvalid, match="Unknown architecture"):
        settings_for("vgg")


@pytest.mark.parametrize("change, fragment", [
    (dict(epochs=0), "Epochs"), (dict(arch="vgg"), "architecture"), (dict(batch_size=0), "Batch size"),
    (dict(learning_rate=5.0), "Learning rate"), (dict(image_size=4), "Image size"),
    (dict(strategy="tpu"), "strategy"), (dict(split="random"), "split"), (dict(name="../x"), "not allowed"),
    (dict(box_weight=11.0), "Box weight"), (dict(source_balance=2.0), "Source balance"),
    (dict(arch="paper", box_weight=1.0), "cannot learn from tumor boxes"),
])
def test_bad_settings_are_refused(change, fragment):
    with pytest.raises(SettingsInvalid, match=fragment):
        TrainSettings(**{"arch": "default", **change}).check()


@pytest.mark.parametrize("arch, size, classes, fragment", [
    ("resnet", 128, 2, "Unknown architecture"),
    ("paper", 8, 2, "out of range"),
    ("paper", 128, 1, "at least 2 classes"),
])
def test_building_refuses_what_no_recipe_can_build(arch, size, classes, fragment):
    with pytest.raises(SettingsInvalid, match=fragment):
        build(arch, size, classes)
