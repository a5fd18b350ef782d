"""Honest readings: is this input like what the model was trained on, and is the answer close?

Warnings a reading can carry (besides the ones `io` adds while decoding):

- `out_of_distribution`: the input is not a brain MRI slice like the training ones. Two
  kinds of evidence, either is enough:
  * cheap image checks on the decoded slice: a blank or nearly uniform image, a really
    coloured original (`io` notes `converted_from_color`), an aspect ratio no scan has,
    too little dark background (a photo, a document, a screenshot fills the frame);
  * the model's own features: the squared Mahalanobis distance of the global-average-pooled
    output of the Grad-CAM layer (the last conv block) to the nearest class mean, with one
    shared, shrunk (Ledoit-Wolf) covariance, as in Lee et al. 2018; classes are the model's
    own predictions, so no labels are needed.
  Means and covariance come from training MRI; the threshold from validation MRI
  (`fit_stats`), so that at most `TARGET_FALSE_ALARM` of them get the warning, overall and
  within each large enough source/class stratum.
- `low_confidence`: the calibrated tumor probability is within a factor
  `LOW_CONFIDENCE_ODDS` of the threshold in odds, i.e. |logit(p) - logit(t)| < ln 3; at a
  threshold of 0.5 that is 0.25 < p < 0.75 (one reading in four or more there is wrong).
- `image_small` / `image_large`: the shorter side is below the smallest, or the longer
  side above the largest, of the training images (`image_sides` in the stats); without
  stats, below the model's input size or above `FALLBACK_MAX_SIDE`.

The feature statistics live in the package: `ood.npz` (class means and precision matrix)
next to `model.keras`, and an `ood` section in `model.json` (threshold, sizes, the npz's
sha256). A package without them loads and reads as before, with the cheap checks only.
Never imports streamlit.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ModelInvalid

OOD_FILE = "ood.npz"
INFO_KEY = "ood"
OUT_OF_DISTRIBUTION, LOW_CONFIDENCE = "out_of_distribution", "low_confidence"
IMAGE_SMALL, IMAGE_LARGE = "image_small", "image_large"
# Share of validation MRI allowed to get `out_of_distribution` (cheap checks and features
# together). Fitted a little below the 2 % the product promises, so the held-out test split
# (a different sample) stays under it too.
TARGET_FALSE_ALARM = 0.02
FIT_FALSE_ALARM = 0.015
# A source/class stratum of validation MRI this large must also stay under FIT_FALSE_ALARM
# (smaller ones would make the threshold their single most unusual image).
MIN_STRATUM_IMAGES = 30
LOW_CONFIDENCE_ODDS = 3.0
FALLBACK_MAX_SIDE = 4096
# Cheap checks. A slice whose 1st-99th percentile range is below this is blank/uniform.
MIN_CONTRAST = 0.08
# No MRI slice in the data sets is more than 1.6 times longer than wide.
MAX_ASPECT = 2.0
# Air around the head: MRI slices have at least this share of near-black pixels
# (darker than DARK_LEVEL of the slice's 99th percentile); photos and pages have little.
# Set from the shipped split's validation MRI: 3 of 1,137 have less than 5 %.
DARK_LEVEL = 0.12
MIN_DARK_FRACTION = 0.05
SHRINKAGE_MIN_CLASS = 5  # a predicted class needs this many fit images for its own mean
MAX_FIT_IMAGES = 3000  # training images the Gaussian is fitted on (evenly spaced); plenty for 192 features
MIN_FIT_IMAGES = 20


# Plain words for every warning a reading can carry (ours and the ones `io` adds).
WARNING_TEXT = {
    OUT_OF_DISTRIBUTION: "This image does not look like the brain MRI slices the model was trained on "
                         "(a photo, document, screenshot, blank image, another body part or modality?). "
                         "The reading below is not meaningful for it.",
    LOW_CONFIDENCE: "The tumor probability is close to the decision threshold: the model cannot tell "
                    "well here; rely on the radiologist's reading.",
    IMAGE_SMALL: "The image is smaller than any the model was trained on; fine detail may be lost.",
    IMAGE_LARGE: "The image is larger than any the model was trained on; it was shrunk to the model's input size.",
    "converted_from_color": "The original image was in colour; it was converted to grey.",
    "had_alpha": "The image had transparent parts; they were shown as black.",
    "16_bit": "A 16-bit image was windowed to its 0.5-99.5 percentile range.",
    "32_bit": "A 32-bit image was windowed to its 0.5-99.5 percentile range.",
    "float": "A floating-point image was windowed to its 0.5-99.5 percentile range.",
    "animated_first_frame": "The file is animated; only its first frame was read.",
}


def describe_warning(name: str) -> str:
    """A warning's name -> one or two plain sentences for a reader."""
    return WARNING_TEXT.get(name, name.replace("_", " ").capitalize() + ".")


