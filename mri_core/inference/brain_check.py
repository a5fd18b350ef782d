"""Is this a brain MRI slice like the training ones? A small classifier of its own, whatever model reads.

The tumor classifiers only know brain MRI: shown a head CT they call it a glioma, shown a
photo of a person they call it a meningioma. This check answers the question before them,
and does not depend on which classifier is active (a clinic's own model has no CT examples).
It is a separate package, shipped in `assets/checks/brain-mri/` (`CHECK_DIR`):

- `check.keras`: a small CNN (Keras 3, loaded with `safe_mode=True`: no Lambda layers) that
  maps two views of a slice to the probability that it is NOT a brain MRI slice;
- `check.json`: input size, decision threshold and the rule that chose it, validation
  figures, the split manifest's hash, the training command, and the sha256 of `check.keras`;
- `CARD.md`: what it is for, its figures with 95 % intervals, its limits.
`training.brain_check_fit` writes it; `bench/train_brain_check.py` rebuilds the shipped one.

What the network sees (`prepare_check_input`), grey pixels only (colour never reaches it:
`io` converts every upload to grey (H, W) float32 in [0, 1]; CT files and many MRI JPEGs are
RGB anyway):
- channel 0, the whole image: letterboxed (padded with black) to a square, resized, values
  as decoded (not stretched), so a white page, a blank frame or a small head stays visible;
- channel 1, the head: `preprocess.brain_crop_box` on the whole view, squared, cut from the
  letterboxed copy, resized and stretched to [0, 1] by robust percentiles, as the tumor
  models see a slice.
Both come from one `WORK_SIDE` px copy, so a 2,000 px scan costs little more than a 256 px
one (bench/results_brain_check.json, `speed`: about 0.7 ms of CPU to prepare a 512 px slice
and 0.5 ms for the network, batched; about 2 ms for one slice alone).

`BrainCheck.is_not_mri` is `not_mri_probability >= threshold`. The threshold was chosen on
validation MRI, to keep readings of real MRI (see check.json's `rule`), not to catch every
CT; the card gives both rates. Never imports streamlit or the training layer.
"""

from __future__ import annotations

import hashlib
import json
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from mri_core.io import preprocess
from mri_core.io.errors import ModelInvalid, NotASlice

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHECK_DIR = PROJECT_ROOT / "assets" / "checks" / "brain-mri"
CHECK_MODEL_FILE, CHECK_INFO_FILE, CHECK_CARD_FILE = "check.keras", "check.json", "CARD.md"
CHECK_FORMAT = "mri-brain-check"
CHECK_FORMAT_VERSION = 1
# The one reduced copy both views are cut from: large enough for the head search, small
# enough that preparation does not grow with the upload's size.
WORK_SIDE = 128
INPUT_SIZE = 64
CHANNELS = 2
# Robust min-max of the head view (the same percentiles the tumor models' preparation uses).
HEAD_PERCENTILES = preprocess.NORMALISE_PERCENTILES
# Network batch: bounds memory for a whole volume; small batches cost nothing extra.
BATCH = 256


