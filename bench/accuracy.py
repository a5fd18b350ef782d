"""Accuracy audit of model packages on one part of a split manifest, over all its data sets.

    python bench/accuracy.py --model PACKAGE [--model PACKAGE2 ...]
        [--manifest bench/splits/shipped.json] [--data ../shared/data] [--part test]

Per model: accuracy, ROC AUC, sensitivity and specificity with 95% intervals; sensitivity
per tumor source (and per source and class); sensitivity and specificity within each source
that has both kinds (Kaggle yes vs no); ECE (15 bins) before and after the model's
temperature; a source probe on the model's pooled features; Grad-CAM localisation on the
boxed figshare images (pointing game, IoU of cam_box with the tumor box), each next to the
centre-of-the-brain-crop baseline. An image whose class the model does not name is judged
on tumor vs no tumor only (`evaluate.compute_metrics`).

Writes the "accuracy" section of bench/results.json (the models of this run only: pass
every model that belongs in the table at once) and prints a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.results_store import update_results  # noqa: E402
from mri_core.training import audit  # noqa: E402
from mri_core.training import data as datasets
from mri_core.training import splits
from mri_core.io import slices as io
from mri_core.io import preprocess
from mri_core.inference.verdict import decide  # noqa: E402
from mri_core.training.evaluate import NO_TUMOR_NAMES, compute_metrics  # noqa: E402
from mri_core.inference.explain import cam_peak_and_box  # noqa: E402
from mri_core.inference.model import load_model  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = PROJECT / "bench" / "splits" / "shipped.json"
DEFAULT_DATA = PROJECT.parent / "shared" / "data"
BOXED_ROOT = "figshare-boxes"
KAGGLE_ROOT = "kaggle-brain-mri"
GRADCAM_BATCH = 32
PREPARE_WORKERS = 2
SEED = 0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- data --------------------------------------------------------------------------------

def select_records(data: Path, manifest_path: Path, part: str) -> tuple[list[datasets.ImageRecord], str]:
    """Every image of the manifest's roots under `data` in `part` -> (records, manifest hash)."""
    manifest = splits.read_manifest(manifest_path)
    dataset = datasets.discover([data / root for root in manifest["roots"]])
    split = splits.apply_manifest(dataset, manifest)
    records = [r for r in dataset.records if split.get(r.sha256) == part]
    if not records:
        raise SystemExit(f"No images in the {part!r} part of {manifest_path}.")
    return records, splits.manifest_hash(manifest)


