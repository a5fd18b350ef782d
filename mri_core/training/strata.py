"""Figures of readings per stratum: what the verdict, the mask and the heatmap do on every source,
class and plane of a test split, each rate with its 95 % interval.

A test split shares the styles of the training data, so these are upper bounds; reporting them
per stratum shows where a model learned a data set instead of the tumor (issue 21). Works on
`Reading`s as the app and CLI make them (verdict, mask, heatmap, cam_peak), so what is measured
is what a clinician sees. Plain NumPy; the readings come from `inference`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mri_core.io import slices as io
from mri_core.training.audit import bootstrap_interval, rate_with_interval
from mri_core.training import data as datasets
from mri_core.training.data import NO_TUMOR_CLASSES, NOT_MRI_CLASS, TUMOR_TYPES
from mri_core.training.evaluate import expected_calibration_error

DEFERRED = ("uncertain", "cannot_read")
MIN_STRATUM = 30  # a stratum this small or smaller is reported but not judged
CAM_MASK_LEVEL = 0.5  # the heatmap as a mask: at or above half its peak
NOT_MRI_FOLDER = Path("not-mri") / "head-ct"  # where a manifest's not_mri section lies under the data folder


@dataclass(frozen=True)
class Item:
    """One test image and what is known about it."""

    path: Path
    source: str  # data root ("brisc2025", "head-ct" ...)
    class_name: str  # "glioma" ... "notumor", "tumor" (type unknown), "not_mri"
    plane: str = "unknown"
    mask_path: Path | None = None  # the tumor outline, when there is one
    box: tuple[int, int, int, int] | None = None  # the tumor box (x0, y0, x1, y1), when only that is known

    @property
    def is_mri(self) -> bool:
        return self.class_name != NOT_MRI_CLASS

    @property
    def is_tumor(self) -> bool:
        return self.is_mri and self.class_name not in NO_TUMOR_CLASSES

    @property
    def healthy_stratum(self) -> str:
        return f"{self.source}/{self.plane}"


def manifest_items(manifest: dict, data: Path, part: str, unseen_by: dict | None = None,
                   per_stratum: int | None = None, seed: int = 0) -> list[Item]:
    """A split manifest's `part` as `Item`s under `data` (outline or box where known), MRI then not-MRI."""
    boxes = {root: datasets.read_boxes(data / root) for root in manifest["roots"]}
    seen_groups = set()
    if unseen_by is not None:
        seen = {sha for sha, e in unseen_by["images"].items() if e["split"] in ("train", "val")}
        seen_groups = {e["group"] for sha, e in manifest["images"].items() if sha in seen}
    items = []
    for section, folder in (("images", None), ("not_mri", NOT_MRI_FOLDER)):
        for entry in manifest.get(section, {}).values():
            if entry["split"] != part or (section == "images" and entry["group"] in seen_groups):
                continue
            root = data / (folder or entry["root"])
            path = root / entry["path"]
            mask = root / datasets.MASKS_DIR / f"{Path(entry['path']).stem}.png"
            box = boxes.get(entry["root"], {}).get(entry["path"])
            items.append(Item(path, entry["root"], entry["class"], entry.get("plane", "unknown"),
                                     mask if mask.is_file() else None, box[0] if box else None))
    if per_stratum:
        rng = np.random.default_rng(seed)
        keys = [f"{i.source}/{i.class_name}/{i.plane}" for i in items]
        keep = []
        for key in sorted(set(keys)):
            members = [n for n, k in enumerate(keys) if k == key]
            keep += sorted(rng.permutation(members)[:per_stratum].tolist())
        items = [items[n] for n in sorted(keep)]
    return items


def _rate(hits: np.ndarray) -> dict:
    return rate_with_interval(int(np.sum(hits)), int(np.size(hits)))


