"""CAM methods compared: pointing game and IoU on the boxed figshare images of the test split.

    python bench/cams.py [--model assets/models/default-4class] [--manifest bench/splits/shipped.json]
                         [--data ../shared/data] [--scorecam-images 60]

For each of Grad-CAM (compiled, read as the package says: for the default model averaged
over the slice and its mirror and smoothed, see `recipes.Recipe.reading`), plain Grad-CAM
(no reading aids; only when the package has some), Grad-CAM++ and Score-CAM (tf-keras-vis): the share of
images whose heatmap peak lies in the tumor box (pointing game), the mean IoU of the
cam_box with the tumor box, each next to the centre-of-the-brain-crop baseline
(`bench/old_split.localisation_figures`, `mri_core.training.audit`), and seconds per image (batches
of 32, the model's forward pass included, 2-core CPU). Every method explains the most
likely tumor class, as the app does. Score-CAM runs the model once per channel of the
Grad-CAM layer, so it is measured on an evenly spaced subset (`--scorecam-images`); the
other methods are reported on that same subset too, for a like-for-like row.
Writes the "cams" section of bench/results.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import DEFAULT_DATA, PROJECT, log  # noqa: E402
from bench.old_split import (BOXED_ROOT, DEFAULT_MANIFEST, SEED, localisation_figures,  # noqa: E402
                             prepare_records, select_records)
from bench.results_store import update_results  # noqa: E402
from mri_core.training import data as datasets  # noqa: E402
from mri_core.inference.explain import GradCam  # noqa: E402
from mri_core.inference.model import load_model  # noqa: E402
from mri_core.package.info import NO_READING_AIDS  # noqa: E402

DEFAULT_MODEL = PROJECT / "assets" / "models" / "default-4class"
METHODS = ("gradcam", "gradcam-plain", "gradcam++", "scorecam")


def cam_function(scan_model, method: str):
    """float32 (B, S, S, 1) -> (B, h, w) cams of the most likely tumor class."""
    if method == "gradcam":
        return lambda batch: scan_model.gradcam(batch)[1]
    if method == "gradcam-plain":
        plain = GradCam(scan_model.keras_model, scan_model.info["gradcam_layer"], scan_model.tumor_indices)
        return lambda batch: plain(batch)[1]
    return lambda batch: scan_model.library_cams(batch, method)[1]


def row(figures: dict) -> dict:
    keep = ("n", "pointing_game", "pointing_game_centre", "iou", "iou_centre", "iou_centre_tumor_size",
            "gradcam_seconds_per_image", "no_cam")
    out = {k: figures[k] for k in keep if k in figures}
    out["seconds_per_image"] = out.pop("gradcam_seconds_per_image", None)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--scorecam-images", type=int, default=60)
    args = parser.parse_args(argv)
    started = time.monotonic()
    scan_model = load_model(args.model)
    records, manifest_hash = select_records(args.data, args.manifest, "test")
    boxes = datasets.read_boxes(args.data / BOXED_ROOT)
    records = [r for r in records if r.root_name == BOXED_ROOT and r.relative_path in boxes]
    log(f"preparing {len(records)} boxed test images ...")
    images, crop_boxes, shapes = prepare_records(records, scan_model.image_size)
    results: dict = {"all": {}, "subset": {}}
    has_aids = scan_model.reading != NO_READING_AIDS
    for method in (m for m in METHODS if has_aids or m != "gradcam-plain"):
        for scope, limit in (("all", None), ("subset", args.scorecam_images)):
            if method == "scorecam" and scope == "all":
                continue
            log(f"{method} on {scope} ...")
            figures = localisation_figures(scan_model, records, images, crop_boxes, shapes, boxes,
                                           np.random.default_rng(SEED), cams_of=cam_function(scan_model, method),
                                           limit=limit)
            results[scope][method] = row(figures)
    lines = ["| images | method | pointing game [95% CI] | centre baseline | mean IoU | centre IoU (cam size; tumor size) | s/image |",
             "|---|---|---|---|---|---|---|"]
    for scope, methods in results.items():
        for method, f in methods.items():
            pg, c = f["pointing_game"], f["pointing_game_centre"]
            lines.append(f"| {scope} (n={f['n']}) | {method} | {pg['rate']:.3f} [{pg['low']:.3f}, {pg['high']:.3f}] | "
                         f"{c['rate']:.3f} | {f['iou']['mean']:.3f} | {f['iou_centre']['mean']:.3f}; "
                         f"{f['iou_centre_tumor_size']['mean']:.3f} | {f['seconds_per_image']:.3f} |")
    update_results("cams", {
        "model": scan_model.ref, "manifest_hash": manifest_hash, "part": "test", "boxed_images": len(records),
        "methods": results, "scorecam_subset": args.scorecam_images, "default": "gradcam",
        "reading": scan_model.reading,
        "command": "python bench/cams.py", "seconds": round(time.monotonic() - started, 1),
    })
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
