"""Training data: discover folder-per-class roots (near-duplicates: `duplicates`; splits and manifests: `splits`).

`discover` reads one or more roots that each hold one folder per class, checks every image
by decoding it with `io` (unreadable files are reported in `Dataset.skipped`, not fatal),
and refuses a data set that cannot train a model with a `DatasetInvalid` that says what to
fix. `group_near_duplicates` links images that show the same slice (resized, re-compressed,
lightly cropped, or stored in two data sets) so that `split_groups` can keep each group on
one side of the train/val/test split; `split_naive` is the per-image split the seed paper
used, kept for the reproduction study. A split is a dict sha256 -> "train"|"val"|"test",
keyed by the file's content hash, and is saved as a JSON manifest that holds no pixels.
Never imports streamlit.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mri_core.io import slices as io

from mri_core.io.errors import DatasetInvalid, MriError
from mri_core.io.zips import IGNORED_NAMES
from mri_core.training import duplicates

log = logging.getLogger(__name__)

# --- classes -----------------------------------------------------------------------------

NO_TUMOR_CLASS = "notumor"
TUMOR_CLASS = "tumor"  # a tumor of unknown type (the Kaggle `yes/` folder)
TUMOR_TYPES = ("glioma", "meningioma", "pituitary")
NO_TUMOR_CLASSES = (NO_TUMOR_CLASS,)
# Folder name (lower case) -> canonical class name.
FOLDER_CLASSES = {
    "glioma": "glioma",
    "meningioma": "meningioma",
    "pituitary": "pituitary",
    "notumor": NO_TUMOR_CLASS,
    "no": NO_TUMOR_CLASS,
    "yes": TUMOR_CLASS,
}
MIN_IMAGES_PER_CLASS = 5
# Operating-system clutter that is not an image and not worth reporting.
DECODE_WORKERS = 2
BOXES_FILE = "boxes.csv"  # optional, in a data root: tumor boxes per image (file,width,height,x_min,y_min,x_max,y_max)
# optional, in a data root: masks/<image stem>.png, a tumor outline per image (0 = background,
# > 127 = tumor, the image's own size). An empty mask of a tumor image counts as no mask.
MASKS_DIR = "masks"
# Imaging plane from a file name (BRISC 2025 names: ..._ax_..., _co_, _sa_); "unknown" elsewhere.
PLANE_TAGS = {"_ax_": "axial", "_co_": "coronal", "_sa_": "sagittal"}
UNKNOWN_PLANE = "unknown"

@dataclass(frozen=True)
class ImageRecord:
    path: Path  # the image file
    root: Path  # the data root it was found under (as given)
    root_name: str  # short name of the root used in manifests ("kaggle-brain-mri")
    folder: str  # the class folder's name as on disk ("Yes", "no", "glioma" ...)
    class_name: str  # canonical class ("tumor", "notumor", "glioma" ...)
    sha256: str  # hex digest of the file bytes: the key of splits and manifests

    @property
    def relative_path(self) -> str:
        """Path under its root, with forward slashes ("no/1 no.jpeg")."""
        return self.path.relative_to(self.root).as_posix()

    @property
    def plane(self) -> str:
        """axial / coronal / sagittal where the file name says so, else "unknown"."""
        return plane_of(self.path.name)

    @property
    def mask_path(self) -> Path | None:
        """The root's masks/<stem>.png for this image, when there is one."""
        candidate = self.root / MASKS_DIR / f"{self.path.stem}.png"
        return candidate if candidate.is_file() else None


def plane_of(file_name: str) -> str:
    """The imaging plane a file name states (PLANE_TAGS), else UNKNOWN_PLANE."""
    lowered = file_name.lower()
    return next((plane for tag, plane in PLANE_TAGS.items() if tag in lowered), UNKNOWN_PLANE)

