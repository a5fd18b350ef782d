"""Judge a candidate package on the VALIDATION part of the split (how session-4 candidates were compared).

    python bench/validation.py PACKAGE [PACKAGE ...] [--manifest bench/splits/shipped.json] [--data ../shared/data]

For each package, read plainly and with the mirror average: the temperature and operating point
fitted on validation (as training does), validation NLL, 4-class accuracy and specificity at that
threshold, named-class argmax accuracy, AUC, ECE and the lowest Kaggle tumor scores; then the
pointing game and IoU on the boxed validation slices for plain Grad-CAM and for the mirrored,
2-px-smoothed map. Prints one JSON line per package; writes nothing. The test split is not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import DEFAULT_DATA  # noqa: E402
from bench.old_split import (BOXED_ROOT, DEFAULT_MANIFEST,  # noqa: E402
                             localisation_figures, prepare_records, select_records)
from mri_core.training import data as datasets  # noqa: E402
from mri_core.training.evaluate import compute_metrics  # noqa: E402
from mri_core.inference.explain import GradCam  # noqa: E402
from mri_core.inference.model import apply_temperature, load_model, predict_arrays  # noqa: E402
from mri_core.training.calibrate import choose_threshold_per_source, fit_temperature  # noqa: E402
from mri_core.training.recipes import RECIPES  # noqa: E402

KAGGLE_ROOT = "kaggle-brain-mri"


def detection(model, records, images: np.ndarray, mirror: bool) -> dict:
    names, classes = model.class_names, [r.class_name for r in records]
    sources = [r.root_name for r in records]
    labels = np.array([names.index(c) if c in names else len(names) for c in classes])
    tumor_mask = np.array([c not in model.no_tumor_classes for c in names], np.float32)
    is_tumor = np.array([c not in datasets.NO_TUMOR_CLASSES for c in classes])
    named = labels < len(names)
    raw = predict_arrays(model.keras_model, images, mirror=mirror)
    own = np.where(named, raw[np.arange(len(raw)), np.minimum(labels, len(names) - 1)], raw @ tumor_mask)
    temperature = fit_temperature(raw, labels, tumor_mask)
    probabilities = apply_temperature(raw, temperature)
    tumor_probability = probabilities @ tumor_mask
    target = RECIPES[model.info["architecture"]].target_sensitivity  # as training chose it; None: the plain 0.5
    threshold = 0.5 if target is None else choose_threshold_per_source(tumor_probability, is_tumor, sources, target)
    metrics = compute_metrics(classes, probabilities, names, model.no_tumor_classes, threshold)
    kaggle = np.array(sources) == KAGGLE_ROOT
    return {"nll": round(float(-np.log(np.clip(own, 1e-7, 1.0)).mean()), 4), "temperature": round(temperature, 3),
            "threshold": round(threshold, 4), "accuracy": metrics["accuracy"], "specificity": metrics["specificity"],
            "roc_auc": metrics["roc_auc"], "ece": metrics["ece"],
            "named_argmax_accuracy": round(float((probabilities[named].argmax(1) == labels[named]).mean()), 4),
            "kaggle_tumor_lowest": np.round(np.sort(tumor_probability[kaggle & is_tumor])[:4], 3).tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("packages", nargs="+")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    records, _ = select_records(args.data, args.manifest, "val")
    boxes = datasets.read_boxes(args.data / BOXED_ROOT)
    prepared: dict = {}
    for package in args.packages:
        model = load_model(package)
        if model.image_size not in prepared:
            prepared[model.image_size] = prepare_records(records, model.image_size)
        images, crops, shapes = prepared[model.image_size]
        figures = {"package": package, **{tag: detection(model, records, images, mirror)
                                          for tag, mirror in (("plain", False), ("mirror", True))}}
        for tag, aids in (("cam_plain", {}), ("cam_mirror_smoothed", {"mirror": True, "smoothing_sigma": 2.0})):
            gradcam = GradCam(model.keras_model, model.info["gradcam_layer"], model.tumor_indices, **aids)
            loc = localisation_figures(model, records, images, crops, shapes, boxes, np.random.default_rng(0),
                                       cams_of=lambda batch, g=gradcam: g(batch)[1])
            figures[tag] = {"pointing_game": loc["pointing_game"]["rate"], "iou": loc["iou"]["mean"], "n": loc["n"]}
        print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