def prepare_records(records, image_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Records -> (float32 (N, S, S, 1) model inputs as a reading makes them, crop boxes (N, 4), shapes (N, 2) = (H, W))."""
    def prepare_one(record):
        prepared = preprocess.prepare(io.read_file(record.path)[0].pixels, image_size)
        return prepared.image, prepared.crop_box, prepared.original_shape

    with ThreadPoolExecutor(max_workers=PREPARE_WORKERS) as pool:
        images, crop_boxes, shapes = zip(*pool.map(prepare_one, records))
    return np.stack(images), np.array(crop_boxes), np.array(shapes)


# --- one model ---------------------------------------------------------------------------

def detection_figures(scan_model, records, images: np.ndarray, rng: np.random.Generator) -> dict:
    """Accuracy, AUC, sensitivity/specificity (with intervals), per-source rates and ECE."""
    from sklearn.metrics import roc_auc_score

    true_classes = [r.class_name for r in records]
    roots = np.array([r.root_name for r in records])
    raw = scan_model.predict(images)
    calibrated = scan_model.calibrate(raw)
    args = (scan_model.class_names, scan_model.no_tumor_classes, scan_model.threshold)
    before, metrics = compute_metrics(true_classes, raw, *args), compute_metrics(true_classes, calibrated, *args)
    _, tumor, tumor_probability = decide(calibrated, *args)
    true_tumor = np.array([c not in NO_TUMOR_NAMES and c not in scan_model.no_tumor_classes for c in true_classes])

    n = len(records)
    named = np.array([c in scan_model.class_names for c in true_classes])
    named_accuracy = None
    if named.any():
        named_metrics = compute_metrics([c for c, k in zip(true_classes, named) if k], calibrated[named], *args)
        named_accuracy = audit.rate_with_interval(round(named_metrics["accuracy"] * named.sum()), int(named.sum()))
    auc_interval = audit.bootstrap_interval(
        lambda idx: roc_auc_score(true_tumor[idx], tumor_probability[idx]), n, rng, strata=true_tumor)
    per_source = audit.per_source_rates(true_tumor, tumor, roots)
    return {
        "n": n,
        "classes": scan_model.class_names,
        "threshold": scan_model.threshold,
        "temperature": scan_model.temperature,
        "accuracy": audit.rate_with_interval(round(metrics["accuracy"] * n), n),
        "accuracy_named_classes": named_accuracy,
        "roc_auc": {"value": metrics["roc_auc"], "low": round(auc_interval[0], 6), "high": round(auc_interval[1], 6)},
        "sensitivity": audit.rate_with_interval(int((tumor & true_tumor).sum()), int(true_tumor.sum())),
        "specificity": audit.rate_with_interval(int((~tumor & ~true_tumor).sum()), int((~true_tumor).sum())),
        "per_source": per_source,
        "per_source_class": audit.per_source_rates(
            true_tumor, tumor, [f"{r.root_name}/{r.class_name}" for r in records]),
        "within_kaggle": per_source.get(KAGGLE_ROOT),
        "ece": {"before": before["ece"], "after": metrics["ece"],
                "tumor_before": before["ece_tumor"], "tumor_after": metrics["ece_tumor"], "bins": 15},
        "confusion_matrix": metrics["confusion_matrix"],
    }


def probe_figures(scan_model, records, images: np.ndarray) -> dict:
    """Source probe on pooled features: all images, and tumor images only (so it cannot lean on the class)."""
    features = audit.pooled_features(scan_model.keras_model, images)
    roots = np.array([r.root_name for r in records])
    tumors = np.array([r.class_name not in NO_TUMOR_NAMES for r in records])
    return {"all_images": audit.source_probe(features, roots, seed=SEED),
            "tumor_images": audit.source_probe(features[tumors], roots[tumors], seed=SEED),
            "features": int(features.shape[1])}


def localisation_figures(scan_model, records, images, crop_boxes, shapes, boxes, rng,
                         cams_of=None, limit: int | None = None) -> dict:
    """Grad-CAM peak and cam_box against the figshare tumor boxes, next to the centre baseline.

    `cams_of`: float32 (B, S, S, 1) -> (B, h, w) cams in [0, 1] (default the compiled
    Grad-CAM); `limit`: only that many boxed images, evenly spaced in record order.
    """
    cams_of = cams_of or (lambda batch: scan_model.gradcam(batch)[1])
    boxed = [i for i, r in enumerate(records) if r.root_name == BOXED_ROOT and r.relative_path in boxes]
    size_mismatch = {i for i in boxed if tuple(shapes[i]) != boxes[records[i].relative_path][1]}
    boxed = [i for i in boxed if i not in size_mismatch]
    if limit and len(boxed) > limit:  # evenly spaced, so every class and patient range is in
        boxed = [boxed[int(k)] for k in np.linspace(0, len(boxed) - 1, limit)]
    if not boxed:
        return {"n": 0}
    true_boxes = np.array([boxes[records[i].relative_path][0] for i in boxed])
    peaks, cam_boxes = np.full((len(boxed), 2), np.nan), np.zeros((len(boxed), 4), int)
    has_cam = np.zeros(len(boxed), bool)
    started = time.perf_counter()
    for start in range(0, len(boxed), GRADCAM_BATCH):
        batch = boxed[start:start + GRADCAM_BATCH]
        cams = cams_of(images[batch])  # cams (B, h, w)
        for j, (i, cam) in enumerate(zip(batch, cams), start):
            prepared = preprocess.Prepared(images[i], tuple(crop_boxes[i]), tuple(shapes[i]))
            peak, box = cam_peak_and_box(preprocess.heatmap_to_original(cam, prepared))
            if peak is not None:
                peaks[j], cam_boxes[j], has_cam[j] = peak, box, True
    seconds = time.perf_counter() - started

    crops = crop_boxes[boxed]
    fractions = audit.box_area_fraction(cam_boxes, crops)
    # an image without a cam gets the median cam size, so the baseline still answers there
    fractions[~has_cam] = np.median(fractions[has_cam]) if has_cam.any() else 0.05
    centre_peaks, centre_boxes = audit.centre_baseline(crops, shapes[boxed], fractions)
    cam_hits, centre_hits = audit.pointing_game(peaks, true_boxes), audit.pointing_game(centre_peaks, true_boxes)
    cam_iou = np.where(has_cam, audit.box_iou(cam_boxes, true_boxes), 0.0)
    centre_iou = audit.box_iou(centre_boxes, true_boxes)
    # a stronger IoU baseline: every box the typical tumor's size (known from the answers)
    tumor_fraction = float(np.median(audit.box_area_fraction(true_boxes, crops)))
    centre_iou_tumor_size = audit.box_iou(audit.centre_baseline(crops, shapes[boxed], tumor_fraction)[1], true_boxes)

    def mean_with_interval(values):
        low, high = audit.bootstrap_interval(lambda idx: values[idx].mean(), len(values), rng)
        return {"mean": round(float(values.mean()), 6), "low": round(low, 6), "high": round(high, 6)}

    return {
        "n": len(boxed),
        "size_mismatch_skipped": len(size_mismatch),
        "no_cam": int((~has_cam).sum()),
        "pointing_game": audit.rate_with_interval(int(cam_hits.sum()), len(boxed)),
        "pointing_game_centre": audit.rate_with_interval(int(centre_hits.sum()), len(boxed)),
        "hits_cam_only": int((cam_hits & ~centre_hits).sum()),
        "hits_centre_only": int((~cam_hits & centre_hits).sum()),
        "iou": mean_with_interval(cam_iou),
        "iou_centre": mean_with_interval(centre_iou),
        "iou_centre_tumor_size": mean_with_interval(centre_iou_tumor_size),
        "cam_box_area_of_crop": round(float(np.median(fractions)), 6),
        "true_box_area_of_crop": round(tumor_fraction, 6),
        "baseline_rule": "peak = centre pixel of the brain crop; box = square about it with the "
                         "area fraction of the crop that this image's cam_box has (iou_centre), or "
                         "the median tumor box's fraction (iou_centre_tumor_size)",
        "gradcam_seconds_per_image": round(seconds / len(boxed), 5),
        "gradcam_batch": GRADCAM_BATCH,
    }


def audit_model(package: str, records, data: Path, prepared_cache: dict) -> tuple[str, dict]:
    scan_model = load_model(package)
    size = scan_model.image_size
    if size not in prepared_cache:
        log(f"preparing {len(records)} images at {size} px ...")
        prepared_cache[size] = prepare_records(records, size)
    images, crop_boxes, shapes = prepared_cache[size]
    rng = np.random.default_rng(SEED)
    log(f"{scan_model.ref}: predicting ...")
    figures = {"package": str(package), **detection_figures(scan_model, records, images, rng)}
    log(f"{scan_model.ref}: source probe ...")
    figures["source_probe"] = probe_figures(scan_model, records, images)
    log(f"{scan_model.ref}: Grad-CAM localisation ...")
    figures["localisation"] = localisation_figures(
        scan_model, records, images, crop_boxes, shapes, datasets.read_boxes(data / BOXED_ROOT), rng)
    return scan_model.ref, figures


# --- report ------------------------------------------------------------------------------

def _rate(entry: dict | None) -> str:
    if not entry or entry.get("rate") is None:
        return "–"
    return f"{entry['rate']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}] (n={entry['n']})"


def _interval(entry: dict, key: str) -> str:
    if entry.get(key) is None:
        return "–"
    return f"{entry[key]:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def markdown_table(models: dict[str, dict]) -> str:
    """One row per figure, one column per model."""
    tumor_sources = sorted({s for f in models.values() for s, e in f["per_source"].items() if "sensitivity" in e})
    rows = [
        ("accuracy (unnamed classes: tumor vs no)", lambda f: _rate(f["accuracy"])),
        ("accuracy on classes the model names", lambda f: _rate(f["accuracy_named_classes"])),
        ("ROC AUC tumor vs no tumor", lambda f: _interval(f["roc_auc"], "value")),
        ("sensitivity", lambda f: _rate(f["sensitivity"])),
        ("specificity", lambda f: _rate(f["specificity"])),
        *[(f"sensitivity, {s}", lambda f, s=s: _rate(f["per_source"].get(s, {}).get("sensitivity")))
          for s in tumor_sources],
        ("Kaggle yes/no: sensitivity", lambda f: _rate((f["within_kaggle"] or {}).get("sensitivity"))),
        ("Kaggle yes/no: specificity", lambda f: _rate((f["within_kaggle"] or {}).get("specificity"))),
        ("ECE top class, before → after T", lambda f: f"{f['ece']['before']:.3f} → {f['ece']['after']:.3f} (T={f['temperature']:.2f})"),
        ("source probe accuracy (majority rate)", lambda f: "{accuracy:.3f} ({majority_rate:.3f})".format(**f["source_probe"]["all_images"])),
        ("source probe, balanced (chance)", lambda f: "{balanced_accuracy:.3f} ({chance_balanced_accuracy:.3f})".format(**f["source_probe"]["all_images"])),
        ("pointing game (centre baseline)", lambda f: _localisation(f, "pointing_game")),
        ("mean IoU cam_box (centre: cam size; tumor size)", lambda f: _localisation(f, "iou")),
        ("Grad-CAM s/image", lambda f: f"{f['localisation'].get('gradcam_seconds_per_image', float('nan')):.4f}"),
    ]
    lines = ["| figure | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    lines += [f"| {name} | " + " | ".join(cell(f) for f in models.values()) + " |" for name, cell in rows]
    return "\n".join(lines)


def _localisation(figures: dict, key: str) -> str:
    loc = figures["localisation"]
    if not loc.get("n"):
        return "–"
    if key == "pointing_game":
        cam, centre = loc["pointing_game"], loc["pointing_game_centre"]
        return f"{cam['rate']:.3f} [{cam['low']:.3f}, {cam['high']:.3f}] ({centre['rate']:.3f}), n={cam['n']}"
    cam, centre, sized = loc["iou"], loc["iou_centre"], loc["iou_centre_tumor_size"]
    return f"{cam['mean']:.3f} [{cam['low']:.3f}, {cam['high']:.3f}] ({centre['mean']:.3f}; {sized['mean']:.3f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, help="package folder or registered name")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--part", default="test", choices=splits.SPLITS)
    args = parser.parse_args(argv)

    started = time.monotonic()
    log(f"reading the {args.part} part of {args.manifest} under {args.data} ...")
    records, manifest_hash = select_records(args.data, args.manifest, args.part)
    prepared_cache: dict = {}
    models = dict(audit_model(package, records, args.data, prepared_cache) for package in args.model)
    update_results("accuracy", {
        "manifest": str(args.manifest.resolve().relative_to(PROJECT)) if args.manifest.resolve().is_relative_to(PROJECT) else str(args.manifest),
        "manifest_hash": manifest_hash,
        "part": args.part,
        "n_images": len(records),
        "images_per_source": {root: sum(r.root_name == root for r in records) for root in sorted({r.root_name for r in records})},
        "models": models,
        "seconds": round(time.monotonic() - started, 1),
    })
    print(markdown_table(models))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
