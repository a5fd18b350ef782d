"""A loaded model package: the Keras model plus what `model.json` says about it.

`load_model` validates the package (required keys, class count against the network's
output, `safe_mode=True` so no Lambda layers or foreign code) and
returns a `ScanModel`. Everything a page or the CLI needs about a model comes from here;
nothing about a model is hard-coded elsewhere. A `ScanModel` is shared by every Streamlit
session: it is never mutated after loading. Never imports streamlit.
"""

from __future__ import annotations

import functools
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mri_core.io.errors import ModelInvalid
from mri_core.package.info import reading_of, segmentation_of, tumor_indices, uncertainty_band_of, validate_info
from mri_core.package.registry import MODEL_FILE, ModelEntry, read_info, resolve

@dataclass(frozen=True)
class ScanModel:
    """A model ready to read scans. `keras_model` maps (N,S,S,1) [0,1] -> softmax (N,C), and for a
    segmenting package also to its tumor mask (N,S,S,1) (output `mask_output` of the network)."""

    keras_model: Any
    info: dict
    path: Path
    gradcam: Any = field(repr=False, default=None)  # explain.GradCam, compiled once per model
    ood: Any = field(repr=False, default=None)  # ood.OodDetector; stats None = cheap checks only
    mask_output: int | None = None  # index of the mask among the network's outputs; None: no segmentation

    @property
    def ref(self) -> str:
        return f"{self.info['name']}@{self.info['version']}"

    @property
    def image_size(self) -> int:
        return int(self.info["input"]["size"])

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @property
    def no_tumor_classes(self) -> list[str]:
        return list(self.info["no_tumor_classes"])

    @property
    def tumor_indices(self) -> list[int]:
        return tumor_indices(self.info)

    @property
    def threshold(self) -> float:
        return float(self.info["threshold"])

    @property
    def temperature(self) -> float:
        return float(self.info["temperature"])

    @property
    def reading(self) -> dict:
        return reading_of(self.info)

    @property
    def mirror_average(self) -> bool:
        return bool(self.reading["mirror_average"])

    @property
    def segments(self) -> bool:
        """Whether readings carry a tumor mask (model.json's "segmentation" is set)."""
        return self.mask_output is not None

    @property
    def mask_threshold(self) -> float | None:
        """The mask's pixel threshold (model.json "segmentation"."threshold"); None: no segmentation."""
        return float(segmentation_of(self.info)["threshold"]) if self.segments else None

    @property
    def mask_cleanup(self) -> dict | None:
        """model.json's "segmentation"."cleanup" (`segmentation.threshold_mask`); None: none or no segmentation."""
        return segmentation_of(self.info).get("cleanup") if self.segments else None

    @property
    def uncertainty_band(self) -> tuple[float, float] | None:
        """(low, high) of model.json's "uncertainty_band"; None for a model without one."""
        return uncertainty_band_of(self.info)

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        """Softmax probabilities (N, C) -> temperature-scaled probabilities (N, C)."""
        return apply_temperature(probabilities, self.temperature)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N,S,S,1) model inputs in [0, 1] -> raw softmax (N, C), read as the package says."""
        return predict_arrays(self.keras_model, batch, mirror=self.mirror_average)

    def predict_with_masks(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """float32 (N,S,S,1) -> (raw softmax (N, C), mask probabilities (N, S, S) or None for a model
        that does not segment), both from one pass, read as the package says (`forward_with_masks`)."""
        if self.mask_output is None:  # exactly `predict`'s figures
            return self.predict(batch), None
        return forward_with_masks(self.keras_model, batch, self.mirror_average, self.mask_output)

    def library_cams(self, batch: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
        """float32 (N,S,S,1) -> (raw softmax (N, C) read as the package says, (N, h, w) maps of a
        tf-keras-vis method for the most likely tumor class under that reading, as Grad-CAM's)."""
        return self.library_cams_with_masks(batch, method)[:2]

    def library_cams_with_masks(self, batch: np.ndarray, method: str
                                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """`library_cams` plus the mask probabilities (N, S, S) (None for a model that does not
        segment), from the pass that gave the probabilities."""
        from mri_core.inference.explain import library_cams

        raw, masks = self.predict_with_masks(batch)
        tumor_idx = np.array(self.tumor_indices)
        targets = tumor_idx[raw[:, tumor_idx].argmax(axis=1)]
        return raw, library_cams(self.keras_model, self.info["gradcam_layer"], batch, targets, method), masks


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale softmax outputs as if their logits were divided by `temperature`."""
    logits = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=-1, keepdims=True)).astype(np.float32)



def forward(keras_model, batch: np.ndarray, mirror: bool = False) -> np.ndarray:
    """float32 (N,S,S,1) in [0, 1] -> raw softmax (N, C); with `mirror`, the mean of the
    slice's and its left-right mirror image's (one pass over both)."""
    batch = np.asarray(batch, dtype=np.float32)
    if not mirror:
        return np.asarray(_probabilities(keras_model(batch, training=False)))
    both = np.asarray(_probabilities(keras_model(np.concatenate([batch, batch[:, :, ::-1]]), training=False)))
    return (both[:len(batch)] + both[len(batch):]) / 2.0


def forward_with_masks(keras_model, batch: np.ndarray, mirror: bool = False, mask_output: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """float32 (N,S,S,1) in [0, 1] -> (raw softmax (N, C), mask probabilities (N, S, S) float32 from
    output `mask_output`, or None without one), one pass. With `mirror`, the slice and its mirror
    image go through together: probabilities are their mean, the mask the mean of the slice's and
    the mirror's mask flipped back (as `training.calibrate.predict_masks` reads it)."""
    batch = np.asarray(batch, dtype=np.float32)
    n = len(batch)
    outputs = keras_model(np.concatenate([batch, batch[:, :, ::-1]]) if mirror else batch, training=False)
    probabilities = np.asarray(_probabilities(outputs))
    masks = None if mask_output is None else np.asarray(outputs[mask_output], np.float32)[..., 0]
    if mirror:
        probabilities = (probabilities[:n] + probabilities[n:]) / 2.0
        if masks is not None:
            masks = (masks[:n] + masks[n:, :, ::-1]) / 2.0
    return probabilities, masks


def mask_output_index(keras_model, layer_name: str) -> int | None:
    """Which of the network's outputs the layer `layer_name` gives (None: not an output)."""
    try:
        tensor = keras_model.get_layer(layer_name).output
    except ValueError:
        return None
    return next((i for i, out in enumerate(keras_model.outputs) if out is tensor), None)


def _probabilities(outputs):
    """A model's outputs -> its class probabilities (the first output of a segmenting model)."""
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def predict_arrays(keras_model, images: np.ndarray, batch_size: int = 64, mirror: bool = False) -> np.ndarray:
    """float32 (N,S,S,1) model inputs in [0, 1] -> raw softmax probabilities (N, C), `batch_size`
    at a time (`forward`)."""
    outputs = [
        forward(keras_model, images[i:i + batch_size], mirror)
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, keras_model.outputs[0].shape[-1]), np.float32)


_LOAD_LOCK = threading.Lock()

def load_cached(package_path: str, version: int) -> ScanModel:
    """One load per process and package version: every page, session and thread shares it
    (never mutate it); a second caller waits for a load in progress instead of loading again."""
    with _LOAD_LOCK:
        return _load_once(str(package_path), int(version))


@functools.lru_cache(maxsize=2)
def _load_once(package_path: str, version: int) -> ScanModel:
    return load_model(package_path)


def load_model(ref: str | Path | ModelEntry) -> ScanModel:
    """Load a package by entry, folder path, `name` or `name@version`."""
    entry = ref if isinstance(ref, ModelEntry) else resolve(ref)
    info = read_info(entry.path)
    validate_info(info, entry.path)
    if not zipfile.is_zipfile(entry.path / MODEL_FILE):  # Keras would call a damaged file "not found"
        raise ModelInvalid(f"{entry.path / MODEL_FILE} is damaged (not a complete Keras archive; a copy may have "
                           "been cut short). Restore the package from a backup or retrain the model.")
    # Heavy, so only when a model is really loaded. explain first: it imports Keras and TensorFlow
    # without their startup notices (explain.quiet_tensorflow_import).
    from mri_core.inference.explain import GradCam
    # isort: split
    import keras

    try:
        keras_model = keras.saving.load_model(entry.path / MODEL_FILE, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged or unsafe file
        if "Lambda" in str(exc):
            raise ModelInvalid(
                f"{entry.path / MODEL_FILE} holds a Lambda layer (Python code that would run when it loads), so it "
                "is refused: models load with safe_mode=True. Retrain the model with this app.") from exc
        raise ModelInvalid(
            f"{entry.path / MODEL_FILE} could not be loaded safely ({type(exc).__name__}: {str(exc)[:200]}). "
            "Packages with Lambda layers or custom code are refused; retrain the model with this app."
        ) from exc
    n_outputs = keras_model.outputs[0].shape[-1]  # the class probabilities (a segmenting network adds its mask)
    if n_outputs != len(info["class_names"]):
        raise ModelInvalid(
            f"{entry.path}: model.json lists {len(info['class_names'])} classes but the network has {n_outputs} outputs."
        )
    expected_input = (info["input"]["size"], info["input"]["size"], info["input"].get("channels", 1))
    if tuple(keras_model.input_shape[1:]) != tuple(expected_input):
        raise ModelInvalid(f"{entry.path}: model.json says input {expected_input} but the network takes {keras_model.input_shape[1:]}.")
    try:
        keras_model.get_layer(info["gradcam_layer"])
    except ValueError as exc:
        raise ModelInvalid(f"{entry.path}: the Grad-CAM layer {info['gradcam_layer']!r} is not in the network.") from exc
    mask_output = _mask_output(keras_model, info, entry.path)
    from mri_core.inference.ood import load_detector

    reading = reading_of(info)
    gradcam = GradCam(keras_model, info["gradcam_layer"], tumor_indices(info),
                      mirror=reading["mirror_average"], smoothing_sigma=float(reading["heatmap_sigma"]),
                      mask_output=mask_output)
    return ScanModel(keras_model, info, entry.path, gradcam,
                     load_detector(entry.path, info, keras_model), mask_output)


def _mask_output(keras_model, info: dict, where: Path) -> int | None:
    """The index of the network's mask output that model.json's "segmentation" names (None when
    it names none); ModelInvalid when the network has no such (N, S, S, 1) output."""
    segmentation = segmentation_of(info)
    if segmentation is None:
        return None
    index = mask_output_index(keras_model, segmentation["output"])
    size = info["input"]["size"]
    if index is None or tuple(keras_model.outputs[index].shape[1:]) != (size, size, 1):
        raise ModelInvalid(f"{where}: model.json says the network segments through its output {segmentation['output']!r}, "
                           f"but the network has no such ({size}, {size}, 1) output; retrain the model or restore its package.")
    return index
