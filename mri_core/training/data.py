"""Training data: discover folder-per-class roots, group near-duplicates, split, manifest.

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
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from mri_core.io import slices as io

from mri_core.io import preprocess
from mri_core.io.atomic import write_text_atomic
from mri_core.io.errors import DatasetInvalid, MriError
from mri_core.io.zips import IGNORED_NAMES

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

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)

# --- near-duplicate thumbnails -----------------------------------------------------------

# Every image is first brought to this many pixels a side, so that blur and mask do not
# depend on its size (a copy at half size must give the same thumbnail).
THUMB_SEARCH_SIDE = 256
THUMB_SIZE = 24  # thumbnails are THUMB_SIZE x THUMB_SIZE
THUMB_BLUR_SIGMA = 2.0  # at search size: noise and JPEG blocks do not move the head mask
# "Head" = brighter than this fraction of the 99th percentile of the blurred head box.
THUMB_HEAD_FRACTION = 0.2
# The frame is the median of the head mask +- this many robust standard deviations
# (IQR / 1.35) per axis. Quantiles, unlike a bounding box or mean and std, barely move
# when a few % is cut off one edge (a 4 % cut moves a box edge by 4 %); measured on 200
# real slices, mean/std framing matched 87 % of 4 %-bottom-cut copies, quartiles 98 %.
THUMB_FRAME_SIGMAS = 2.0
# Subtract a blur of this sigma (in thumbnail pixels): removes the head's outline and
# brightness ramp, which every axial slice shares, so that what correlates is anatomy.
THUMB_HIGHPASS_SIGMA = 6.0
# Two thumbnails whose Pearson correlation is at least this show the same slice.
# Chosen on all 7,590 shared images (`bench/make_split.py --study`, figures in
# bench/results_datasets.json). Copies of 200 sampled images at 0.97: resized (0.5x,
# 1.7x) and JPEG (q30, q70) copies match 99.5-100 %, 4 %-edge cuts 98-99.5 % (left,
# right, top) and 91.5 % (bottom: a cut through a neck that runs off the image).
# Distinct slices: at 0.97 no pair links two classes of one data set and the largest
# group is 35 copies of one web-scraped slice; at 0.96 seven pairs do and a chain of 146
# forms, at 0.95 133 pairs and 522. Best-match correlations have no clean gap: neighbouring
# slices of one patient (figshare) reach 0.97-0.98, so some of them still link, which errs
# on the safe side (it keeps a patient on one side of the split).
DUPLICATE_THRESHOLD = 0.97
_BLOCK_ROWS = 1024  # rows of the correlation matrix computed at once (1024 x N float32)

_thumbnail_cache: dict[str, np.ndarray] = {}
_cache_lock = threading.Lock()


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
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not _ignored(p))
    unknown = [p.name for p in folders if p.name.lower() not in FOLDER_CLASSES]
    if unknown:
        raise DatasetInvalid(
            f"{root} has folder(s) {', '.join(repr(n) for n in unknown)} that are not class names. "
            f"Accepted class folders (any letter case): {_accepted_names()}. Rename or remove them."
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
    if sha256 not in _thumbnail_cache:
        thumbnail = make_thumbnail(slice_.pixels)
        with _cache_lock:
            _thumbnail_cache[sha256] = thumbnail
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


# --- near-duplicates ---------------------------------------------------------------------

def make_thumbnail(pixels: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """(H, W) float in [0, 1] -> float32 (size*size,) z-scored / size, so a dot product is r.

    The frame follows the head (brain_crop_box, then the quartiles of the head mask inside
    it), so the same slice resized, re-compressed or with a few % cut off an edge gives
    nearly the same thumbnail; a high-pass keeps the anatomy that tells slices apart.
    """
    pixels = np.asarray(pixels, np.float32)
    height, width = pixels.shape
    scale = THUMB_SEARCH_SIDE / max(height, width)
    small_size = (max(2, round(width * scale)), max(2, round(height * scale)))
    shrinking = scale < 1
    small = cv2.resize(pixels, small_size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    x0, y0, x1, y1 = preprocess.brain_crop_box(small)
    head = cv2.GaussianBlur(small, (0, 0), THUMB_BLUR_SIGMA)[y0:y1 + 1, x0:x1 + 1]
    level = np.percentile(head, 99)
    ys, xs = np.nonzero(head > THUMB_HEAD_FRACTION * level) if level > 0 else ((), ())
    if len(xs) < 4:  # blank image: frame the whole thing
        centre, spread = np.array(small_size) / 2, np.array(small_size) / 4
    else:
        (qx25, qx50, qx75), (qy25, qy50, qy75) = np.percentile(xs, [25, 50, 75]), np.percentile(ys, [25, 50, 75])
        centre = np.array([qx50 + x0, qy50 + y0])
        spread = np.maximum(np.array([qx75 - qx25, qy75 - qy25]) / 1.35, 1.0)
    frame = _crop_frame(small, centre - THUMB_FRAME_SIGMAS * spread, centre + THUMB_FRAME_SIGMAS * spread)
    thumb = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)  # (size, size)
    thumb = thumb - cv2.GaussianBlur(thumb, (0, 0), THUMB_HIGHPASS_SIGMA * size / THUMB_SIZE)
    thumb = thumb.ravel()
    thumb = thumb - thumb.mean()
    norm = float(np.linalg.norm(thumb))
    return (thumb / norm if norm > 1e-8 else thumb).astype(np.float32)


def _crop_frame(image: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(h, w) -> the (x, y) frame [low, high) rounded to pixels, padded with 0 outside."""
    x0, y0 = np.floor(low).astype(int)
    x1, y1 = np.ceil(high).astype(int)
    x1, y1 = max(x1, x0 + 2), max(y1, y0 + 2)
    height, width = image.shape
    out = np.zeros((y1 - y0, x1 - x0), np.float32)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if ix0 < ix1 and iy0 < iy1:
        out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = image[iy0:iy1, ix0:ix1]
    return out