def work_image(pixels: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """(H, W) grey in [0, 1] -> float32 (side, side): letterboxed (black) about the centre, resized.

    Shrinking averages areas (no aliasing of thin text); enlarging a small image is bilinear.
    NaN becomes 0 and values are clipped to [0, 1] (after resizing: cheaper on a large scan).
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim != 2 or min(pixels.shape) < 2:
        raise NotASlice(f"The brain-MRI check takes one 2-D grey slice (height, width), got shape {pixels.shape}.")
    pixels = pixels.astype(np.float32, copy=False)
    height, width = pixels.shape
    scale = side / max(height, width)
    size = (min(side, max(1, round(width * scale))), min(side, max(1, round(height * scale))))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(pixels, size, interpolation=interpolation)
    small = np.clip(np.nan_to_num(small, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    out = np.zeros((side, side), np.float32)
    top, left = (side - size[1]) // 2, (side - size[0]) // 2
    out[top:top + size[1], left:left + size[0]] = small
    return out


def views(work: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """A `work_image` -> float32 (size, size, 2): the whole image and the stretched head crop.

    The head is searched on the whole view (`preprocess.brain_crop_box`: fast at this size)
    and cut from the sharper work image.
    """
    work = np.asarray(work, np.float32)
    whole = cv2.resize(work, (size, size), interpolation=cv2.INTER_AREA)
    factor = work.shape[0] / size
    bx0, by0, bx1, by1 = preprocess.brain_crop_box(whole)
    box = (int(bx0 * factor), int(by0 * factor), int((bx1 + 1) * factor) - 1, int((by1 + 1) * factor) - 1)
    x0, y0, x1, y1 = preprocess.square_box(box)
    crop = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.float32)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1 + 1, work.shape[1]), min(y1 + 1, work.shape[0])
    if ix0 < ix1 and iy0 < iy1:
        crop[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = work[iy0:iy1, ix0:ix1]
    interpolation = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    head = cv2.resize(crop, (size, size), interpolation=interpolation)
    low, high = np.percentile(head, HEAD_PERCENTILES)
    if high - low < 1e-6:
        low, high = float(head.min()), float(head.max())
    head = np.clip((head - low) / (high - low), 0.0, 1.0) if high - low >= 1e-6 else np.zeros_like(head)
    return np.stack([whole, head.astype(np.float32)], axis=-1)


def prepare_check_input(slices_pixels: Sequence[np.ndarray], size: int = INPUT_SIZE) -> np.ndarray:
    """N grey slices (H, W) in [0, 1] -> float32 (N, size, size, 2), what the check's network takes."""
    batch = [views(work_image(pixels), size) for pixels in slices_pixels]
    return np.stack(batch) if batch else np.zeros((0, size, size, CHANNELS), np.float32)


def weights_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class BrainCheck:
    """A loaded check. Shared by every session and thread: never mutate it."""

    path: Path
    threshold: float
    input_size: int
    info: dict = field(repr=False)
    keras_model: Any = field(repr=False, compare=False)

    def not_mri_probability(self, slices_pixels: Sequence[np.ndarray]) -> np.ndarray:
        """N grey (H, W) float32 slices in [0, 1] -> (N,) float64 probability each is not a brain MRI slice."""
        slices_pixels = list(slices_pixels)
        if not slices_pixels:
            return np.zeros(0, np.float64)
        inputs = prepare_check_input(slices_pixels, self.input_size)
        return probabilities(self.keras_model, inputs)

    def is_not_mri(self, slices_pixels: Sequence[np.ndarray]) -> np.ndarray:
        """N grey slices -> (N,) bool: the probability is at or above the check's threshold."""
        return self.not_mri_probability(slices_pixels) >= self.threshold


def probabilities(keras_model, inputs: np.ndarray) -> np.ndarray:
    """(N, S, S, 2) prepared inputs -> (N,) float64 not-MRI probabilities, BATCH at a time."""
    inputs = np.asarray(inputs, np.float32)
    # predict_on_batch runs one compiled function: about 2 ms for one slice, where an eager call takes 15.
    out = [np.asarray(keras_model.predict_on_batch(inputs[i:i + BATCH]), np.float64).reshape(-1)
           for i in range(0, len(inputs), BATCH)]
    return np.clip(np.concatenate(out), 0.0, 1.0) if out else np.zeros(0, np.float64)


def read_check_info(folder: str | Path) -> dict:
    """check.json of a check package, validated; ModelInvalid says what is wrong."""
    folder = Path(folder)
    try:
        info = json.loads((folder / CHECK_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelInvalid(f"{folder / CHECK_INFO_FILE} is not readable JSON ({exc}); restore the check from git "
                           f"or rebuild it with bench/train_brain_check.py.") from None
    problems = []
    if not isinstance(info, dict) or info.get("format") != CHECK_FORMAT:
        raise ModelInvalid(f"{folder / CHECK_INFO_FILE} is not a brain-MRI check (no \"format\": \"{CHECK_FORMAT}\").")
    if info.get("format_version") != CHECK_FORMAT_VERSION:
        problems.append(f"format_version {info.get('format_version')!r} (this app reads {CHECK_FORMAT_VERSION})")
    threshold = info.get("threshold")
    if not isinstance(threshold, (int, float)) or not 0.0 < float(threshold) < 1.0:
        problems.append(f"threshold {threshold!r} (must lie strictly between 0 and 1)")
    size = info.get("input_size")
    if not isinstance(size, int) or size < preprocess.MIN_MODEL_SIZE:
        problems.append(f"input_size {size!r}")
    if not isinstance(info.get("weights_sha256"), str):
        problems.append("no weights_sha256")
    if problems:
        raise ModelInvalid(f"{folder / CHECK_INFO_FILE} is damaged: {'; '.join(problems)}. Rebuild it with "
                           f"bench/train_brain_check.py.")
    return info


def load_check(folder: str | Path) -> BrainCheck:
    """Load and verify a check package (no cache); ModelInvalid when it is damaged or unsafe."""
    folder = Path(folder)
    info = read_check_info(folder)
    model_file = folder / CHECK_MODEL_FILE
    if not zipfile.is_zipfile(model_file):
        raise ModelInvalid(f"{model_file} is missing or damaged (not a complete Keras archive). Restore the check "
                           f"from git or rebuild it with bench/train_brain_check.py.")
    if weights_sha256(model_file) != info["weights_sha256"]:
        raise ModelInvalid(f"{model_file} is not the network {CHECK_INFO_FILE} was written for (sha256 differs); "
                           f"restore the check from git or rebuild it with bench/train_brain_check.py.")
    # Heavy, so only when a check is really loaded; explain imports TensorFlow without its startup notices.
    from mri_core.inference.explain import quiet_tensorflow_import

    with quiet_tensorflow_import():
        import keras
    try:
        keras_model = keras.saving.load_model(model_file, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged or unsafe file
        raise ModelInvalid(f"{model_file} could not be loaded safely ({type(exc).__name__}: {str(exc)[:200]}); "
                           f"Lambda layers and custom code are refused. Rebuild the check.") from exc
    size = int(info["input_size"])
    if tuple(keras_model.input_shape[1:]) != (size, size, CHANNELS) or keras_model.output_shape[1:] != (1,):
        raise ModelInvalid(f"{model_file}: takes {keras_model.input_shape[1:]} and gives {keras_model.output_shape[1:]}, "
                           f"not ({size}, {size}, {CHANNELS}) -> (1,) as {CHECK_INFO_FILE} says.")
    # Built here, once: the compiled predict function is then only called, from any thread.
    probabilities(keras_model, np.zeros((1, size, size, CHANNELS), np.float32))
    return BrainCheck(path=folder, threshold=float(info["threshold"]), input_size=size, info=info,
                      keras_model=keras_model)


_CACHE: dict[str, BrainCheck] = {}
_CACHE_LOCK = threading.Lock()


def load_brain_check(path: str | Path | None = None) -> BrainCheck | None:
    """The check package at `path` (default `CHECK_DIR`), loaded once per process and path.

    None when there is no check package there (no check.json and no check.keras); a damaged
    one raises ModelInvalid rather than quietly reading every upload as MRI. A second caller
    waits for a load in progress instead of loading again.
    """
    folder = Path(path) if path is not None else CHECK_DIR
    key = str(folder.resolve())
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        if not (folder / CHECK_INFO_FILE).exists() and not (folder / CHECK_MODEL_FILE).exists():
            return None
        check = load_check(folder)
        _CACHE[key] = check
        return check
