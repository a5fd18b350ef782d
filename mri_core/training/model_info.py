"""model.json of a trained network: what it is, how it was trained, calibrated and tested.

Everything a reading needs comes from here (DESIGN.md, "A model package"): class names and
which mean no tumor, the threshold and temperature, the recipe's Grad-CAM layer and reading
aids, the data summary, the history, the test metrics, and the command that reproduces it.
`registry.save_package` adds the name and version.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from mri_core.training import data as datasets
from mri_core.training.prepared import TrainingData
from mri_core.training.recipes import TrainSettings

CALIBRATED_KEYS = ("threshold", "uncertainty_band", "operating_point", "temperature", "reading")


def model_info(data_dirs: Sequence[str | Path], settings: TrainSettings, data: TrainingData,
               history: list[dict], calibration: dict) -> dict:
    """model.json content (less name and version); `calibration` from `calibrate.calibrate_and_test`."""
    folded = datasets.TUMOR_CLASS in data.summary["counts_per_class"] and datasets.TUMOR_CLASS not in data.class_names
    return {
        "format_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "architecture": settings.arch,
        "input": {"size": settings.image_size, "channels": 1, "range": [0.0, 1.0]},
        "preprocessing": {"brain_crop": True, "square_pad": True, "normalise": "percentile 0.5-99.5 to [0, 1]"},
        "class_names": data.class_names,
        "no_tumor_classes": [c for c in data.class_names if c in datasets.NO_TUMOR_CLASSES],
        "outputs": "softmax over class_names; tumor_probability = 1 - sum(p[no_tumor_classes])"
                   + ("; images of a tumor of unknown type were trained on the summed tumor classes" if folded else ""),
        **{key: calibration[key] for key in CALIBRATED_KEYS},
        "gradcam_layer": settings.recipe.gradcam_layer,
        # the second output, when the network segments: per-pixel tumor probability over the model
        # input; a pixel is tumor at >= threshold (the heatmap never comes from it)
        "segmentation": calibration.get("segmentation"),
        "settings": asdict(settings),
        "data": data.summary,
        "history": history,
        "test_metrics": calibration["test_metrics"],
        "command": reproduce_command(data_dirs, settings),
    }


def reproduce_command(data_dirs: Sequence[str | Path], settings: TrainSettings) -> str:
    """The `python -m mri_core train` line that trains this model again."""
    parts = ["python", "-m", "mri_core", "train", *map(str, data_dirs), "--arch", settings.arch,
             "--epochs", str(settings.epochs), "--image-size", str(settings.image_size),
             "--batch-size", str(settings.batch_size), "--learning-rate", str(settings.learning_rate),
             "--seed", str(settings.seed), "--split", settings.split]
    if settings.manifest:
        parts += ["--manifest", str(settings.manifest)]
    parts += ["--source-balance", str(settings.source_balance), "--box-weight", str(settings.box_weight),
              "--mask-weight", str(settings.mask_weight),
              "--group-sampling" if settings.group_sampling else "--no-group-sampling"]
    if settings.not_mri:
        parts += ["--not-mri", str(settings.not_mri)]
    if settings.name:
        parts += ["--name", settings.name]
    return shlex.join(parts)
