"""Build the train/val/test split of the shipped models and measure near-duplicate grouping.

    python bench/make_split.py [--data DIR] [--out PATH] [--seed N] [--results PATH] [--study]

Discovers kaggle-brain-mri, brain-tumor-mri-224 and figshare-boxes under DIR (default
../shared/data, or $MRI_DATA), groups near-duplicates across all three, splits whole groups
70/15/15 stratified by (root, class) with the seed, and writes the manifest (hashes,
relative paths and labels only: no pixels) to bench/splits/shipped.json. Figures (groups,
how many Kaggle images the detector finds in brain-tumor-mri-224, split sizes, timings) go
to bench/results_datasets.json. `--study` adds the threshold study that justifies
`duplicates.DUPLICATE_THRESHOLD`: for each candidate threshold, how many re-saved, resized
and cropped copies of sampled real images still match their original, and how many pairs
link images of different classes of one data set (distinct slices, so false links).
"""

from __future__ import annotations

import argparse
import io as pyio
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DEFAULT_DATA, PROJECT  # noqa: E402
from mri_core.training import data as datasets
from mri_core.training import duplicates
from mri_core.training import splits  # noqa: E402

from mri_core.io import slices as io

ROOT_NAMES = ("kaggle-brain-mri", "brain-tumor-mri-224", "figshare-boxes", "brisc2025", "br35h-extra")
SHIPPED_V1_ROOTS = ROOT_NAMES[:3]  # bench/splits/shipped.json (default-4class@4, paper-kaggle): --roots these
NOT_MRI = Path("not-mri") / "head-ct"
# Images kept for test only, with their near-duplicates: the outlined Br35H tumors (issue 21).
TEST_ONLY_ROOT = "br35h-extra"
# The head-CT files do not name their scans; `ctbrain_<kind>_<n>` are numbered through the slices
# of a few scans, so runs of this many numbers are kept together (with the near-duplicate groups).
CT_SCAN_BLOCK = 20
STUDY_THRESHOLDS = (0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98)
STUDY_SAMPLE = 200


def cross_root_matches(dataset, pairs, source: str, target: str) -> dict[str, int]:
    """How many images of root `source` match at least one image of root `target`, per class."""
    roots = np.array([r.root_name for r in dataset.records])
    found = set()
    for i, j in pairs:
        if roots[i] == source and roots[j] == target:
            found.add(int(i))
        if roots[j] == source and roots[i] == target:
            found.add(int(j))
    per_class = {c: 0 for c in sorted({r.class_name for r in dataset.records if r.root_name == source})}
    for i in found:
        per_class[dataset.records[i].class_name] += 1
    return {**per_class, "total": len(found)}