@dataclass(frozen=True)
class Dataset:
    roots: tuple[Path, ...]
    records: tuple[ImageRecord, ...]  # readable images only: roots in given order, then by path
    class_names: tuple[str, ...]  # sorted
    skipped: tuple[tuple[Path, str], ...]  # (file, why) for files that could not be read

    @property
    def kind(self) -> str:
        """`typed` when any class is a tumor type, `binary` when only notumor/tumor."""
        return "typed" if any(c in TUMOR_TYPES for c in self.class_names) else "binary"

    @property
    def counts(self) -> dict[str, int]:
        """Readable images per class."""
        return {c: sum(r.class_name == c for r in self.records) for c in self.class_names}

    @property
    def counts_per_root(self) -> dict[str, dict[str, int]]:
        """Readable images per root name, then per class (classes a root lacks omitted)."""
        out: dict[str, dict[str, int]] = {}
        for record in self.records:
            per_class = out.setdefault(record.root_name, {})
            per_class[record.class_name] = per_class.get(record.class_name, 0) + 1
        return out

# --- discover ----------------------------------------------------------------------------

def discover(roots: Sequence[str | os.PathLike]) -> Dataset:
    """Folder-per-class roots -> Dataset of every readable image, merged across roots."""
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    root_paths = _unique_roots(roots)
    names = _root_names(root_paths)
    candidates: list[tuple[Path, Path, str, str]] = []  # (file, root, folder, class)
    for root in root_paths:
        for folder in _class_folders(root):
            files = _image_files(folder)
            if not files:
                raise DatasetInvalid(
                    f"The class folder {folder} is empty; put its images in it or remove it."
                )
            candidates += [(f, root, folder.name, FOLDER_CLASSES[folder.name.lower()]) for f in files]
    with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
        inspected = list(pool.map(lambda c: _inspect(c[0]), candidates))
    records, skipped = [], []
    for (path, root, folder, class_name), (sha256, problem) in zip(candidates, inspected):
        if problem is not None:
            skipped.append((path, problem))
        else:
            records.append(ImageRecord(path, root, names[root], folder, class_name, sha256))
    dataset = Dataset(
        roots=tuple(root_paths),
        records=tuple(records),
        class_names=tuple(sorted({r.class_name for r in records})),
        skipped=tuple(skipped),
    )
    _check_dataset(dataset, candidates)
    return dataset

NOT_MRI_CLASS = "not_mri"  # a flat folder of images that are not brain MRI (head CT ...): never a tumor class


def discover_flat(folder: str | os.PathLike, class_name: str = NOT_MRI_CLASS) -> Dataset:
    """A flat folder of images (no class folders, for example head CT) -> Dataset of one class.

    Unreadable files are in `skipped`; DatasetInvalid when the folder is missing or holds no
    readable image.
    """
    root = _unique_roots([folder])[0]
    files = _image_files(root)
    with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
        inspected = list(pool.map(_inspect, files))
    records = tuple(ImageRecord(path, root, _root_names([root])[root], ".", class_name, sha256)
                    for path, (sha256, problem) in zip(files, inspected) if problem is None)
    if not records:
        raise DatasetInvalid(f"No readable images in {root}; put the not-MRI images (PNG or JPEG) directly in it.")
    skipped = tuple((path, problem) for path, (_, problem) in zip(files, inspected) if problem is not None)
    return Dataset((root,), records, (class_name,), skipped)


def _unique_roots(roots: Sequence[str | os.PathLike]) -> list[Path]:
    if not roots:
        raise DatasetInvalid("No data folder given; pass at least one folder that holds one folder per class.")
    unique: list[Path] = []
    for given in roots:
        root = Path(given)
        if not root.exists():
            raise DatasetInvalid(f"The data folder {root} does not exist; check the path.")
        if not root.is_dir():
            raise DatasetInvalid(
                f"{root} is a file, not a folder; give the folder that holds one folder per class "
                f"(unzip an archive first)."
            )
        if all(root.resolve() != seen.resolve() for seen in unique):
            unique.append(root)
    return unique

def _root_names(roots: list[Path]) -> dict[Path, str]:
    """Each root -> its folder name, made unique with -2, -3 ... when two roots share one."""
    names: dict[Path, str] = {}
    for root in roots:
        base = root.resolve().name or "data"
        name, n = base, 1
        while name in names.values():
            n += 1
            name = f"{base}-{n}"
        names[root] = name
    return names