# --- cheap image checks ------------------------------------------------------------------

def image_check_reasons(pixels: np.ndarray, slice_warnings: Sequence[str] = ()) -> tuple[str, ...]:
    """(H, W) float32 in [0, 1] + io warnings -> why it is not an MRI slice (empty: looks like one)."""
    pixels = np.asarray(pixels, dtype=np.float32)
    reasons = []
    if "converted_from_color" in slice_warnings:
        reasons.append("colour")
    low, high = np.percentile(pixels, (1, 99))
    if high - low < MIN_CONTRAST:
        reasons.append("blank")
    height, width = pixels.shape
    if max(height, width) / min(height, width) > MAX_ASPECT:
        reasons.append("aspect")
    if high > 0 and float((pixels < DARK_LEVEL * high).mean()) < MIN_DARK_FRACTION:
        reasons.append("no_background")
    return tuple(reasons)


def size_warnings(shape: tuple[int, int], image_sides: dict | None, input_size: int) -> tuple[str, ...]:
    """(H, W) -> `image_small` / `image_large` against the training images' range."""
    short, long = min(shape), max(shape)
    smallest = image_sides["short_min"] if image_sides else input_size
    largest = image_sides["long_max"] if image_sides else FALLBACK_MAX_SIDE
    return ((IMAGE_SMALL,) if short < smallest else ()) + ((IMAGE_LARGE,) if long > largest else ())


def is_low_confidence(tumor_probability, threshold: float, odds: float = LOW_CONFIDENCE_ODDS) -> np.ndarray:
    """(N,) calibrated tumor probabilities -> (N,) bool: within `odds` of the threshold's odds."""
    p = np.clip(np.asarray(tumor_probability, dtype=np.float64), 1e-9, 1 - 1e-9)
    t = float(np.clip(threshold, 1e-9, 1 - 1e-9))
    gap = np.log(p / (1 - p)) - np.log(t / (1 - t))
    return np.abs(gap) < np.log(odds)


def low_confidence_band(threshold: float, odds: float = LOW_CONFIDENCE_ODDS) -> tuple[float, float]:
    """The open interval of tumor probabilities that get `low_confidence` at `threshold`."""
    threshold_odds = threshold / (1 - threshold)
    low, high = threshold_odds / odds, threshold_odds * odds
    return low / (1 + low), high / (1 + high)


# --- feature statistics --------------------------------------------------------------------

@dataclass(frozen=True)
class OodStats:
    """Mahalanobis statistics of one model's pooled features; see the module doc."""

    layer: str
    means: np.ndarray  # float32 (K, D): one per predicted class with enough fit images
    precision: np.ndarray  # float32 (D, D): inverse of the shared shrunk covariance
    threshold: float  # squared distance above which an input is out of distribution
    summary: dict  # the model.json section (plain JSON)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(N, D) pooled features -> (N,) squared distance to the nearest class mean."""
        centred = _transform(features)[:, None, :] - self.means[None]  # (N, K, D)
        return np.einsum("nkd,de,nke->nk", centred, self.precision, centred).min(axis=1)


def _transform(features: np.ndarray) -> np.ndarray:
    # Pooled ReLU outputs are skewed and non-negative; a square root makes them closer to Gaussian.
    return np.sqrt(np.maximum(np.asarray(features, dtype=np.float64), 0.0))


class FeatureExtractor:
    """Compiled (N, S, S, 1) float32 -> (N, D) global-average-pooled output of one layer."""

    def __init__(self, keras_model, layer_name: str):
        import keras
        import tensorflow as tf

        try:
            maps = keras_model.get_layer(layer_name).output
        except ValueError:
            raise ModelInvalid(f"Model {keras_model.name!r} has no layer {layer_name!r} for the "
                               "out-of-distribution check; refit it with bench/fit_ood.py.") from None
        pooled = keras.layers.GlobalAveragePooling2D(name="ood_pool")(maps) if len(maps.shape) == 4 else maps
        self._model = keras.Model(keras_model.inputs, pooled)
        shape = tuple(keras_model.input_shape[1:])
        self._call = tf.function(lambda x: self._model(x, training=False),
                                 input_signature=[tf.TensorSpec((None, *shape), tf.float32)])

    def __call__(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        out = [self._call(images[i:i + batch_size]).numpy() for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, int(self._model.output.shape[-1])), np.float32)