def thumbnails(records: Sequence[ImageRecord]) -> np.ndarray:
    """Records -> float32 (N, THUMB_SIZE**2) unit thumbnails, cached per sha256 in memory."""
    missing = [r for r in records if r.sha256 not in _thumbnail_cache]

    def compute(record: ImageRecord) -> None:
        pixels = io.read_file(record.path)[0].pixels
        thumbnail = make_thumbnail(pixels)
        with _cache_lock:
            _thumbnail_cache[record.sha256] = thumbnail

    with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
        list(pool.map(compute, missing))
    if not records:
        return np.zeros((0, THUMB_SIZE * THUMB_SIZE), np.float32)
    return np.stack([_thumbnail_cache[r.sha256] for r in records])


def _as_thumbnails(records_or_thumbnails) -> tuple[np.ndarray, list[str] | None]:
    """Records or an (N, d) / (N, s, s) array -> ((N, d) unit rows, sha256s or None)."""
    if isinstance(records_or_thumbnails, np.ndarray):
        array = records_or_thumbnails.reshape(len(records_or_thumbnails), -1).astype(np.float32)
        return array, None
    records = list(records_or_thumbnails)
    return thumbnails(records), [r.sha256 for r in records]


def near_duplicate_pairs(records_or_thumbnails, threshold: float = DUPLICATE_THRESHOLD) -> np.ndarray:
    """Records (or thumbnails) -> int (P, 2) pairs (i < j) that show the same slice.

    Two images pair when their thumbnails correlate >= threshold, or their bytes are equal.
    """
    thumbs, hashes = _as_thumbnails(records_or_thumbnails)
    n = len(thumbs)
    pairs = []
    for start in range(0, n, _BLOCK_ROWS):
        block = thumbs[start:start + _BLOCK_ROWS] @ thumbs.T  # (b, N) correlations
        rows, cols = np.nonzero(block >= threshold)
        rows = rows + start
        keep = cols > rows
        pairs.append(np.stack([rows[keep], cols[keep]], axis=1))
    if hashes is not None:  # identical files are one image, even if blank (no correlation)
        first: dict[str, int] = {}
        for i, sha256 in enumerate(hashes):
            if sha256 in first:
                pairs.append(np.array([[first[sha256], i]]))
            else:
                first[sha256] = i
    pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), int)
    return np.unique(pairs.astype(np.int64), axis=0) if len(pairs) else pairs.reshape(0, 2).astype(np.int64)


