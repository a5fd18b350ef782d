"""Networks: the paper's CNN as described, every network functional and safe to save."""

import numpy as np
import pytest

from mri_core.training import networks
from mri_core.training.recipes import RECIPES


def test_paper_model_follows_the_paper_layer_order():
    model = networks.build_paper(128, 2)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D",
                     "Flatten", "Dense", "Dense", "Activation"]
    first_conv = model.get_layer("conv1")
    assert first_conv.filters == 80 and first_conv.kernel_size == (3, 3)
    assert first_conv.activation.__name__ == "relu"


@pytest.mark.parametrize("recipe", RECIPES.values(), ids=list(RECIPES))
def test_every_network_outputs_probabilities_and_has_its_recipes_gradcam_layer(recipe):
    model = recipe.builder(96, 4)
    assert model.__class__.__name__ == "Functional"  # tf-keras-vis fails on Sequential
    assert model.name == recipe.name
    batch = np.random.default_rng(0).random((3, 96, 96, 1), dtype=np.float32)
    probabilities = np.asarray(model(batch))
    assert probabilities.shape == (3, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer(recipe.gradcam_layer).output.shape[1] > 1
    assert model.get_layer("logits") is not None


@pytest.mark.parametrize("recipe", RECIPES.values(), ids=list(RECIPES))
def test_networks_round_trip_through_safe_mode(recipe, tmp_path):
    import keras

    model = recipe.builder(64, 2)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    batch = np.random.default_rng(1).random((2, 64, 64, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded(batch)), np.asarray(model(batch)), atol=1e-6)


def test_the_default_network_can_segment_in_the_same_pass_and_round_trips(tmp_path):
    import keras

    model = networks.build_default(64, 3, segment=True)
    batch = np.random.default_rng(2).random((2, 64, 64, 1), dtype=np.float32)
    probabilities, mask = (np.asarray(out) for out in model(batch))
    assert probabilities.shape == (2, 3) and mask.shape == (2, 64, 64, 1)
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    assert model.get_layer("mask") is not None and model.get_layer("last_conv") is not None
    model.save(tmp_path / "seg.keras")
    loaded = keras.saving.load_model(tmp_path / "seg.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(batch)[1]), mask, atol=1e-6)
    with pytest.raises(ValueError):
        networks.build_paper(64, 3, segment=True)