@dataclass
class OodDetector:
    """What a loaded model carries for its readings: stats (or None) and a feature extractor."""

    stats: OodStats | None
    extractor: FeatureExtractor | None
    image_sides: dict | None

    def feature_flags(self, batch: np.ndarray) -> np.ndarray:
        """(N, S, S, 1) model inputs -> (N,) bool: features too far from the training MRI."""
        if self.stats is None or self.extractor is None:
            return np.zeros(len(batch), bool)
        return self.stats.scores(self.extractor(batch)) > self.stats.threshold


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

    uint8 (N, S, S, 1) prepared inputs (x255); `cheap_flags` (N,) whether the cheap checks
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
    means, precision = fit_means_and_precision(extractor(fit_images.astype(np.float32) / 255.0),
                                               _predict_classes(keras_model, fit_images))
    scores = OodStats(layer_name, means, precision, np.inf, {}).scores(extractor(images.astype(np.float32) / 255.0))
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
    from .model import predict_arrays

    return predict_arrays(keras_model, images).argmax(axis=1)


# --- in the package --------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def replace_atomic(path: Path, write) -> None:
    """Write through a temp file in the same folder, then rename over `path` (one step)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_stats(package: str | os.PathLike, stats: OodStats) -> dict:
    """Put `stats` into a package: `ood.npz`, then the `ood` section of model.json.

    model.json is written last, and names the npz's sha256, so a crash in between leaves a
    package that loads without the feature check rather than one with mismatched stats.
    Returns the updated model.json content.
    """
    from .registry import INFO_FILE

    package = Path(package)

    def save_npz(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, means=stats.means, precision=stats.precision)

    replace_atomic(package / OOD_FILE, save_npz)
    info = json.loads((package / INFO_FILE).read_text(encoding="utf-8"))
    info[INFO_KEY] = {**stats.summary, "sha256": _sha256(package / OOD_FILE)}
    write_info(package, info)
    return info


def write_info(package: str | os.PathLike, info: dict) -> None:
    """Replace a package's model.json in one step."""
    from .registry import INFO_FILE

    replace_atomic(Path(package) / INFO_FILE,
                   lambda tmp: tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8"))


def read_stats(package: str | os.PathLike, info: dict) -> OodStats | None:
    """The package's OodStats, or None when it has none (or the npz does not match model.json)."""
    section = info.get(INFO_KEY)
    path = Path(package) / OOD_FILE
    if not isinstance(section, dict) or not path.is_file() or _sha256(path) != section.get("sha256"):
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            means, precision = arrays["means"], arrays["precision"]
    except (OSError, KeyError, ValueError) as exc:
        raise ModelInvalid(f"{path} cannot be read ({exc}); refit it with `python bench/fit_ood.py {package}`.") from exc
    features = means.shape[1]
    if means.ndim != 2 or precision.shape != (features, features) or features != section.get("features"):
        raise ModelInvalid(f"{path} does not match model.json's ood section; refit it with `python bench/fit_ood.py {package}`.")
    return OodStats(section["layer"], means, precision, float(section["threshold"]), section)


def load_detector(package: str | os.PathLike, info: dict, keras_model) -> OodDetector:
    """What `model.load_model` attaches: feature check when the package has stats, else cheap checks only."""
    stats = read_stats(package, info)
    extractor = FeatureExtractor(keras_model, stats.layer) if stats is not None else None
    if extractor is not None and extractor(np.zeros((1, *keras_model.input_shape[1:]), np.uint8)).shape[1] != stats.means.shape[1]:
        raise ModelInvalid(f"{package}: the ood statistics were fitted on another network; "
                           f"refit them with `python bench/fit_ood.py {package}`.")
    return OodDetector(stats, extractor, (info.get(INFO_KEY) or {}).get("image_sides"))


# --- readings --------------------------------------------------------------------------

def pixel_warnings(scan_model, slice_) -> tuple[str, ...]:
    """What the slice's own pixels tell (needs the full-size pixels): out_of_distribution by
    the cheap image checks, image_small / image_large."""
    detector = getattr(scan_model, "ood", None)
    sides = detector.image_sides if detector is not None else None
    cheap = (OUT_OF_DISTRIBUTION,) if image_check_reasons(slice_.pixels, slice_.warnings) else ()
    return cheap + size_warnings(slice_.pixels.shape, sides, scan_model.image_size)


def reading_warnings(scan_model, slices: Sequence, batch: np.ndarray, tumor_probability: np.ndarray,
                     pixel_notes: Sequence[tuple[str, ...]] | None = None) -> list[tuple[str, ...]]:
    """Slices, their (N, S, S, 1) model inputs and calibrated tumor probabilities -> warnings each.

    `pixel_notes`: each slice's `pixel_warnings`, when taken before its pixels were dropped
    (streaming); None: taken here. Returned in this order: out_of_distribution,
    low_confidence, image_small/large (the io warnings of each slice come on top, from the caller).
    """
    detector = getattr(scan_model, "ood", None)
    feature_flags = detector.feature_flags(batch) if detector is not None else np.zeros(len(slices), bool)
    low = is_low_confidence(tumor_probability, scan_model.threshold)
    if pixel_notes is None:
        pixel_notes = [pixel_warnings(scan_model, slice_) for slice_ in slices]
    out = []
    for i, own in enumerate(pixel_notes):
        notes = [OUT_OF_DISTRIBUTION] if feature_flags[i] or OUT_OF_DISTRIBUTION in own else []
        if low[i]:
            notes.append(LOW_CONFIDENCE)
        notes.extend(note for note in own if note != OUT_OF_DISTRIBUTION)
        out.append(tuple(notes))
    return out


# --- fitting a package on its validation split ---------------------------------------------

def split_records(info: dict, data_dirs: Sequence[str | os.PathLike] | None = None,
                  manifest: str | os.PathLike | None = None) -> dict[str, list]:
    """{"train", "val", "test": [ImageRecord]} of the split a package was trained on.

    With a manifest (given, or the one in model.json) it is followed; otherwise the split is
    recomputed the way training made it (same data, method and seed).
    """
    from . import datasets

    data = info.get("data", {})
    dataset = datasets.discover(list(data_dirs or data.get("roots", [])))
    manifest = manifest or data.get("manifest")
    if manifest:
        split = datasets.apply_manifest(dataset, datasets.read_manifest(manifest))
    elif data.get("split") == "naive":
        split = datasets.split_naive(dataset, int(data.get("split_seed", 0)))
    else:
        split = datasets.split_groups(dataset, datasets.group_near_duplicates(dataset.records),
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
    """Image files -> (uint8 (N, S, S, 1) model inputs x255, (N,) cheap-check flags)."""
    from concurrent.futures import ThreadPoolExecutor

    from . import io, preprocess

    def one(path):
        slice_ = io.read_file(path)[0]
        image = np.round(preprocess.prepare(slice_.pixels, image_size).image * 255.0).astype(np.uint8)
        return image, bool(image_check_reasons(slice_.pixels, slice_.warnings))

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        images, flags = zip(*pool.map(one, paths))
    return np.stack(images), np.array(flags)


def fit_package(package: str | os.PathLike, data_dirs: Sequence[str | os.PathLike] | None = None,
                manifest: str | os.PathLike | None = None, parts: dict[str, list] | None = None) -> dict:
    """Fit the out-of-distribution check of a package on its own split; write it in.

    Gaussian on (at most MAX_FIT_IMAGES) training images, threshold on the validation
    images, image sizes from the training images. Returns the `ood` section of model.json.
    """
    from .model import load_model

    scan_model = load_model(Path(package))
    parts = parts or split_records(scan_model.info, data_dirs, manifest)
    val, train = parts["val"], parts["train"]
    from .pipeline import prepare_paths

    images, flags = prepare_for_fit([r.path for r in val], scan_model.image_size)
    subset = [train[k] for k in evenly_spaced(len(train))] if train else []
    fit_images = prepare_paths([r.path for r in subset], scan_model.image_size)
    stats = fit_stats(scan_model.keras_model, scan_model.info["gradcam_layer"], fit_images, images, flags,
                      image_sides([r.path for r in train]), strata=[stratum(r.root_name, r.class_name) for r in val])
    return write_stats(package, stats)[INFO_KEY]


def fit_from_training(keras_model, layer_name: str, train_images: np.ndarray,
                      train_paths: Sequence[str | os.PathLike], val_paths: Sequence[str | os.PathLike],
                      val_strata: Sequence[str] | None = None) -> OodStats | None:
    """Right after training: fit the check from the training images already prepared (uint8
    (N, S, S, 1)) and the validation files (re-read only for their cheap-check flags), as
    `fit_package` would from the saved package. None (and a log line) with too few images."""
    import logging

    images, flags = prepare_for_fit(val_paths, int(train_images.shape[1]))
    pick = evenly_spaced(len(train_images))
    try:
        return fit_stats(keras_model, layer_name, train_images[pick], images, flags, image_sides(train_paths),
                         strata=val_strata)
    except ValueError as exc:
        logging.getLogger(__name__).warning("no out-of-distribution statistics: %s", exc)
        return None