def verdict_figures(items: Sequence[Item], readings: Sequence) -> dict:
    """Missed tumors per tumor source, healthy called tumor per (source, plane), deferrals,
    cannot_read on MRI and on not-MRI, and type accuracy among the readings not deferred."""
    verdicts = np.array([r.verdict for r in readings])
    sources = np.array([i.source for i in items])
    mri = np.array([i.is_mri for i in items])
    tumor = np.array([i.is_tumor for i in items])
    healthy = mri & ~tumor
    strata = np.array([i.healthy_stratum for i in items])
    figures: dict = {"tumor_sources": {}, "healthy_strata": {}, "deferred_strata": {}}
    for source in sorted(set(sources[tumor])):
        inside = tumor & (sources == source)
        figures["tumor_sources"][source] = {"missed": _rate(verdicts[inside] == "no_tumor"),
                                            "deferred": _rate(np.isin(verdicts[inside], DEFERRED))}
    for stratum in sorted(set(strata[healthy])):
        inside = healthy & (strata == stratum)
        figures["healthy_strata"][stratum] = {"called_tumor": _rate(verdicts[inside] == "tumor"),
                                              "deferred": _rate(np.isin(verdicts[inside], DEFERRED))}
    for stratum in sorted(set(f"{i.source}/{i.class_name}/{i.plane}" for i in items if i.is_mri)):
        inside = mri & (np.array([f"{i.source}/{i.class_name}/{i.plane}" for i in items]) == stratum)
        figures["deferred_strata"][stratum] = _rate(np.isin(verdicts[inside], DEFERRED))
    figures["missed_all"] = _rate(verdicts[tumor] == "no_tumor")
    figures["healthy_called_tumor_all"] = _rate(verdicts[healthy] == "tumor")
    figures["deferred_mri"] = _rate(np.isin(verdicts[mri], DEFERRED))
    figures["mri_cannot_read"] = _rate(verdicts[mri] == "cannot_read")
    if (~mri).any():
        figures["not_mri_cannot_read"] = _rate(verdicts[~mri] == "cannot_read")
        figures["not_mri_called_tumor"] = _rate(verdicts[~mri] == "tumor")
    typed = np.array([i.class_name in TUMOR_TYPES or not i.is_tumor for i in items]) & mri
    decided = typed & ~np.isin(verdicts, DEFERRED)
    right = np.array([_four_class_right(i, r) for i, r in zip(items, readings)])
    figures["four_class_accuracy_not_deferred"] = _rate(right[decided])
    return figures


def _four_class_right(item: Item, reading) -> bool:
    if not item.is_tumor:
        return reading.verdict == "no_tumor"
    return reading.verdict == "tumor" and reading.label == item.class_name


def calibration_figures(items: Sequence[Item], readings: Sequence) -> dict:
    """ECE (15 equal-width bins) of tumor_probability against tumor / no tumor, and of the top
    label, on the MRI items."""
    mri = [(i, r) for i, r in zip(items, readings) if i.is_mri]
    probability = np.array([r.tumor_probability for _, r in mri])
    is_tumor = np.array([i.is_tumor for i, _ in mri])
    confidence = np.array([max(r.probabilities.values()) for _, r in mri])
    top_right = np.array([_top_label_right(i, r) for i, r in mri])
    # the tumor probability against the event "tumor": per bin |event rate - mean probability|
    return {"ece_tumor_probability": expected_calibration_error(probability, is_tumor),
            "ece_top_label": expected_calibration_error(confidence, top_right), "n": len(mri)}


def auc_figures(items: Sequence[Item], readings: Sequence, rng: np.random.Generator | None = None) -> dict:
    """ROC AUC of tumor_probability, tumor vs healthy MRI slices, with a bootstrap 95 % interval
    (tumors and healthy resampled apart): all MRI ("all"), each source and each source/plane
    (planes where known) that has both kinds."""
    from sklearn.metrics import roc_auc_score

    rng = rng or np.random.default_rng(0)
    mri = [(i, r) for i, r in zip(items, readings) if i.is_mri]
    probability = np.array([r.tumor_probability for _, r in mri])
    is_tumor = np.array([i.is_tumor for i, _ in mri])
    groups = {"all": np.ones(len(mri), bool)}
    for key in sorted({i.source for i, _ in mri} | {i.healthy_stratum for i, _ in mri if i.plane != "unknown"}):
        groups[key] = np.array([key in (i.source, i.healthy_stratum) for i, _ in mri])
    figures = {}
    for key, inside in groups.items():
        truth, score = is_tumor[inside], probability[inside]
        if truth.all() or not truth.any():
            continue
        low, high = bootstrap_interval(lambda idx: roc_auc_score(truth[idx], score[idx]), len(truth), rng, strata=truth)
        figures[key] = {"auc": round(float(roc_auc_score(truth, score)), 6), "low": round(low, 6),
                        "high": round(high, 6), "tumors": int(truth.sum()), "healthy": int((~truth).sum())}
    return figures


