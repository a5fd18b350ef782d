"""mri_core.training.splits: splits keep every group on one side; manifests round-trip and are checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from subsets import first_images, link_images, make_root

from mri_core.io.errors import DatasetInvalid
from mri_core.training import duplicates, splits
from mri_core.training.data import discover
from mri_core.training.duplicates import group_near_duplicates
from mri_core.training.splits import (apply_manifest, leakage_count, manifest_hash, read_manifest, split_groups,
                                      split_naive, write_manifest)

PROJECT = Path(__file__).resolve().parents[2]
SHIPPED_MANIFEST = PROJECT / "bench" / "splits" / "shipped.json"


def test_kaggle_holds_near_duplicates_that_a_naive_split_leaks(kaggle, kaggle_groups):
    sizes = np.bincount(kaggle_groups)
    assert len(kaggle_groups) == len(kaggle.records) == 253
    assert (sizes > 1).sum() >= 10  # the data README: all three sets hold near-duplicates
    assert sizes.max() < 30  # no runaway chain of distinct slices
    naive = split_naive(kaggle, seed=0)
    assert leakage_count(naive, kaggle_groups, kaggle) > 0


# --- splits ------------------------------------------------------------------------------

def test_grouped_split_keeps_each_group_on_one_side_with_stratified_fractions(kaggle, kaggle_groups):
    split = split_groups(kaggle, kaggle_groups, seed=0)

    assert set(split) == {r.sha256 for r in kaggle.records}
    sides_of_group: dict[int, set] = {}
    for record, group in zip(kaggle.records, kaggle_groups):
        sides_of_group.setdefault(int(group), set()).add(split[record.sha256])
    assert all(len(sides) == 1 for sides in sides_of_group.values())
    assert leakage_count(split, kaggle_groups, kaggle) == 0
    counts = splits.split_counts(split, kaggle)
    for class_name, total in kaggle.counts.items():
        for side, fraction in zip(splits.SPLITS, splits.DEFAULT_FRACTIONS):
            share = counts[side]["kaggle-brain-mri"][class_name] / total
            assert abs(share - fraction) <= 0.04, (class_name, side, share)


def test_split_is_reproducible_from_its_seed(kaggle, kaggle_groups):
    first = split_groups(kaggle, kaggle_groups, seed=0)
    assert split_groups(kaggle, kaggle_groups, seed=0) == first
    assert split_groups(kaggle, kaggle_groups, seed=1) != first
    assert split_naive(kaggle, seed=3) == split_naive(kaggle, seed=3)
    assert split_naive(kaggle, seed=3) != split_naive(kaggle, seed=4)


def test_naive_split_has_exact_per_class_fractions(kaggle):
    split = split_naive(kaggle, seed=0)
    counts = splits.split_counts(split, kaggle)["test"]["kaggle-brain-mri"]
    unique = {c: len({r.sha256 for r in kaggle.records if r.class_name == c}) for c in kaggle.class_names}
    for class_name, n in unique.items():
        assert abs(counts[class_name] - 0.15 * n) <= 1.5  # copies with equal bytes may add one


def test_bad_fractions_are_refused(kaggle, kaggle_groups):
    with pytest.raises(DatasetInvalid, match="sum to 1"):
        split_groups(kaggle, kaggle_groups, seed=0, fractions=(0.8, 0.15, 0.15))


# --- manifests ---------------------------------------------------------------------------

def test_manifest_round_trip_and_hash_stability(tmp_path, kaggle, kaggle_groups):
    split = split_groups(kaggle, kaggle_groups, seed=0)
    path = tmp_path / "split.json"

    written = write_manifest(path, split, kaggle, kaggle_groups, seed=0)
    manifest = read_manifest(path)

    assert apply_manifest(kaggle, manifest) == split
    assert manifest["seed"] == 0 and manifest["roots"] == ["kaggle-brain-mri"]
    assert manifest["images_hash"] == manifest_hash(path) == manifest_hash(written)
    some_sha = kaggle.records[0].sha256
    assert manifest["images"][some_sha]["path"] == kaggle.records[0].relative_path
    assert manifest["counts"]["test"]["kaggle-brain-mri"]["tumor"] > 0
    again = write_manifest(tmp_path / "again.json", split, kaggle, kaggle_groups, seed=0)
    assert manifest_hash(again) == manifest_hash(written)
    other = write_manifest(tmp_path / "other.json", split_groups(kaggle, kaggle_groups, seed=1),
                           kaggle, kaggle_groups, seed=1)
    assert manifest_hash(other) != manifest_hash(written)


def test_an_edited_manifest_is_refused(tmp_path, kaggle, kaggle_groups):
    path = tmp_path / "split.json"
    write_manifest(path, split_groups(kaggle, kaggle_groups, seed=0), kaggle, kaggle_groups, seed=0)
    manifest = json.loads(path.read_text())
    entry = next(iter(manifest["images"].values()))
    entry["split"] = "train" if entry["split"] != "train" else "test"
    path.write_text(json.dumps(manifest))
    with pytest.raises(DatasetInvalid, match="was edited"):
        read_manifest(path)
    path.write_text("{not json")
    with pytest.raises(DatasetInvalid, match="not readable JSON"):
        read_manifest(path)


def test_images_missing_from_the_manifest_are_an_error_or_left_out(tmp_path, kaggle_dir):
    root = make_root(tmp_path, kaggle_dir, no=8, yes=8)
    dataset = discover([root])
    groups = group_near_duplicates(dataset.records)
    manifest = write_manifest(tmp_path / "m.json", split_groups(dataset, groups, 0), dataset, groups, 0)
    link_images(first_images(kaggle_dir / "yes", 10)[8:], root / "yes")
    bigger = discover([root])

    with pytest.raises(DatasetInvalid, match="2 image\\(s\\) are not in the split manifest"):
        apply_manifest(bigger, manifest)
    split = apply_manifest(bigger, manifest, allow_unlisted=True)
    assert len(split) == len(manifest["images"])


def test_shipped_manifest_covers_the_kaggle_set_with_its_labels(kaggle):
    manifest = read_manifest(SHIPPED_MANIFEST)
    check = splits.check_manifest(kaggle, manifest)
    assert check.unlisted == () and check.relabelled == ()
    assert manifest["seed"] == 0
    assert manifest["roots"] == sorted(["kaggle-brain-mri", "brain-tumor-mri-224", "figshare-boxes"])
    assert manifest["grouping"]["threshold"] == duplicates.DUPLICATE_THRESHOLD
    sides = {side: sum(e["split"] == side for e in manifest["images"].values()) for side in splits.SPLITS}
    total = sum(sides.values())
    assert abs(sides["test"] / total - 0.15) < 0.02 and abs(sides["train"] / total - 0.7) < 0.02


def test_pinned_images_take_their_whole_group_to_the_pinned_split(kaggle, kaggle_groups):
    sizes = np.bincount(kaggle_groups)
    in_group = int(np.flatnonzero(sizes[kaggle_groups] > 1)[0])  # an image with near-duplicates
    for part in ("test", "train"):
        split = split_groups(kaggle, kaggle_groups, seed=0, pinned={in_group: part})
        members = np.flatnonzero(kaggle_groups == kaggle_groups[in_group])
        assert {split[kaggle.records[i].sha256] for i in members} == {part}
    other = int(np.flatnonzero(kaggle_groups == kaggle_groups[in_group])[1])
    with pytest.raises(DatasetInvalid, match="two splits"):
        split_groups(kaggle, kaggle_groups, seed=0, pinned={in_group: "test", other: "train"})


def test_the_v2_manifest_holds_every_mri_set_by_plane_and_the_head_ct_by_scan_group(data_root):
    manifest = read_manifest(Path(__file__).resolve().parents[2] / "bench" / "splits" / "mri-v2.json")
    assert manifest["roots"] == sorted(["kaggle-brain-mri", "brain-tumor-mri-224", "figshare-boxes", "brisc2025",
                                        "br35h-extra"])
    images = manifest["images"].values()
    brisc = [e for e in images if e["root"] == "brisc2025"]
    assert {e["plane"] for e in brisc} == {"axial", "coronal", "sagittal"}
    # the 32 outlined Br35H tumors are test-only, and so is every near-duplicate of them
    outlined = {p.stem for p in (data_root / "br35h-extra" / "masks").iterdir()}
    pinned = [e for e in images if e["root"] == "br35h-extra" and Path(e["path"]).stem in outlined]
    assert len(pinned) == len(outlined) == 32 and {e["split"] for e in pinned} == {"test"}
    pinned_groups = {e["group"] for e in pinned}
    assert {e["split"] for e in images if e["group"] in pinned_groups} == {"test"}
    # no near-duplicate group spans two splits
    sides: dict[int, set] = {}
    for entry in images:
        sides.setdefault(entry["group"], set()).add(entry["split"])
    assert all(len(s) == 1 for s in sides.values())
    ct = manifest["not_mri"].values()
    assert {e["class"] for e in ct} == {"not_mri"} and {e["split"] for e in ct} == set(splits.SPLITS)
    ct_sides: dict[int, set] = {}
    for entry in ct:
        ct_sides.setdefault(entry["group"], set()).add(entry["split"])
    assert all(len(s) == 1 for s in ct_sides.values())


def test_an_edited_not_mri_section_is_refused(tmp_path):
    source = Path(__file__).resolve().parents[2] / "bench" / "splits" / "mri-v2.json"
    manifest = json.loads(source.read_text())
    first = next(iter(manifest["not_mri"]))
    manifest["not_mri"][first]["split"] = "train" if manifest["not_mri"][first]["split"] != "train" else "test"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(manifest))
    with pytest.raises(DatasetInvalid, match="not-MRI"):
        read_manifest(edited)