def matches_per_record(records_or_thumbnails, threshold: float = DUPLICATE_THRESHOLD) -> list[list[int]]:
    """Records (or thumbnails) -> for each, the sorted indices of the others it matches."""
    n = len(records_or_thumbnails)
    matches: list[list[int]] = [[] for _ in range(n)]
    for i, j in near_duplicate_pairs(records_or_thumbnails, threshold):
        matches[i].append(int(j))
        matches[j].append(int(i))
    return [sorted(m) for m in matches]


def group_near_duplicates(records_or_thumbnails, threshold: float = DUPLICATE_THRESHOLD) -> np.ndarray:
    """Records (or thumbnails) -> int (N,) group ids 0..G-1, numbered by first member.

    Groups are the connected components of the near-duplicate pairs, so a chain of
    matches (A~B, B~C) is one group.
    """
    return groups_from_pairs(len(records_or_thumbnails), near_duplicate_pairs(records_or_thumbnails, threshold))


def groups_from_pairs(n: int, pairs: np.ndarray) -> np.ndarray:
    """n items and (P, 2) linked pairs -> int (n,) connected-component ids, by first member."""
    if n == 0:
        return np.zeros(0, np.int64)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # Renumber by first appearance so ids do not depend on scipy's internal order.
    _, first_index = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first_index))
    return order[labels].astype(np.int64)


# --- splits ------------------------------------------------------------------------------

def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise DatasetInvalid(
            f"Split fractions must be three non-negative numbers (train, val, test) that sum to 1, "
            f"got {fractions}."
        )
    return fractions


def _strata(dataset: Dataset) -> tuple[np.ndarray, int]:
    """Per record, the index of its (root, class) stratum; and how many strata."""
    keys = sorted({(r.root_name, r.class_name) for r in dataset.records})
    index = {key: i for i, key in enumerate(keys)}
    return np.array([index[(r.root_name, r.class_name)] for r in dataset.records], np.int64), len(keys)


def split_groups(
    dataset: Dataset,
    groups: np.ndarray,
    seed: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict[str, str]:
    """Whole near-duplicate groups -> train/val/test, each (root, class) close to `fractions`.

    Greedy: groups in a seeded random order, biggest first, each into the split whose
    targets for the group's strata are least filled (largest relative deficit).
    Returns sha256 -> split.
    """
    fractions = np.array(_check_fractions(fractions))
    groups = np.asarray(groups)
    if len(groups) != len(dataset.records):
        raise ValueError(f"expected one group id per record ({len(dataset.records)}), got {len(groups)}")
    stratum, n_strata = _strata(dataset)
    stratum_sizes = np.bincount(stratum, minlength=n_strata).astype(float)
    target = stratum_sizes[:, None] * fractions[None, :]  # (strata, 3) images wanted
    have = np.zeros_like(target)
    members = _group_members(groups)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(members))
    order = sorted(order, key=lambda g: -len(members[g]))  # stable: random among equal sizes
    side_of_group = np.zeros(len(members), np.int64)
    for g in order:
        counts = np.bincount(stratum[members[g]], minlength=n_strata).astype(float)  # (strata,)
        # Relative deficit after placing the group, weighted by how many members each stratum has.
        with np.errstate(divide="ignore", invalid="ignore"):
            deficit = np.where(target > 0, (target - have - counts[:, None]) / target, -np.inf)
        score = (counts[:, None] * deficit).sum(axis=0) / counts.sum()  # (3,)
        score[fractions == 0] = -np.inf
        best = np.flatnonzero(score == score.max())
        side = int(best[0] if len(best) == 1 else rng.choice(best))
        side_of_group[g] = side
        have[:, side] += counts
    return {r.sha256: SPLITS[side_of_group[groups[i]]] for i, r in enumerate(dataset.records)}


def _group_members(groups: np.ndarray) -> list[np.ndarray]:
    """(N,) group ids -> for each group id, the record indices in it."""
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    return [np.asarray(m) for m in np.split(order, bounds)] if len(order) else []


