"""What a package's model.json must say, and how to read it: the contract between a model
package and the code that loads it (DESIGN.md, "A model package").

`validate_info` refuses a model.json that lacks a key, names an architecture this app does
not know, or holds values out of range, with a message that says what to do.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mri_core.io.errors import ModelInvalid

# The architectures this app can train and read; `training.recipes` holds one recipe for each.
ARCHITECTURES = ("paper", "default")
# Out-of-distribution statistics in a package: the npz beside model.keras and model.json's
# section that names its sha256 (`inference.ood` reads them, `training.ood_fit` writes them).
OOD_FILE, OOD_INFO_KEY = "ood.npz", "ood"
MIN_OOD_FIT_IMAGES = 20  # training and validation images each that fitting the statistics needs

# model.json "reading": how a package's slices are read (packages without it: neither aid)
NO_READING_AIDS = {"mirror_average": False, "heatmap_sigma": 0.0}
MAX_HEATMAP_SIGMA = 16.0  # model-input pixels

REQUIRED_KEYS = (
    "name", "version", "architecture", "input", "class_names", "no_tumor_classes",
    "threshold", "temperature", "gradcam_layer",
)


def tumor_indices(info: dict) -> list[int]:
    """Indices of the tumor classes (every class not named a no-tumor class) in the outputs."""
    return [i for i, c in enumerate(info["class_names"]) if c not in info["no_tumor_classes"]]


def reading_of(info: dict) -> dict:
    """model.json -> how its slices are read: mirror averaging and heatmap smoothing (none if unset)."""
    return {**NO_READING_AIDS, **info.get("reading", {})}


def segmentation_of(info: dict) -> dict | None:
    """model.json -> its "segmentation" section ({"output", "threshold", ...}), or None for a model
    that does not segment (older packages lack the key)."""
    section = info.get("segmentation")
    return section if isinstance(section, dict) else None


def uncertainty_band_of(info: dict) -> tuple[float, float] | None:
    """model.json -> its uncertainty band (low, high), or None (older packages: no band)."""
    band = info.get("uncertainty_band")
    return None if band is None else (float(band[0]), float(band[1]))


MASK_CLEANUP_KEYS = ("relative", "component_peak", "fill_holes")
NO_MASK_CLEANUP = {"relative": None, "component_peak": None, "fill_holes": False}


def check_mask_cleanup(cleanup: dict | None) -> dict:
    """model.json's `segmentation.cleanup` (or None) -> its three steps (`inference.segmentation.threshold_mask`),
    or ValueError saying what is wrong."""
    if cleanup is None:
        return dict(NO_MASK_CLEANUP)
    if not isinstance(cleanup, dict) or set(cleanup) - set(MASK_CLEANUP_KEYS):
        raise ValueError(f"A mask cleanup names only {', '.join(MASK_CLEANUP_KEYS)}; got {cleanup!r}.")
    steps = {**NO_MASK_CLEANUP, **cleanup}
    for key in ("relative", "component_peak"):
        value = steps[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0):
            raise ValueError(f"The mask cleanup's {key!r} must be null or a share in (0, 1], got {value!r}.")
    if not isinstance(steps["fill_holes"], bool):
        raise ValueError(f"The mask cleanup's 'fill_holes' must be true or false, got {steps['fill_holes']!r}.")
    return steps


def validate_info(info: dict, where: Path) -> None:
    """Raise ModelInvalid naming what is missing or inconsistent in model.json."""
    missing = [key for key in REQUIRED_KEYS if key not in info]
    if missing:
        raise ModelInvalid(f"{where}/model.json lacks {', '.join(missing)}; the package is incomplete. Retrain it or restore it from a backup.")
    if info["architecture"] not in ARCHITECTURES:
        raise ModelInvalid(f"{where}/model.json names an unknown architecture {info['architecture']!r}; "
                           f"this app knows {', '.join(ARCHITECTURES)}.")
    classes, no_tumor = info["class_names"], info["no_tumor_classes"]
    if not isinstance(classes, list) or len(classes) < 2 or not set(no_tumor) <= set(classes):
        raise ModelInvalid(f"{where}/model.json has an invalid class list {classes!r} (no-tumor classes {no_tumor!r}).")
    if not 0.0 < float(info["threshold"]) < 1.0 or not float(info["temperature"]) > 0.0:
        raise ModelInvalid(f"{where}/model.json has threshold {info['threshold']} or temperature {info['temperature']} out of range.")
    reading = info.get("reading", {})
    sigma = reading.get("heatmap_sigma", 0.0) if isinstance(reading, dict) else None
    if (not isinstance(reading, dict) or not isinstance(reading.get("mirror_average", False), bool)
            or not isinstance(sigma, (int, float)) or not 0.0 <= sigma <= MAX_HEATMAP_SIGMA):
        raise ModelInvalid(f"{where}/model.json has an invalid \"reading\" {reading!r}: mirror_average must be true or "
                           f"false and heatmap_sigma 0 to {MAX_HEATMAP_SIGMA} pixels.")
    band = info.get("uncertainty_band")
    if band is not None and not (isinstance(band, list) and len(band) == 2
                                 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in band)
                                 and 0.0 <= band[0] <= band[1] <= 1.0):
        raise ModelInvalid(f"{where}/model.json has an invalid \"uncertainty_band\" {band!r}: it must be null or "
                           "[low, high] with 0 <= low <= high <= 1. Retrain the model or restore its package.")
    segmentation = info.get("segmentation")
    threshold = segmentation.get("threshold") if isinstance(segmentation, dict) else None
    if segmentation is not None and not (isinstance(segmentation, dict) and isinstance(segmentation.get("output"), str)
                                         and isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
                                         and 0.0 < threshold < 1.0):
        raise ModelInvalid(f"{where}/model.json has an invalid \"segmentation\" {segmentation!r}: it must be null or "
                           "name its \"output\" layer and a pixel \"threshold\" between 0 and 1. Retrain the model.")
    if segmentation is not None:
        try:
            check_mask_cleanup(segmentation.get("cleanup"))
        except ValueError as problem:
            raise ModelInvalid(f"{where}/model.json has an invalid \"segmentation\" \"cleanup\": {problem} "
                               "Retrain the model or restore its package.") from None


def ood_stats_match(package: str | os.PathLike, info: dict) -> bool:
    """Whether the package holds out-of-distribution statistics that match its model.json
    (the npz is there and has the sha256 its `ood` section names)."""
    section, npz = info.get(OOD_INFO_KEY), Path(package) / OOD_FILE
    return (isinstance(section, dict) and npz.is_file()
            and hashlib.sha256(npz.read_bytes()).hexdigest() == section.get("sha256"))