def _top_label_right(item: Item, reading) -> bool:
    top = max(reading.probabilities, key=reading.probabilities.get)
    if not item.is_tumor:
        return top in NO_TUMOR_CLASSES
    if item.class_name in TUMOR_TYPES:
        return top == item.class_name
    return top not in NO_TUMOR_CLASSES  # a tumor of unknown type: any tumor class


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks of one size (1.0 when both are empty)."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    total = predicted.sum() + truth.sum()
    return 1.0 if total == 0 else float(2.0 * (predicted & truth).sum() / total)


def read_outline(path: Path) -> np.ndarray:
    """A mask file -> (H, W) bool (tumor where > half the range)."""
    return io.read_file(path)[0].pixels > 0.5


def segmentation_figures(items: Sequence[Item], readings: Sequence, rng: np.random.Generator | None = None) -> dict:
    """Per source with outlines: mean Dice of the model's mask over tumor slices (at the
    original resolution; a bootstrap 95 % interval), the pooled Dice, and the same for the
    heatmap thresholded at half its peak. Items whose outline is empty are left out; a model
    that does not segment (no reading has a mask) gets the heatmap's figures only."""
    rng = rng or np.random.default_rng(0)
    segments = any(r.mask is not None for r in readings)
    per_source: dict[str, dict[str, list]] = {}
    for item, reading in zip(items, readings):
        if item.mask_path is None or not item.is_tumor:
            continue
        truth = read_outline(item.mask_path)
        if not truth.any():
            continue
        entry = per_source.setdefault(item.source, {"mask": [], "cam": [], "mask_sums": [], "cam_sums": []})
        predicted = np.zeros_like(truth) if reading.mask is None else np.asarray(reading.mask, bool)
        cam = np.zeros_like(truth) if reading.heatmap is None else (
            reading.heatmap >= CAM_MASK_LEVEL * max(float(reading.heatmap.max()), 1e-12))
        if predicted.shape != truth.shape or cam.shape != truth.shape:
            continue
        entry["mask"].append(dice(predicted, truth))
        entry["cam"].append(dice(cam, truth))
        entry["mask_sums"].append(((predicted & truth).sum(), predicted.sum() + truth.sum()))
        entry["cam_sums"].append(((cam & truth).sum(), cam.sum() + truth.sum()))
    figures = {}
    for source, entry in sorted(per_source.items()):
        figures[source] = {"n": len(entry["mask"])}
        for key in ("mask", "cam") if segments else ("cam",):
            values = np.array(entry[key])
            sums = np.array(entry[f"{key}_sums"], float)
            boot = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(1000)]
            figures[source][key] = {"mean_dice": float(values.mean()),
                                    "low": float(np.percentile(boot, 2.5)), "high": float(np.percentile(boot, 97.5)),
                                    "pooled_dice": float(2 * sums[:, 0].sum() / max(sums[:, 1].sum(), 1.0))}
    return figures


def pointing_figures(items: Sequence[Item], readings: Sequence) -> dict:
    """Per source with outlines or boxes: the share of tumor slices whose heatmap peak lies in
    the tumor (in the outline, else in the box)."""
    hits: dict[str, list[bool]] = {}
    for item, reading in zip(items, readings):
        if not item.is_tumor or reading.cam_peak is None or (item.mask_path is None and item.box is None):
            continue
        x, y = reading.cam_peak
        if item.mask_path is not None:
            truth = read_outline(item.mask_path)
            if not truth.any():
                continue
            inside = bool(truth[min(y, truth.shape[0] - 1), min(x, truth.shape[1] - 1)])
        else:
            x0, y0, x1, y1 = item.box
            inside = x0 <= x <= x1 and y0 <= y <= y1
        hits.setdefault(item.source, []).append(inside)
    return {source: _rate(np.array(values)) for source, values in sorted(hits.items())}


def interval_text(entry: dict) -> str:
    """A rate entry -> "0.012 [0.004, 0.031] (3/250)"."""
    if entry.get("rate") is None:
        return "n/a"
    return f"{entry['rate']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}] ({entry['successes']}/{entry['n']})"


def auc_text(entry: dict) -> str:
    """An auc_figures entry -> "0.996 [0.991, 0.999] (1505 tumors, 276 healthy)"."""
    return (f"{entry['auc']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}] "
            f"({entry['tumors']} tumors, {entry['healthy']} healthy)")