def split_naive(
    dataset: Dataset, seed: int, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> dict[str, str]:
    """Per-image random split stratified by (root, class), ignoring near-duplicates.

    What the seed paper did; kept for the reproduction study. Files with identical bytes
    share a sha256 and so still share a split. Returns sha256 -> split.
    """
    fractions = _check_fractions(fractions)
    rng = np.random.default_rng(seed)
    stratum, n_strata = _strata(dataset)
    split: dict[str, str] = {}
    for s in range(n_strata):
        hashes = sorted({dataset.records[i].sha256 for i in np.flatnonzero(stratum == s)} - set(split))
        hashes = [hashes[i] for i in rng.permutation(len(hashes))]
        sizes = _allocate(len(hashes), fractions)
        bounds = np.cumsum(sizes)[:-1]
        for side, part in zip(SPLITS, np.split(np.array(hashes, dtype=object), bounds)):
            split.update({h: side for h in part})
    return split


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """n items -> counts per split summing to n (largest remainder)."""
    raw = np.array(fractions) * n
    sizes = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[i] += 1
    return sizes.tolist()


def leakage_count(split: Mapping[str, str], groups: np.ndarray, dataset: Dataset) -> int:
    """How many test images have a near-duplicate (a member of their group) in train."""
    sides = [split.get(r.sha256) for r in dataset.records]
    train_groups = {int(g) for g, side in zip(groups, sides) if side == "train"}
    return sum(side == "test" and int(g) in train_groups for g, side in zip(groups, sides))


def split_counts(split: Mapping[str, str], dataset: Dataset) -> dict[str, dict[str, dict[str, int]]]:
    """split -> root name -> class -> images (records, so identical copies count twice)."""
    counts: dict[str, dict[str, dict[str, int]]] = {side: {} for side in SPLITS}
    for record in dataset.records:
        side = split.get(record.sha256)
        if side is None:
            continue
        per_class = counts[side].setdefault(record.root_name, {})
        per_class[record.class_name] = per_class.get(record.class_name, 0) + 1
    return counts


# --- manifests ---------------------------------------------------------------------------

MANIFEST_FORMAT = "mri-split-manifest"
MANIFEST_VERSION = 1


def build_manifest(
    split: Mapping[str, str],
    dataset: Dataset,
    groups: np.ndarray,
    seed: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    method: str = "grouped",
    threshold: float = DUPLICATE_THRESHOLD,
) -> dict:
    """The manifest as a dict: a header and sha256 -> {split, class, root, path, group}."""
    images: dict[str, dict] = {}
    for record, group in zip(dataset.records, groups):
        if record.sha256 in images or record.sha256 not in split:
            continue  # an identical copy: the first path stands for both
        images[record.sha256] = {
            "split": split[record.sha256],
            "class": record.class_name,
            "root": record.root_name,
            "path": record.relative_path,
            "group": int(group),
        }
    sizes = np.bincount(np.asarray(groups)) if len(groups) else np.zeros(0, int)
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "method": method,
        "seed": int(seed),
        "fractions": dict(zip(SPLITS, (float(f) for f in _check_fractions(fractions)))),
        "roots": sorted({r.root_name for r in dataset.records}),
        "counts": split_counts(split, dataset),
        "grouping": {
            "thumbnail_size": THUMB_SIZE,
            "threshold": float(threshold),
            "groups": int(len(sizes)),
            "duplicate_groups": int((sizes > 1).sum()),
            "images_in_duplicate_groups": int(sizes[sizes > 1].sum()),
        },
        "images_hash": _hash_images(images),
        "images": images,
    }
    return manifest


def write_manifest(
    path: str | os.PathLike,
    split: Mapping[str, str],
    dataset: Dataset,
    groups: np.ndarray,
    seed: int,
    **options,
) -> dict:
    """Write the split as a JSON manifest (atomically); returns the manifest dict.

    `options` are build_manifest's (fractions, method, threshold).
    """
    manifest = build_manifest(split, dataset, groups, seed, **options)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, _format_manifest(manifest))
    return manifest


