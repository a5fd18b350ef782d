"""A data set made ready for training: every image prepared once, labels, weights and boxes per split.

`load_training_data` discovers, validates, groups near-duplicates and splits (`data`), then
prepares each split's images exactly as a reading prepares a slice (`io.inputs.prepare_files`:
float32 (N, S, S, 1) in [0, 1]). A label is a class index, or `len(class_names)`
(`any_tumor_label`) for a tumor of unknown type (see `losses`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mri_core.io import preprocess, slices
from mri_core.io.errors import DatasetInvalid
from mri_core.io.inputs import prepare_files
from mri_core.training import data as datasets
from mri_core.training import duplicates
from mri_core.training import splits
from mri_core.training.recipes import TrainSettings


@dataclass
class TrainingData:
    """Prepared images and labels per split, plus provenance."""

    class_names: list[str]
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (images, labels)
    summary: dict
    true_names: dict[str, list[str]] = field(default_factory=dict)  # split -> true class per image
    train_weights: np.ndarray | None = None  # per training image loss weight (mean 1)
    train_masks: np.ndarray | None = None  # (N, S, S, 1) uint8 1 inside the tumor box; None: no boxes
    train_has_box: np.ndarray | None = None  # (N,) float32 1.0 where the image has a box
    val_sources: list[str] = field(default_factory=list)  # root name per validation image
    paths: dict[str, list[Path]] = field(default_factory=dict)  # split -> image files, in array order

    @property
    def any_tumor_label(self) -> int:
        return len(self.class_names)

    @property
    def tumor_mask(self) -> np.ndarray:
        """(C,) 1.0 for tumor classes, 0.0 for no-tumor classes."""
        return np.array([c not in datasets.NO_TUMOR_CLASSES for c in self.class_names], np.float32)


def model_classes(found: Sequence[str]) -> list[str]:
    """Classes the network outputs: `tumor` (unknown type) is folded into the types when typed."""
    typed = any(c in datasets.TUMOR_TYPES for c in found)
    return [c for c in found if not (typed and c == datasets.TUMOR_CLASS)]


def load_training_data(data_dirs: Sequence[str | Path], settings: TrainSettings) -> TrainingData:
    """Discover, validate, group near-duplicates, split, and prepare every image once."""
    dataset = datasets.discover(data_dirs)
    groups = duplicates.group_near_duplicates(dataset.records)
    manifest_hash = None
    if settings.manifest:
        manifest = splits.read_manifest(settings.manifest)
        split = splits.apply_manifest(dataset, manifest)
        manifest_hash = splits.manifest_hash(manifest)
    elif settings.split == "naive":
        split = splits.split_naive(dataset, settings.seed)
    else:
        split = splits.split_groups(dataset, groups, settings.seed)
    class_names = model_classes(dataset.class_names)
    parts = {}
    for part in ("train", "val", "test"):
        parts[part] = [r for r in dataset.records if split.get(r.sha256) == part]
        if not parts[part]:
            raise DatasetInvalid(
                f"The {part} split is empty ({len(dataset.records)} images in all); add more images per class."
            )
    arrays = {part: (prepare_files([r.path for r in records], settings.image_size),
                     np.array([class_names.index(r.class_name) if r.class_name in class_names else len(class_names)
                               for r in records], np.int32))
              for part, records in parts.items()}
    train = parts["train"]
    masks, has_box = box_masks(train, settings.image_size) if settings.box_weight else (None, None)
    summary = {
        "roots": [str(Path(root)) for root in data_dirs],
        "kind": dataset.kind,
        "counts_per_class": {c: int(sum(r.class_name == c for r in dataset.records)) for c in dataset.class_names},
        "skipped": len(dataset.skipped),
        "split": settings.split if not settings.manifest else "manifest",
        "split_seed": settings.seed,
        "split_sizes": {part: int(len(arrays[part][1])) for part in arrays},
        "duplicate_groups": int(sum(np.bincount(groups) > 1)),
        "manifest": settings.manifest,
        "manifest_hash": manifest_hash,
        "test_leakage": int(splits.leakage_count(split, groups, dataset)),
        "source_balance": settings.source_balance,
        "boxed_train_images": int(has_box.sum()) if has_box is not None else 0,
    }
    return TrainingData(
        class_names, arrays, summary,
        true_names={part: [r.class_name for r in records] for part, records in parts.items()},
        train_weights=stratum_weights([(r.root_name, r.class_name) for r in train], settings.source_balance),
        train_masks=masks, train_has_box=has_box, val_sources=[r.root_name for r in parts["val"]],
        paths={part: [r.path for r in records] for part, records in parts.items()})


def box_masks(records: Sequence[datasets.ImageRecord], image_size: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Tumor boxes of the records whose root has a boxes.csv -> ((N, S, S, 1) uint8 masks, (N,) flags).

    (None, None) when no record has a box. A box whose stated image size differs from the
    file's is not used (it would land in the wrong place).
    """
    boxes_by_root = {root: datasets.read_boxes(root) for root in {r.root for r in records}}
    boxed = [(i, boxes_by_root[r.root][r.relative_path]) for i, r in enumerate(records)
             if r.relative_path in boxes_by_root[r.root]]
    if not boxed:
        return None, None
    masks = np.zeros((len(records), image_size, image_size, 1), np.uint8)
    has_box = np.zeros(len(records), np.float32)

    def fill(item):
        i, (box, shape) = item
        pixels = slices.read_file(records[i].path)[0].pixels
        if tuple(pixels.shape[:2]) != shape:
            return
        crop = preprocess.prepare(pixels, image_size).crop_box  # the same crop as the model input's
        x0, y0, x1, y1 = preprocess.box_to_model(box, crop, image_size)
        masks[i, y0:y1 + 1, x0:x1 + 1] = 1
        has_box[i] = 1.0

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(fill, boxed))
    return masks, has_box


def stratum_weights(strata: Sequence[tuple[str, str]], exponent: float) -> np.ndarray:
    """Per-image weights (mean 1): (median stratum size / own stratum size) ** exponent."""
    names, index = np.unique(np.array([f"{root}/{name}" for root, name in strata]), return_inverse=True)
    sizes = np.bincount(index).astype(np.float64)
    weights = (np.median(sizes) / sizes[index]) ** exponent
    return (weights / weights.mean()).astype(np.float32)
