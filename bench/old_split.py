"""Bench helpers on prepared model inputs (not readings), for the earlier models' split.

A manifest part's images as records (`select_records`), the model inputs a reading would make of
them (`prepare_records`), and Grad-CAM localisation against the figshare tumor boxes next to the
centre-of-the-brain-crop baseline (`localisation_figures`). Used by bench/cams.py,
bench/validation.py and bench/ood.py, which measure on `bench/splits/shipped.json`; the accuracy
bench (bench/accuracy.py) reads through the reading path instead.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import PROJECT
from mri_core.inference.explain import cam_peak_and_box
from mri_core.io import preprocess
from mri_core.io import slices as io
from mri_core.training import audit, splits
from mri_core.training import data as datasets

DEFAULT_MANIFEST = PROJECT / "bench" / "splits" / "shipped.json"
BOXED_ROOT = "figshare-boxes"
GRADCAM_BATCH = 32
PREPARE_WORKERS = 2
SEED = 0


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


# --- Grad-CAM localisation ---------------------------------------------------------------

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
