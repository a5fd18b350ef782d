"""Fitting the out-of-distribution check of a model (see `inference.ood` for what it reads).

Gaussian statistics of pooled features on training MRI, a threshold on validation MRI;
`fit_from_training` right after training (`npz_bytes` and `info_section` are what
`train.save_result` writes into the package before its rename), `fit_package` for an existing
package (bench/fit_ood.py, a maintainer refitting a shipped package in git: `write_stats`).
Images are prepared exactly as a reading prepares them (`io.inputs.prepare_files`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from mri_core.inference.ood import (FIT_FALSE_ALARM, INFO_KEY, LOW_CONFIDENCE_ODDS, MAX_FIT_IMAGES,
                                    MIN_FIT_IMAGES, MIN_STRATUM_IMAGES, OOD_FILE, SHRINKAGE_MIN_CLASS,
                                    FeatureExtractor, OodStats, _transform, image_check_reasons)
from mri_core.io.atomic import replace_atomic, write_text_atomic
from mri_core.io.inputs import prepare_files
from mri_core.package.registry import INFO_FILE


def fit_means_and_precision(features: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features, (N,) predicted classes -> (means (K, D), precision (D, D)), float32."""
    from sklearn.covariance import LedoitWolf

    values = _transform(features)
    classes = [c for c in np.unique(predicted) if (predicted == c).sum() >= SHRINKAGE_MIN_CLASS]
    if not classes:  # too few images per class: one Gaussian for all
        classes, predicted = [0], np.zeros(len(values), int)
    means = np.stack([values[predicted == c].mean(axis=0) for c in classes])
    residuals = np.concatenate([values[predicted == c] - means[i] for i, c in enumerate(classes)])
    precision = LedoitWolf(assume_centered=True).fit(residuals).precision_
    return means.astype(np.float32), precision.astype(np.float32)


def stratum(root_name: str, class_name: str) -> str:
    """A validation image's stratum in the threshold rule: its data set and class."""
    return f"{root_name}/{class_name}"


def evenly_spaced(n: int, most: int = MAX_FIT_IMAGES) -> np.ndarray:
    """Indexes of at most `most` of n items, evenly spaced (the training images the Gaussian is fitted on)."""
    return np.linspace(0, n - 1, min(n, most)).astype(int)


def threshold_for(scores: np.ndarray, cheap_flags: np.ndarray, fit_false_alarm: float) -> float:
    """The lowest distance at which at most `fit_false_alarm` of these images get
    `out_of_distribution`, the ones the cheap checks flag anyway included."""
    budget = max(0, int(np.floor(fit_false_alarm * len(scores))) - int(cheap_flags.sum()))
    candidates = np.sort(scores[~cheap_flags])[::-1]
    return float(candidates[min(budget, len(candidates) - 1)]) if len(candidates) else 0.0


