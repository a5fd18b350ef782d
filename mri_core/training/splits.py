"""Splits and their manifests: which image is in train, validation or test.

`split_groups` keeps each group of near-duplicates (`duplicates.group_near_duplicates`) on
one side of the split; `split_naive` is the per-image split the seed paper used, kept for
the reproduction study. A split is a dict sha256 -> "train"|"val"|"test", keyed by the
file's content hash, and is saved as a JSON manifest that holds no pixels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from mri_core.io.atomic import write_text_atomic
from mri_core.io.errors import DatasetInvalid
from mri_core.training.data import Dataset, ImageRecord
from mri_core.training.duplicates import DUPLICATE_THRESHOLD, THUMB_SIZE

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)

def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise DatasetInvalid(
            f"Split fractions must be three non-negative numbers (train, val, test) that sum to 1, "
            f"got {fractions}."
        )
    return fractions


def stratum_key(record: ImageRecord) -> tuple[str, str, str]:
    """(root, class, plane): what a split keeps in proportion (plane "unknown" where unnamed)."""
    return record.root_name, record.class_name, record.plane


def _strata(dataset: Dataset) -> tuple[np.ndarray, int]:
    """Per record, the index of its (root, class, plane) stratum; and how many strata."""
    keys = sorted({stratum_key(r) for r in dataset.records})
    index = {key: i for i, key in enumerate(keys)}
    return np.array([index[stratum_key(r)] for r in dataset.records], np.int64), len(keys)


def split_groups(
    dataset: Dataset,
    groups: np.ndarray,
    seed: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    pinned: Mapping[int, str] | None = None,
) -> dict[str, str]:
    """Whole near-duplicate groups -> train/val/test, each (root, class, plane) close to `fractions`.

    Greedy: groups in a seeded random order, biggest first, each into the split whose
    targets for the group's strata are least filled (largest relative deficit). `pinned`
    (record index -> split) places a record's whole group first (for example a test-only set:
    its near-duplicates elsewhere go to test with it). Returns sha256 -> split.
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
    fixed: dict[int, int] = {}
    for index, part in (pinned or {}).items():
        group = int(groups[index])
        if fixed.get(group, SPLITS.index(part)) != SPLITS.index(part):
            raise DatasetInvalid(f"Pinned images of one near-duplicate group ask for two splits ({part} and "
                                 f"{SPLITS[fixed[group]]}); pin the whole group to one.")
        fixed[group] = SPLITS.index(part)
    for g, side in fixed.items():
        side_of_group[g] = side
        have[:, side] += np.bincount(stratum[members[g]], minlength=n_strata)
    order = [g for g in order if g not in fixed]
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
    not_mri: tuple[Mapping[str, str], Dataset, np.ndarray] | None = None,
) -> dict:
    """The manifest as a dict: a header and sha256 -> {split, class, root, path, group[, plane]}.

    `not_mri` (split, flat Dataset, groups), when given, adds a `not_mri` section of the same
    entries for images that are not brain MRI (never a tumor class).
    """
    images = _entries(split, dataset, groups)
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
    if not_mri is not None:
        entries = _entries(*not_mri)
        manifest["not_mri_counts"] = split_counts(*not_mri[:2])
        manifest["not_mri_hash"] = _hash_images(entries)
        manifest["not_mri"] = entries
        manifest = {**{k: v for k, v in manifest.items() if k != "images"}, "images": images}  # images last
    return manifest


def _entries(split: Mapping[str, str], dataset: Dataset, groups: np.ndarray) -> dict[str, dict]:
    entries: dict[str, dict] = {}
    for record, group in zip(dataset.records, groups):
        if record.sha256 in entries or record.sha256 not in split:
            continue  # an identical copy: the first path stands for both
        entries[record.sha256] = {
            "split": split[record.sha256],
            "class": record.class_name,
            "root": record.root_name,
            "path": record.relative_path,
            "group": int(group),
        }
        if record.plane != "unknown":
            entries[record.sha256]["plane"] = record.plane
    return entries


def not_mri_split(manifest: Mapping, dataset: Dataset) -> dict[str, str]:
    """The manifest's split for a not-MRI Dataset (`data.discover_flat`): sha256 -> split.

    DatasetInvalid when the manifest has no not-MRI section; images it does not list go to
    no split (logged)."""
    entries = manifest.get("not_mri")
    if not isinstance(entries, dict):
        raise DatasetInvalid("The split manifest has no not-MRI section; rebuild it with bench/make_split.py "
                             "--not-mri DIR, or train without --not-mri.")
    unlisted = [r for r in dataset.records if r.sha256 not in entries]
    if unlisted:
        log.warning("%d not-MRI image(s) not in the split manifest go to no split", len(unlisted))
    return {r.sha256: entries[r.sha256]["split"] for r in dataset.records if r.sha256 in entries}


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
    header = {k: v for k, v in manifest.items() if k not in ("images", "not_mri")}
    text = json.dumps(header, indent=1)[:-2]  # drop the closing "\n}"
    for section in ("not_mri", "images"):
        if section in manifest:
            lines = [f" {json.dumps(sha)}: {json.dumps(entry, separators=(', ', ': '))}"
                     for sha, entry in manifest[section].items()]
            text += f',\n "{section}": {{\n' + ",\n".join(lines) + "\n }"
    return text + "\n}\n"


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
    not_mri = manifest.get("not_mri")
    if not_mri is not None and (not isinstance(not_mri, dict) or manifest.get("not_mri_hash") != _hash_images(not_mri)):
        raise DatasetInvalid(
            f"The split manifest {path} was edited: its not-MRI images no longer match their not_mri_hash. "
            f"Restore it from git or rebuild it with bench/make_split.py."
        )
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