def variants(image: Image.Image) -> dict[str, Image.Image]:
    """A real slice re-saved the ways duplicates arise: resized, re-compressed, edge-cropped."""
    width, height = image.size
    cut_x, cut_y = int(0.04 * width), int(0.04 * height)
    out = {
        "resize_0.5": image.resize((width // 2, height // 2), Image.LANCZOS),
        "resize_1.7": image.resize((int(width * 1.7), int(height * 1.7)), Image.BICUBIC),
        "crop4_left": image.crop((cut_x, 0, width, height)),
        "crop4_right": image.crop((0, 0, width - cut_x, height)),
        "crop4_top": image.crop((0, cut_y, width, height)),
        "crop4_bottom": image.crop((0, 0, width, height - cut_y)),
    }
    for quality in (30, 70):
        buffer = pyio.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        out[f"jpeg_{quality}"] = Image.open(pyio.BytesIO(buffer.getvalue()))
    return out


def variant_correlations(record) -> dict[str, float]:
    original = duplicates.make_thumbnail(io.read_file(record.path)[0].pixels)
    image = Image.open(record.path).convert("L")
    out = {}
    for name, variant in variants(image).items():
        buffer = pyio.BytesIO()
        variant.save(buffer, "PNG")
        pixels = io.decode_image(buffer.getvalue(), name + ".png").pixels
        out[name] = float(original @ duplicates.make_thumbnail(pixels))
    return out


def threshold_study(dataset, thumbs: np.ndarray, seed: int) -> dict:
    """Recall on synthetic copies vs false links between classes, per candidate threshold."""
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(dataset.records), min(STUDY_SAMPLE, len(dataset.records)), replace=False)
    with ThreadPoolExecutor(max_workers=datasets.DECODE_WORKERS) as pool:
        copies = list(pool.map(lambda i: variant_correlations(dataset.records[i]), sample))
    kinds = list(copies[0])
    roots = np.array([r.root_name for r in dataset.records])
    classes = np.array([r.class_name for r in dataset.records])
    study = {"sample_images": len(sample), "copies_per_image": kinds, "thresholds": {}}
    for threshold in STUDY_THRESHOLDS:
        pairs = duplicates.near_duplicate_pairs(thumbs, threshold)
        i, j = pairs[:, 0], pairs[:, 1]
        cross_class = (roots[i] == roots[j]) & (classes[i] != classes[j])
        groups = duplicates.group_near_duplicates(thumbs, threshold)
        recall = {k: float(np.mean([c[k] >= threshold for c in copies])) for k in kinds}
        study["thresholds"][str(threshold)] = {
            "copy_recall": round(float(np.mean(list(recall.values()))), 4),
            "copy_recall_per_kind": {k: round(v, 4) for k, v in recall.items()},
            "cross_class_pairs_within_a_root": int(cross_class.sum()),
            "groups": int(groups.max() + 1),
            "largest_group": int(np.bincount(groups).max()),
        }
    study["worst_copy_correlation"] = {k: round(min(c[k] for c in copies), 4) for k in kinds}
    return study


def ct_scan_groups(dataset) -> np.ndarray:
    """Near-duplicate groups of the head-CT files, merged with runs of CT_SCAN_BLOCK slice numbers."""
    pairs = duplicates.near_duplicate_pairs(dataset.records)
    keys = {}
    for i, record in enumerate(dataset.records):
        parts = record.path.stem.split("_")
        if parts[0] == "ctbrain" and parts[-1].isdigit():
            keys.setdefault(("_".join(parts[:-1]), int(parts[-1]) // CT_SCAN_BLOCK), []).append(i)
    blocks = [(members[0], j) for members in keys.values() for j in members[1:]]
    all_pairs = np.concatenate([np.asarray(pairs, np.int64).reshape(-1, 2), np.asarray(blocks, np.int64).reshape(-1, 2)])
    return duplicates.groups_from_pairs(len(dataset.records), all_pairs)


def not_mri_split(folder: Path, seed: int):
    """(split, dataset, groups) of the not-MRI folder, whole scan groups per side."""
    dataset = datasets.discover_flat(folder)
    groups = ct_scan_groups(dataset)
    return splits.split_groups(dataset, groups, seed), dataset, groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=PROJECT / "bench" / "splits" / "mri-v2.json")
    parser.add_argument("--roots", nargs="+", default=list(ROOT_NAMES),
                        help=f"data sets under --data (shipped.json: {' '.join(SHIPPED_V1_ROOTS)})")
    parser.add_argument("--no-not-mri", action="store_true", help=f"leave out {NOT_MRI} (as shipped.json did)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=PROJECT / "bench" / "results_split_v2.json")
    parser.add_argument("--study", action="store_true", help="also run the threshold study")
    args = parser.parse_args()

    started = time.perf_counter()
    dataset = datasets.discover([args.data / name for name in args.roots])
    discovered = time.perf_counter()
    thumbs = duplicates.thumbnails(dataset.records)  # cached by discover: no second decode
    pairs = duplicates.near_duplicate_pairs(dataset.records)
    groups = duplicates.groups_from_pairs(len(dataset.records), pairs)
    grouped = time.perf_counter()
    pinned = {i: "test" for i, r in enumerate(dataset.records)
              if r.root_name == TEST_ONLY_ROOT and r.mask_path is not None}
    split = splits.split_groups(dataset, groups, args.seed, pinned=pinned)
    not_mri = None if args.no_not_mri else not_mri_split(args.data / NOT_MRI, args.seed)
    manifest = splits.write_manifest(args.out, split, dataset, groups, args.seed, not_mri=not_mri)
    naive = splits.split_naive(dataset, args.seed)
    sizes = np.bincount(groups)

    figures = {
        "data": list(args.roots),
        "test_only_pinned": len(pinned),
        "not_mri_split": None if not_mri is None else splits.split_counts(*not_mri[:2]),
        "not_mri_groups": None if not_mri is None else int(len(np.unique(not_mri[2]))),
        "images": len(dataset.records),
        "skipped": [[str(p), why] for p, why in dataset.skipped],
        "counts_per_root": dataset.counts_per_root,
        "threshold": duplicates.DUPLICATE_THRESHOLD,
        "thumbnail_size": duplicates.THUMB_SIZE,
        "near_duplicate_pairs": int(len(pairs)),
        "groups": int(len(sizes)),
        "duplicate_groups": int((sizes > 1).sum()),
        "images_in_duplicate_groups": int(sizes[sizes > 1].sum()),
        "largest_group": int(sizes.max()),
        "kaggle_found_in_brain_tumor_mri_224": cross_root_matches(dataset, pairs, ROOT_NAMES[0], ROOT_NAMES[1]),
        "figshare_found_in_brain_tumor_mri_224": cross_root_matches(dataset, pairs, ROOT_NAMES[2], ROOT_NAMES[1]),
        "seed": args.seed,
        "split_sizes": splits.split_counts(split, dataset),
        "split_totals": {s: sum(v == s for v in split.values()) for s in splits.SPLITS},
        "test_leakage_grouped": splits.leakage_count(split, groups, dataset),
        "test_leakage_naive_split": splits.leakage_count(naive, groups, dataset),
        "manifest": str(args.out.relative_to(PROJECT) if args.out.is_relative_to(PROJECT) else args.out),
        "manifest_hash": manifest["images_hash"],
        "seconds_discover_and_thumbnails": round(discovered - started, 1),
        "seconds_grouping": round(grouped - discovered, 1),
        "cpu_count": os.cpu_count(),
    }
    if args.study:
        figures["threshold_study"] = threshold_study(dataset, thumbs, args.seed)
    args.results.write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k not in ("split_sizes", "threshold_study")}, indent=1))


if __name__ == "__main__":
    main()
