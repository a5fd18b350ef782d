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
  It is a caution, not a refusal: it also fires on some real MRI. A reading is `cannot_read`
  when the brain-MRI check says so, alone or together with this flag (`verdict.cannot_read_flags`).
- `low_confidence`: the calibrated tumor probability is within a factor
  `LOW_CONFIDENCE_ODDS` of the threshold in odds, i.e. |logit(p) - logit(t)| < ln 3; at a
  threshold of 0.5 that is 0.25 < p < 0.75 (one reading in four or more there is wrong).
  Only for a model without an uncertainty band (with one, the `uncertain` verdict says it),
  and never on a `cannot_read` reading (it makes no tumor call).
- `image_small` / `image_large`: the shorter side is below the smallest, or the longer
  side above the largest, of the training images (`image_sides` in the stats); without
  stats, below the model's input size or above `FALLBACK_MAX_SIDE`.

The feature statistics live in the package: `ood.npz` (class means and precision matrix)
next to `model.keras`, and an `ood` section in `model.json` (threshold, sizes, the npz's
sha256). A package without them loads and reads as before, with the cheap checks only.
Never imports streamlit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mri_core.io.errors import ModelInvalid
from mri_core.io.reading import IMAGE_LARGE, IMAGE_SMALL, LOW_CONFIDENCE, OUT_OF_DISTRIBUTION
from mri_core.package.info import MIN_OOD_FIT_IMAGES as MIN_FIT_IMAGES  # noqa: F401 (the fit's, training.ood_fit)
from mri_core.package.info import OOD_FILE, ood_stats_match
from mri_core.package.info import OOD_INFO_KEY as INFO_KEY

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
# The cheap checks' reasons that make a reading `cannot_read` (inference.verdict), not only
# `out_of_distribution`: a blank or nearly uniform slice, and a shape no scan has. None of the
# 12,082 real MRI slices in ../shared/data trips them, while `colour` and `no_background` flag 80
# of them (coloured or tightly cropped web-gathered slices), and the feature (Mahalanobis) check
# flags ~5 % of real MRI: those stay `out_of_distribution` warnings.
CANNOT_READ_REASONS = ("blank", "aspect")
SHRINKAGE_MIN_CLASS = 5  # a predicted class needs this many fit images for its own mean
MAX_FIT_IMAGES = 3000  # training images the Gaussian is fitted on (evenly spaced); plenty for 192 features


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


# --- in the package --------------------------------------------------------------------------

def read_stats(package: str | os.PathLike, info: dict) -> OodStats | None:
    """The package's OodStats, or None when it has none (or the npz does not match model.json)."""
    if not ood_stats_match(package, info):
        return None
    section, path = info[INFO_KEY], Path(package) / OOD_FILE
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
    return pixel_findings(scan_model, slice_)[0]


def pixel_findings(scan_model, slice_) -> tuple[tuple[str, ...], bool]:
    """(`pixel_warnings`, whether the cheap checks found a slice that cannot be read at all:
    one of `CANNOT_READ_REASONS`), from one look at the full-size pixels."""
    detector = getattr(scan_model, "ood", None)
    sides = detector.image_sides if detector is not None else None
    reasons = image_check_reasons(slice_.pixels, slice_.warnings)
    cheap = (OUT_OF_DISTRIBUTION,) if reasons else ()
    unreadable = any(reason in CANNOT_READ_REASONS for reason in reasons)
    return cheap + size_warnings(slice_.pixels.shape, sides, scan_model.image_size), unreadable


def out_of_distribution_flags(scan_model, slices: Sequence, batch: np.ndarray,
                              pixel_notes: Sequence[tuple[str, ...]] | None = None) -> np.ndarray:
    """(N,) bool: the reading gets `out_of_distribution` (the cheap checks, in `pixel_notes` or
    taken here, or the features of its (N, S, S, 1) model input)."""
    detector = getattr(scan_model, "ood", None)
    feature_flags = detector.feature_flags(batch) if detector is not None else np.zeros(len(slices), bool)
    if pixel_notes is None:
        pixel_notes = [pixel_warnings(scan_model, slice_) for slice_ in slices]
    return np.array([bool(feature_flags[i]) or OUT_OF_DISTRIBUTION in own for i, own in enumerate(pixel_notes)],
                    bool).reshape(-1)


def reading_warnings(scan_model, slices: Sequence, batch: np.ndarray, tumor_probability: np.ndarray,
                     pixel_notes: Sequence[tuple[str, ...]] | None = None, flags: np.ndarray | None = None,
                     no_call=None) -> list[tuple[str, ...]]:
    """Slices, their (N, S, S, 1) model inputs and calibrated tumor probabilities -> warnings each.

    `pixel_notes`: each slice's `pixel_warnings`, when taken before its pixels were dropped
    (streaming); None: taken here. `flags`: their `out_of_distribution_flags`, when already
    taken (the features are not computed twice); None: taken here. `no_call` (N,) bool: the
    readings that make no tumor call (`cannot_read`): they get no `low_confidence`. Nor does any
    reading of a model with an uncertainty band: its `uncertain` verdict says it (the odds rule
    is for older packages without a band). Returned in this order: out_of_distribution,
    low_confidence, image_small/large (the io warnings of each slice come on top, from the caller).
    """
    if pixel_notes is None:
        pixel_notes = [pixel_warnings(scan_model, slice_) for slice_ in slices]
    if flags is None:
        flags = out_of_distribution_flags(scan_model, slices, batch, pixel_notes)
    if getattr(scan_model, "uncertainty_band", None) is None:
        low = is_low_confidence(tumor_probability, scan_model.threshold)
    else:
        low = np.zeros(len(slices), bool)
    if no_call is not None:
        low = low & ~np.asarray(no_call, bool).reshape(-1)
    out = []
    for i, own in enumerate(pixel_notes):
        notes = [OUT_OF_DISTRIBUTION] if flags[i] else []
        if low[i]:
            notes.append(LOW_CONFIDENCE)
        notes.extend(note for note in own if note != OUT_OF_DISTRIBUTION)
        out.append(tuple(notes))
    return out