def fit_stats(keras_model, layer_name: str, fit_images: np.ndarray, images: np.ndarray,
              cheap_flags: np.ndarray, image_sides: dict | None = None,
              fit_false_alarm: float = FIT_FALSE_ALARM, strata: Sequence[str] | None = None,
              min_stratum: int = MIN_STRATUM_IMAGES) -> OodStats:
    """Fit the detector: means and covariance on `fit_images` (training MRI), threshold on
    `images` (validation MRI, none of them in `fit_images`).

    float32 (N, S, S, 1) model inputs, prepared as a reading prepares them; `cheap_flags` (N,) whether the cheap checks
    already flag each of `images`. The threshold is the distance at which `fit_false_alarm`
    of `images` get `out_of_distribution`, cheap checks included, and, given `strata` (a
    "source/class" name per image), also within every stratum of at least `min_stratum`
    images: the warnings must not pile up on one collection's look or on the
    healthy scans. (With one threshold for all, default-4class@3 flagged 1.5 % of validation
    MRI overall but 5 % of one source's no-tumor slices, and 3.1 % of test MRI.) Fitting and thresholding
    on the same images would not do: distances of the images a Gaussian was fitted on are
    smaller than those of new ones (measured on default-4class: fitted on validation with
    5-fold out-of-fold thresholds, 1.5 % of validation but 4.7 % of test MRI were flagged).
    """
    images, fit_images = np.asarray(images), np.asarray(fit_images)
    cheap_flags = np.asarray(cheap_flags, bool)
    if min(len(images), len(fit_images)) < MIN_FIT_IMAGES:
        raise ValueError(f"Fitting the out-of-distribution check needs at least {MIN_FIT_IMAGES} training and "
                         f"validation images, got {len(fit_images)} and {len(images)}.")
    extractor = FeatureExtractor(keras_model, layer_name)
    means, precision = fit_means_and_precision(extractor(fit_images),
                                               _predict_classes(keras_model, fit_images))
    scores = OodStats(layer_name, means, precision, np.inf, {}).scores(extractor(images))
    threshold = threshold_for(scores, cheap_flags, fit_false_alarm)
    per_stratum = {}
    if strata is not None:
        strata = np.asarray(strata)
        for name in np.unique(strata):
            inside = strata == name
            if inside.sum() >= min_stratum:
                per_stratum[str(name)] = threshold_for(scores[inside], cheap_flags[inside], fit_false_alarm)
        threshold = max([threshold, *per_stratum.values()])
    flagged = cheap_flags | (scores > threshold)
    summary = {
        "file": OOD_FILE,
        "method": "min squared Mahalanobis distance to predicted-class means of sqrt pooled features, "
                  "shared Ledoit-Wolf covariance fitted on training images; threshold on validation images",
        "layer": layer_name,
        "features": int(means.shape[1]),
        "classes_with_mean": int(means.shape[0]),
        "threshold": round(threshold, 6),
        "n_fit": int(len(fit_images)),
        "n_threshold": int(len(images)),
        "false_alarm_validation": round(float(flagged.mean()), 6),
        "false_alarm_validation_per_stratum": (
            {name: round(float(flagged[strata == name].mean()), 6) for name in per_stratum} if per_stratum else None),
        "threshold_rule": (f"highest of: at most {fit_false_alarm} of validation MRI flagged overall"
                           + (f", and within every source/class stratum of >= {min_stratum} images"
                              if strata is not None else "")),
        "cheap_check_rate_validation": round(float(cheap_flags.mean()), 6),
        "low_confidence_odds": LOW_CONFIDENCE_ODDS,
        "image_sides": image_sides,
    }
    return OodStats(layer_name, means, precision, threshold, summary)


def _predict_classes(keras_model, images: np.ndarray) -> np.ndarray:
    from mri_core.inference.model import predict_arrays

    return predict_arrays(keras_model, images).argmax(axis=1)


def npz_bytes(stats: OodStats) -> bytes:
    """The content of a package's `ood.npz`."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, means=stats.means, precision=stats.precision)
    return buffer.getvalue()


def info_section(stats: OodStats, npz: bytes) -> dict:
    """model.json's `ood` section for `stats` stored as `npz` (it names the npz's sha256)."""
    return {**stats.summary, "sha256": hashlib.sha256(npz).hexdigest()}


def write_stats(package: str | os.PathLike, stats: OodStats) -> dict:
    """Refit an existing package in place (bench/fit_ood.py): `ood.npz`, then model.json's `ood` section.

    model.json is written last, and names the npz's sha256, so a crash in between leaves a
    package that loads without the feature check rather than one with mismatched stats.
    Returns the updated model.json content. A new package gets its statistics before its
    rename instead (`train.save_result`).
    """
    package = Path(package)
    npz = npz_bytes(stats)
    replace_atomic(package / OOD_FILE, lambda tmp: Path(tmp).write_bytes(npz))
    info = json.loads((package / INFO_FILE).read_text(encoding="utf-8"))
    info[INFO_KEY] = info_section(stats, npz)
    write_info(package, info)
    return info


def write_info(package: str | os.PathLike, info: dict) -> None:
    """Replace a package's model.json in one step."""
    write_text_atomic(Path(package) / INFO_FILE, json.dumps(info, indent=2) + "\n")


