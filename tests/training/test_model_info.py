"""model.json of a trained network: the recipe's layer and reading, and a command that trains it again."""

import shlex

from mri_core.__main__ import _parser
from mri_core.training.model_info import model_info, reproduce_command
from mri_core.training.prepared import load_training_data
from mri_core.training.recipes import RECIPES, settings_for

CALIBRATION = {"threshold": 0.3, "uncertainty_band": [0.1, 0.6], "operating_point": {"rule": "r"}, "temperature": 1.5,
               "segmentation": {"output": "mask", "threshold": 0.4},
               "reading": RECIPES["default"].reading, "test_metrics": {"n": 9}}


def _settings_of(command: str):
    """The settings the CLI makes of a reproducing command."""
    args = _parser().parse_args(shlex.split(command)[3:])
    return args.data_dirs, settings_for(args.arch, epochs=args.epochs, image_size=args.image_size,
                                        batch_size=args.batch_size, learning_rate=args.learning_rate,
                                        seed=args.seed, name=args.name, strategy=args.strategy, split=args.split,
                                        manifest=args.manifest, source_balance=args.source_balance,
                                        box_weight=args.box_weight, mask_weight=args.mask_weight,
                                        group_sampling=args.group_sampling, not_mri=args.not_mri)


def test_the_command_trains_the_same_settings_again(tmp_path):
    for settings in (settings_for("paper", epochs=3, seed=2, split="naive", name="mine"),
                     settings_for("default", learning_rate=0.004, manifest="bench/splits/shipped.json",
                                  box_weight=0.5, source_balance=0.0),
                     settings_for("default", mask_weight=2.0, group_sampling=False, not_mri="../shared/data/not-mri/head-ct")):
        command = reproduce_command([tmp_path / "a", tmp_path / "b"], settings)
        assert command.startswith("python -m mri_core train ")
        assert _settings_of(command) == ([str(tmp_path / "a"), str(tmp_path / "b")], settings)


def test_model_json_names_the_recipes_gradcam_layer_and_everything_a_reading_needs(small_kaggle):
    settings = settings_for("default", image_size=48, epochs=2)
    data = load_training_data([small_kaggle], settings)
    info = model_info([small_kaggle], settings, data, [{"epoch": 1}], CALIBRATION)
    assert info["architecture"] == "default" and info["gradcam_layer"] == RECIPES["default"].gradcam_layer
    assert info["input"] == {"size": 48, "channels": 1, "range": [0.0, 1.0]}
    assert info["class_names"] == ["notumor", "tumor"] and info["no_tumor_classes"] == ["notumor"]
    assert {key: info[key] for key in ("threshold", "temperature", "reading")} == {
        "threshold": 0.3, "temperature": 1.5, "reading": {"mirror_average": True, "heatmap_sigma": 2.0}}
    assert info["settings"]["box_weight"] == 1.5 and "box_mix" not in info["settings"]
    assert info["history"] == [{"epoch": 1}] and info["data"] is data.summary
    assert "unknown type" not in info["outputs"]
    assert info["uncertainty_band"] == [0.1, 0.6] and info["segmentation"] == {"output": "mask", "threshold": 0.4}
