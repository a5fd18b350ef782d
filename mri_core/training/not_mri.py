"""What a run learns about images that are not brain MRI (`train --not-mri DIR`).

Such images (head CT, say) are never a training class: the tumor models only know brain MRI,
and the "is this a brain MRI" check (`inference.brain_check`) stands before every one of
them. A run given a not-MRI folder splits it as its MRI (by the manifest's `not_mri`
section, else by near-duplicate group with the run's seed) and records, for its validation
and test parts, how many of those images the shipped check refuses (the reading's
`cannot_read`) and how many this model would have called tumor had the check let them
through: model.json's `not_mri`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mri_core.inference.brain_check import load_brain_check
from mri_core.inference.model import apply_temperature, predict_arrays
from mri_core.io.inputs import prepare_files
from mri_core.training import data as datasets
from mri_core.training import duplicates, splits
from mri_core.training.audit import rate_with_interval


def not_mri_split(folder: str | Path, manifest: str | None, seed: int) -> tuple[datasets.Dataset, dict[str, str]]:
    """The folder's images and their split: the manifest's not_mri section, else grouped anew."""
    dataset = datasets.discover_flat(folder)
    if manifest:
        return dataset, splits.not_mri_split(splits.read_manifest(manifest), dataset)
    return dataset, splits.split_groups(dataset, duplicates.group_near_duplicates(dataset.records), seed)


def not_mri_figures(folder: str | Path, manifest: str | None, seed: int, keras_model, image_size: int,
                    temperature: float, tumor_mask: np.ndarray, threshold: float, mirror: bool) -> dict:
    """-> {"folder", "check", part: {"refused", "called_tumor_without_check"}} for val and test."""
    dataset, split = not_mri_split(folder, manifest, seed)
    check = load_brain_check()
    figures: dict = {"folder": str(folder),
                     "check": None if check is None else {"path": check.path.name, "threshold": check.threshold}}
    for part in ("val", "test"):
        paths = [r.path for r in dataset.records if split.get(r.sha256) == part]
        if not paths:
            continue
        images, pixels = prepare_files(paths, image_size, inspect=lambda slice_: slice_.pixels)  # one decode
        refused = check.is_not_mri(pixels) if check is not None else np.zeros(len(paths), bool)
        probabilities = apply_temperature(predict_arrays(keras_model, images, mirror=mirror), temperature)
        called = probabilities @ tumor_mask >= threshold
        figures[part] = {"refused": rate_with_interval(int(refused.sum()), len(paths)),
                         "called_tumor_without_check": rate_with_interval(int(called.sum()), len(paths))}
    return figures