def _accepted_names() -> str:
    return ", ".join(f"{folder}/ ({cls})" for folder, cls in FOLDER_CLASSES.items())

def _class_folders(root: Path) -> list[Path]:
    """The class sub-folders of a root, sorted; an unknown folder name is an error."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not _ignored(p) and p.name != MASKS_DIR)
    unknown = [p.name for p in folders if p.name.lower() not in FOLDER_CLASSES]
    if unknown:
        raise DatasetInvalid(
            f"{root} has folder(s) {', '.join(repr(n) for n in unknown)} that are not class names. "
            f"Accepted class folders (any letter case): {_accepted_names()}, and {MASKS_DIR}/ for tumor "
            "outlines. Rename or remove them."
        )
    if not folders:
        raise DatasetInvalid(
            f"{root} has no class folders. Put the images in one folder per class directly "
            f"under it, named: {_accepted_names()}."
        )
    return folders

def _ignored(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in IGNORED_NAMES

def _image_files(folder: Path) -> list[Path]:
    """Every file in a class folder (sub-folders are not searched), sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not _ignored(p))

def _inspect(path: Path) -> tuple[str | None, str | None]:
    """File -> (sha256, None) when it decodes, (None, why) when it does not; caches a thumbnail."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    try:
        slice_ = io.decode_image(data, path.name)
    except MriError as exc:
        return None, str(exc)
    sha256 = hashlib.sha256(data).hexdigest()
    duplicates.remember_thumbnail(sha256, slice_.pixels)
    return sha256, None

def _check_dataset(dataset: Dataset, candidates: list[tuple[Path, Path, str, str]]) -> None:
    """Refuse a data set that cannot train a model, saying what to add or fix."""
    where = ", ".join(str(r) for r in dataset.roots)
    if not dataset.records:
        example = f" (for example {dataset.skipped[0][1]})" if dataset.skipped else ""
        raise DatasetInvalid(
            f"No readable images in {where}: all {len(candidates)} files failed to decode{example}. "
            f"Use PNG or JPEG slices."
        )
    found = {c for *_, c in candidates}
    unreadable = sorted(found - set(dataset.class_names))
    if unreadable:
        raise DatasetInvalid(
            f"No readable images for class(es) {', '.join(unreadable)} in {where}; every file there "
            f"failed to decode (see the skipped files). Replace them with PNG or JPEG slices."
        )
    if len(dataset.class_names) < 2:
        raise DatasetInvalid(
            f"Only one class ({dataset.class_names[0]}) found in {where}; a classifier needs at "
            f"least two, for example no/ and yes/ (or notumor/ and the tumor types)."
        )
    small = {c: n for c, n in dataset.counts.items() if n < MIN_IMAGES_PER_CLASS}
    if small:
        listing = ", ".join(f"{c}: {n}" for c, n in sorted(small.items()))
        raise DatasetInvalid(
            f"Too few readable images per class ({listing}); each class needs at least "
            f"{MIN_IMAGES_PER_CLASS} so that train, validation and test all get some. Add images."
        )

def read_boxes(root: str | os.PathLike) -> dict[str, tuple[tuple[int, int, int, int], tuple[int, int]]]:
    """A root's boxes.csv -> {relative path: (inclusive tumor box (x0, y0, x1, y1), (H, W) it refers to)}.

    Empty when the root has no boxes.csv; DatasetInvalid names a malformed row.
    """
    path = Path(root) / BOXES_FILE
    if not path.is_file():
        return {}
    boxes = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                box = tuple(int(row[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
                shape = (int(row["height"]), int(row["width"]))
                name = row["file"]
            except (KeyError, TypeError, ValueError):
                raise DatasetInvalid(
                    f"{path}, line {line}: expected file,width,height,x_min,y_min,x_max,y_max "
                    "with whole-pixel numbers; fix or remove that row."
                ) from None
            if box[0] > box[2] or box[1] > box[3]:
                raise DatasetInvalid(f"{path}, line {line}: the box {box} has x_min > x_max or y_min > y_max.")
            boxes[name] = (box, shape)
    return boxes
