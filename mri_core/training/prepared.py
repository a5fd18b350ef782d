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

REGION_NONE, REGION_OUTLINE, REGION_BOX = 0, 1, 2
# An outline is lent to a near-duplicate (the same slice stored in another set) only when their
# model inputs agree this well (Pearson correlation): then the slice lies where the outline does.
LEND_MIN_CORRELATION = 0.95


@dataclass
class TrainingData:
    """Prepared images and labels per split, plus provenance."""

    class_names: list[str]
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (images, labels)
    summary: dict
    true_names: dict[str, list[str]] = field(default_factory=dict)  # split -> true class per image
    train_weights: np.ndarray | None = None  # per training image loss weight (mean 1)
    train_masks: np.ndarray | None = None  # (N, S, S, 1) uint8 1 inside the tumor (outline or box); None: none
    train_has_box: np.ndarray | None = None  # (N,) float32 1.0 where the image has a tumor region (box or outline)
    # (N,) int8 what train_masks holds per image: REGION_NONE, REGION_OUTLINE (the tumor's own
    # outline, or an all-zero mask of a healthy slice) or REGION_BOX (only a box); None: no masks
    train_mask_kind: np.ndarray | None = None
    train_groups: np.ndarray | None = None  # (N,) near-duplicate group per training image
    val_sources: list[str] = field(default_factory=list)  # root name per validation image
    val_planes: list[str] = field(default_factory=list)  # imaging plane per validation image ("unknown" unnamed)
    val_masks: np.ndarray | None = None  # (N, S, S, 1) uint8 validation outlines (healthy: empty); None: none
    val_mask_kind: np.ndarray | None = None  # (N,) int8 REGION_* of val_masks
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
    index = {id(r): i for i, r in enumerate(dataset.records)}
    train_groups = np.array([groups[index[id(r)]] for r in train], np.int64)
    masks, has_box, kind = tumor_regions(train, settings.image_size, boxes=bool(settings.box_weight),
                                         outlines=bool(settings.mask_weight))
    lent = lend_outlines(arrays["train"][0], train_groups, masks, has_box, kind) if settings.mask_weight else 0
    val_masks, _, val_kind = (tumor_regions(parts["val"], settings.image_size, boxes=False, outlines=True)
                              if settings.mask_weight else (None, None, None))
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
        "boxed_train_images": int((kind == REGION_BOX).sum()) if kind is not None else 0,
        "outlined_train_images": int(((kind == REGION_OUTLINE) & (has_box > 0)).sum()) if kind is not None else 0,
        "outlines_lent_to_near_duplicates": int(lent),
        "healthy_zero_mask_train_images": int(((kind == REGION_OUTLINE) & (has_box == 0)).sum()) if kind is not None else 0,
        "train_groups": int(len(np.unique(train_groups))),
    }
    return TrainingData(
        class_names, arrays, summary,
        true_names={part: [r.class_name for r in records] for part, records in parts.items()},
        train_weights=stratum_weights([(r.root_name, r.class_name) for r in train], settings.source_balance),
        train_masks=masks, train_has_box=has_box, train_mask_kind=kind, train_groups=train_groups,
        val_sources=[r.root_name for r in parts["val"]], val_planes=[r.plane for r in parts["val"]],
        val_masks=val_masks, val_mask_kind=val_kind,
        paths={part: [r.path for r in records] for part, records in parts.items()})


def tumor_regions(records: Sequence[datasets.ImageRecord], image_size: int, boxes: bool = True,
                  outlines: bool = False) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Where each record's tumor is, over the model input -> ((N, S, S, 1) uint8 masks, (N,)
    float32 1.0 where a tumor region is known, (N,) int8 kinds REGION_*); (None, None, None)
    when nothing is known.

    With `outlines`: a tumor image's masks/<stem>.png (an empty one counts as missing), and an
    all-zero outline for every healthy image. With `boxes`: a root's boxes.csv where no
    outline is known; a box whose stated image size differs from the file's is not used (it
    would land in the wrong place). Masks go through the image's own crop (`preprocess`).
    """
    boxes_by_root = {root: datasets.read_boxes(root) if boxes else {} for root in {r.root for r in records}}
    kind = np.zeros(len(records), np.int8)
    todo = []
    for i, r in enumerate(records):
        if outlines and r.class_name in datasets.NO_TUMOR_CLASSES:
            kind[i] = REGION_OUTLINE  # healthy: the outline is empty; nothing to read
        elif outlines and r.mask_path is not None:
            todo.append((i, r.mask_path, None))
        elif r.relative_path in boxes_by_root[r.root]:
            todo.append((i, None, boxes_by_root[r.root][r.relative_path]))
    if not todo and not kind.any():
        return None, None, None
    masks = np.zeros((len(records), image_size, image_size, 1), np.uint8)
    has_region = np.zeros(len(records), np.float32)

    def fill(item):
        i, mask_path, box = item
        pixels = slices.read_file(records[i].path)[0].pixels
        crop = preprocess.square_box(preprocess.brain_crop_box(pixels))  # the model input's crop
        if mask_path is not None:
            outline = slices.read_file(mask_path)[0].pixels > 0.5
            if outline.shape != pixels.shape[:2] or not outline.any():
                return  # another size, or empty although the image shows a tumor: treat as missing
            masks[i, ..., 0] = preprocess.mask_to_model(outline, crop, image_size)
            kind[i] = REGION_OUTLINE
        else:
            (x_0, y_0, x_1, y_1), shape = box
            if tuple(pixels.shape[:2]) != shape:
                return
            x0, y0, x1, y1 = preprocess.box_to_model((x_0, y_0, x_1, y_1), crop, image_size)
            masks[i, y0:y1 + 1, x0:x1 + 1] = 1
            kind[i] = REGION_BOX
        has_region[i] = float(masks[i].any())

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(fill, todo))
    return masks, has_region, kind


def lend_outlines(images: np.ndarray, groups: np.ndarray, masks, has_region, kind) -> int:
    """Give a tumor outline to the near-duplicates of its image that lack one (in place) -> how many.

    A slice stored in several sets (BRISC with outlines, figshare with a box, a resized copy) is
    one near-duplicate group; the copies' model inputs come from their own brain crops, so the
    outline lies in the same place whenever the inputs agree (LEND_MIN_CORRELATION). More of
    each epoch's draws (one per group) then teach the mask.
    """
    if kind is None:
        return 0
    outlined = (kind == REGION_OUTLINE) & (has_region > 0)
    lent = 0
    for group in np.unique(groups[outlined]):
        members = np.flatnonzero(groups == group)
        donors = [i for i in members if outlined[i]]
        for j in members:
            if outlined[j] or kind[j] == REGION_OUTLINE:  # has its own outline, or is healthy (empty outline)
                continue
            scores = [np.corrcoef(images[i].ravel(), images[j].ravel())[0, 1] for i in donors]
            best = int(np.argmax(scores))
            if scores[best] >= LEND_MIN_CORRELATION:
                masks[j], kind[j], has_region[j] = masks[donors[best]], REGION_OUTLINE, 1.0
                lent += 1
    return lent


def stratum_weights(strata: Sequence[tuple[str, str]], exponent: float) -> np.ndarray:
    """Per-image weights (mean 1): (median stratum size / own stratum size) ** exponent."""
    names, index = np.unique(np.array([f"{root}/{name}" for root, name in strata]), return_inverse=True)
    sizes = np.bincount(index).astype(np.float64)
    weights = (np.median(sizes) / sizes[index]) ** exponent
    return (weights / weights.mean()).astype(np.float32)