def _format_manifest(manifest: Mapping) -> str:
    """Indented header, then one line per image: readable, and small diffs in git."""
    header = {k: v for k, v in manifest.items() if k != "images"}
    text = json.dumps(header, indent=1)[:-2]  # drop the closing "\n}"
    lines = [f" {json.dumps(sha)}: {json.dumps(entry, separators=(', ', ': '))}"
             for sha, entry in manifest["images"].items()]
    return text + ',\n "images": {\n' + ",\n".join(lines) + "\n }\n}\n"


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


def read_manifest(path: str | os.PathLike) -> dict:
    """Read and check a split manifest; DatasetInvalid says what is wrong with it."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetInvalid(f"The split manifest {path} does not exist; check the path.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetInvalid(
            f"The split manifest {path} is not readable JSON ({exc}); restore it from git "
            f"or rebuild it with bench/make_split.py."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise DatasetInvalid(f"{path} is not a split manifest (no \"format\": \"{MANIFEST_FORMAT}\").")
    images = manifest.get("images")
    if not isinstance(images, dict) or not all(
        isinstance(v, dict) and v.get("split") in SPLITS for v in images.values()
    ):
        raise DatasetInvalid(
            f"The split manifest {path} is damaged: \"images\" must map each sha256 to an entry "
            f"with a split of {', '.join(SPLITS)}. Restore it from git."
        )
    recorded = manifest.get("images_hash")
    if recorded and recorded != _hash_images(images):
        raise DatasetInvalid(
            f"The split manifest {path} was edited: its images no longer match its images_hash. "
            f"Restore it from git or rebuild it with bench/make_split.py."
        )
    return manifest


def _hash_images(images: Mapping[str, dict]) -> str:
    canonical = json.dumps(images, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def manifest_hash(path_or_manifest: str | os.PathLike | Mapping) -> str:
    """sha256 of a manifest's canonical images mapping (what a model card records)."""
    manifest = path_or_manifest if isinstance(path_or_manifest, Mapping) else read_manifest(path_or_manifest)
    return _hash_images(manifest["images"])


@dataclass(frozen=True)
class ManifestCheck:
    unlisted: tuple[ImageRecord, ...]  # in the data, not in the manifest
    missing: tuple[str, ...]  # sha256s in the manifest, not in the data
    relabelled: tuple[ImageRecord, ...]  # in both, but with another class


def check_manifest(dataset: Dataset, manifest: Mapping) -> ManifestCheck:
    """Compare a data set with a manifest by content hash."""
    images = manifest["images"]
    present = {r.sha256 for r in dataset.records}
    return ManifestCheck(
        unlisted=tuple(r for r in dataset.records if r.sha256 not in images),
        missing=tuple(sorted(set(images) - present)),
        relabelled=tuple(
            r for r in dataset.records
            if r.sha256 in images and images[r.sha256].get("class") != r.class_name
        ),
    )


def apply_manifest(dataset: Dataset, manifest: Mapping, allow_unlisted: bool = False) -> dict[str, str]:
    """The manifest's split for the images of `dataset`: sha256 -> split.

    Images the manifest does not list are an error (the split would not be the one the
    manifest describes), or with `allow_unlisted` go to no split (logged with their count).
    Manifest images absent from the data are logged with their count. An image whose
    class differs from the manifest's is always an error.
    """
    check = check_manifest(dataset, manifest)
    if check.relabelled:
        first = check.relabelled[0]
        raise DatasetInvalid(
            f"{len(check.relabelled)} image(s) have another class than in the split manifest, "
            f"for example {first.path} is {first.class_name} here but "
            f"{manifest['images'][first.sha256]['class']} in the manifest. Use the data the manifest was made for."
        )
    if check.unlisted and not allow_unlisted:
        examples = ", ".join(str(r.path) for r in check.unlisted[:3])
        raise DatasetInvalid(
            f"{len(check.unlisted)} image(s) are not in the split manifest (for example {examples}); "
            f"train on the data the manifest was made for, or without a manifest to split afresh."
        )
    if check.unlisted:
        log.warning("%d image(s) not in the split manifest go to no split", len(check.unlisted))
    if check.missing:
        log.warning("%d image(s) of the split manifest are not in the data", len(check.missing))
    images = manifest["images"]
    return {r.sha256: images[r.sha256]["split"] for r in dataset.records if r.sha256 in images}
