"""A small segmenting model package for reading tests (issue 21): the `default` architecture with its
mask output, at 64 px, seeded weights, written as a package folder (model.keras + model.json) that
`load_model` and `predict --model PATH` read like any other.

The weights are untrained, so the model's answers mean nothing; what a test controls is the
model.json: the uncertainty band decides every verdict (band (0, 0): all `tumor`; (1, 1): all
`no_tumor` below 1; (0, 1): all `uncertain`), and the mask's pixel threshold is set from the
network's own mask on a real slice, so a real part of the slice is outlined.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SIZE = 64
CLASSES = ["glioma", "meningioma", "notumor"]
# The share of the model input the outline covers on the slice its threshold is set from.
OUTLINED_SHARE = 0.2


def write_segmenting_package(folder: Path, pixels: np.ndarray, band=(0.0, 0.0), mirror: bool = True,
                             name: str = "seg", seed: int = 0) -> Path:
    """Write a segmenting package into `folder` (created) and return it. `pixels`: a real grey slice
    (H, W) in [0, 1]; the mask threshold is set so that about OUTLINED_SHARE of its model input is
    at or above it (the mirrored reading's mask, when `mirror`)."""
    import json

    import keras

    from mri_core.inference.model import forward_with_masks, mask_output_index
    from mri_core.io import preprocess
    from mri_core.training.recipes import build

    keras.utils.set_random_seed(seed)
    network = build("default", IMAGE_SIZE, len(CLASSES), segment=True)
    image = preprocess.prepare(pixels, IMAGE_SIZE).image[None]
    _, mask = forward_with_masks(network, image, mirror, mask_output_index(network, "mask"))
    threshold = float(np.quantile(mask, 1.0 - OUTLINED_SHARE))
    folder.mkdir(parents=True, exist_ok=True)
    network.save(folder / "model.keras")
    info = {
        "name": name, "version": 1, "architecture": "default",
        "input": {"size": IMAGE_SIZE, "channels": 1, "range": [0.0, 1.0]},
        "class_names": CLASSES, "no_tumor_classes": ["notumor"],
        "threshold": 0.5, "temperature": 1.0, "gradcam_layer": "last_conv",
        "reading": {"mirror_average": mirror, "heatmap_sigma": 2.0},
        "uncertainty_band": None if band is None else [float(band[0]), float(band[1])],
        "segmentation": {"output": "mask", "threshold": threshold},
    }
    (folder / "model.json").write_text(json.dumps(info, indent=2))
    return folder