# --- fitting a package on its validation split ---------------------------------------------

def split_records(info: dict, data_dirs: Sequence[str | os.PathLike] | None = None,
                  manifest: str | os.PathLike | None = None) -> dict[str, list]:
    """{"train", "val", "test": [ImageRecord]} of the split a package was trained on.

    With a manifest (given, or the one in model.json) it is followed; otherwise the split is
    recomputed the way training made it (same data, method and seed).
    """
    from mri_core.training import data as datasets
    from mri_core.training import duplicates, splits

    data = info.get("data", {})
    dataset = datasets.discover(list(data_dirs or data.get("roots", [])))
    manifest = manifest or data.get("manifest")
    if manifest:
        split = splits.apply_manifest(dataset, splits.read_manifest(manifest))
    elif data.get("split") == "naive":
        split = splits.split_naive(dataset, int(data.get("split_seed", 0)))
    else:
        split = splits.split_groups(dataset, duplicates.group_near_duplicates(dataset.records),
                                      int(data.get("split_seed", 0)))
    return {part: [r for r in dataset.records if split.get(r.sha256) == part] for part in ("train", "val", "test")}


def image_sides(paths: Sequence[str | os.PathLike]) -> dict | None:
    """Smallest shorter side and largest longer side of image files (headers only)."""
    from PIL import Image

    shorts, longs = [], []
    for path in paths:
        try:
            with Image.open(path) as image:
                shorts.append(min(image.size))
                longs.append(max(image.size))
        except OSError:
            continue  # DICOM/NIfTI or unreadable: not counted
    return {"short_min": int(min(shorts)), "long_max": int(max(longs)), "n": len(shorts)} if shorts else None


def prepare_for_fit(paths: Sequence[str | os.PathLike], image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image files -> (float32 (N, S, S, 1) model inputs as a reading makes them, (N,) cheap-check flags)."""
    images, flags = prepare_files(paths, image_size,
                                  inspect=lambda s: bool(image_check_reasons(s.pixels, s.warnings)))
    return images, np.array(flags, bool)


def fit_package(package: str | os.PathLike, data_dirs: Sequence[str | os.PathLike] | None = None,
                manifest: str | os.PathLike | None = None, parts: dict[str, list] | None = None) -> dict:
    """Fit the out-of-distribution check of a package on its own split; write it in.

    Gaussian on (at most MAX_FIT_IMAGES) training images, threshold on the validation
    images, image sizes from the training images. Returns the `ood` section of model.json.
    """
    from mri_core.inference.model import load_model

    scan_model = load_model(Path(package))
    parts = parts or split_records(scan_model.info, data_dirs, manifest)
    val, train = parts["val"], parts["train"]
    images, flags = prepare_for_fit([r.path for r in val], scan_model.image_size)
    subset = [train[k] for k in evenly_spaced(len(train))] if train else []
    fit_images = prepare_files([r.path for r in subset], scan_model.image_size)
    stats = fit_stats(scan_model.keras_model, scan_model.info["gradcam_layer"], fit_images, images, flags,
                      image_sides([r.path for r in train]), strata=[stratum(r.root_name, r.class_name) for r in val])
    return write_stats(package, stats)[INFO_KEY]


def fit_from_training(keras_model, layer_name: str, train_images: np.ndarray,
                      train_paths: Sequence[str | os.PathLike], val_paths: Sequence[str | os.PathLike],
                      val_strata: Sequence[str] | None = None) -> OodStats:
    """Right after training: fit the check from the training images already prepared (float32
    (N, S, S, 1)) and the validation files (re-read only for their cheap-check flags), as
    `fit_package` would from the saved package. ValueError with too few images (the caller,
    `train.fit_ood`, reports it as a `PartFailed` event and saves the package without them)."""
    images, flags = prepare_for_fit(val_paths, int(train_images.shape[1]))
    pick = evenly_spaced(len(train_images))
    return fit_stats(keras_model, layer_name, train_images[pick], images, flags, image_sides(train_paths),
                     strata=val_strata)
