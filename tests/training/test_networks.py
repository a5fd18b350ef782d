"""Architectures: the paper's CNN as described, every model functional and safe to save."""

import numpy as np
import pytest

from mri_core.training import recipes as architectures
from mri_core.io.errors import SettingsInvalid


def test_paper_model_follows_the_paper_layer_order():
    model = architectures.build("paper", 128, 2)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D",
                     "Flatten", "Dense", "Dense", "Activation"]
    first_conv = model.get_layer("conv1")
    assert first_conv.filters == 80 and first_conv.kernel_size == (3, 3)
    assert first_conv.activation.__name__ == "relu"


@pytest.mark.parametrize("arch", architectures.ARCHITECTURES)
def test_every_architecture_outputs_probabilities_and_names_its_gradcam_layer(arch):
    model = architectures.build(arch, 96, 4)
    assert model.__class__.__name__ == "Functional"  # tf-keras-vis fails on Sequential
    batch = np.random.default_rng(0).random((3, 96, 96, 1), dtype=np.float32)
    probabilities = np.asarray(model(batch))
    assert probabilities.shape == (3, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer(architectures.GRADCAM_LAYERS[arch]).output.shape[1] > 1
    assert model.get_layer("logits") is not None


@pytest.mark.parametrize("arch", architectures.ARCHITECTURES)
def test_models_round_trip_through_safe_mode(arch, tmp_path):
    import keras

    model = architectures.build(arch, 64, 2)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    batch = np.random.default_rng(1).random((2, 64, 64, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded(batch)), np.asarray(model(batch)), atol=1e-6)


@pytest.mark.parametrize("arch, size, classes, fragment", [
    ("resnet", 128, 2, "Unknown architecture"),
    ("paper", 8, 2, "out of range"),
    ("paper", 128, 1, "at least 2 classes"),
])
def test_bad_settings_are_refused_with_a_clear_message(arch, size, classes, fragment):
    with pytest.raises(SettingsInvalid, match=fragment):
        architectures.build(arch, size, classes)
