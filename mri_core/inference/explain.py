"""Grad-CAM heatmaps and the `Reading` a page or the CLI formats.

Plain Grad-CAM is served from one compiled `tf.function` per loaded model (`GradCam`),
because tf-keras-vis runs eagerly and is several times slower per image. tf-keras-vis
stays the reference (`gradcam_reference`): a test checks that both agree on real images.
Cams come out at the conv layer's grid (or, for a package read with smoothing, at the model
input's size); the caller maps them back to original pixels (`preprocess.heatmap_to_original`)
before `cam_peak_and_box`. The inference layer's modules import Keras and TensorFlow through
this one (`quiet_tensorflow_import`: without their import-time notices). Never imports streamlit.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import weakref

import numpy as np
from scipy import ndimage

from mri_core.io.errors import ModelInvalid

# What TensorFlow 2.21's C++ code prints while it is imported, whatever TF_CPP_MIN_LOG_LEVEL says
# (it is logged before TensorFlow reads that setting, through absl, which adds its own WARNING
# line, once per TensorFlow library): a notice that a server log would show on every start.
# Exactly these lines are dropped; everything else written to stderr meanwhile passes through.
_TENSORFLOW_STARTUP_NOTICES = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\n"
    rb"|I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. [^\n]*\n")
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def quiet_tensorflow_import():
    """While TensorFlow is first imported, stderr (file descriptor 2, where the C++ code writes)
    runs through a pipe that drops `_TENSORFLOW_STARTUP_NOTICES`; nothing else is held back."""
    with _STDERR_LOCK:  # one redirection at a time; a second loader finds TensorFlow imported
        if "tensorflow" in sys.modules:
            yield
            return
        sys.stderr.flush()
        real_stderr = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)

        def forward() -> None:
            with open(read_end, "rb", buffering=0) as pipe:
                for line in iter(pipe.readline, b""):
                    if not _TENSORFLOW_STARTUP_NOTICES.fullmatch(line):
                        os.write(real_stderr, line)

        forwarder = threading.Thread(target=forward, daemon=True, name="tensorflow-import-stderr")
        forwarder.start()
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(real_stderr, 2)  # the pipe's last writer is gone: the forwarder reads to its end
            forwarder.join(timeout=10)
            if not forwarder.is_alive():
                os.close(real_stderr)


with quiet_tensorflow_import():  # the inference layer's first import of TensorFlow
    import keras
    import tensorflow as tf

LOGITS_LAYER = "logits"
CAM_BOX_LEVEL = 0.5  # a box edge sits where the heatmap falls below half its peak
TOP_CLASS = -1  # target-class sentinel inside the compiled function: "each image's top class"


def _layer_output(model: keras.Model, layer_name: str):
    try:
        return model.get_layer(layer_name).output
    except ValueError:
        raise ModelInvalid(
            f"Model {model.name!r} has no layer named {layer_name!r} (needed for Grad-CAM); "
            "fix the Grad-CAM layer in its model.json or retrain the model."
        ) from None


def _normalise_per_image(cams: np.ndarray | tf.Tensor):
    """(N, h, w) >= 0 -> each map divided by its own max; an all-zero map stays zero."""
    peak = tf.reduce_max(cams, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(cams, peak)


def _gaussian_taps(sigma: float, max_radius: int, truncate: float = 4.0) -> np.ndarray:
    """A normalised 1-D Gaussian, float32 (2r+1,), r = truncate * sigma (scipy's default)."""
    radius = min(max(int(truncate * sigma + 0.5), 1), max_radius)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


class GradCam:
    """Compiled Grad-CAM for one Keras model; build once per loaded model, reuse.

    The score differentiated is the target class's logit (pre-softmax), as Grad-CAM's
    authors do and as tf-keras-vis does with `ReplaceToLinear`: softmax gradients shrink
    towards zero for confident predictions and mix in the other classes.
    """

    def __init__(self, model: keras.Model, layer_name: str, default_classes=None,
                 mirror: bool = False, smoothing_sigma: float = 0.0, mask_output: int | None = None):
        """`default_classes`: class indices a missing target chooses from (None: all).

        The pipeline passes the tumor classes, so by default a map shows the evidence for
        the most likely tumor class, whatever the verdict, in one pass.
        `mirror`: the slice and its left-right mirror go through together; probabilities are
        their mean (the target class is chosen from it) and the cam is the mean of both
        cams, the mirror's flipped back. `smoothing_sigma` > 0: cams come out at the model
        input's size, bilinearly upsampled and smoothed by a Gaussian of that many pixels.
        With neither, this is plain Grad-CAM at the layer's grid.
        `mask_output`: for a segmenting network, the index of its mask (N, S, S, 1) among its
        outputs; `read` then gives the mask of the same pass too (mirrored like the probabilities).
        The heatmap always explains the class output, never the mask.
        """
        image_shape = tuple(model.input_shape[1:])  # (S, S, 1)
        self.layer_name = layer_name
        self.image_shape = image_shape
        self.segments = mask_output is not None
        # inputs -> (conv maps (N, h, w, K), logits (N, C), probabilities (N, C)[, mask (N, S, S, 1)])
        self._cam_model = keras.Model(
            model.inputs,
            [_layer_output(model, layer_name), _layer_output(model, LOGITS_LAYER), model.outputs[0]]
            + ([model.outputs[mask_output]] if self.segments else []),
        )
        self.n_classes = int(model.outputs[0].shape[-1])
        allowed = np.zeros(self.n_classes, np.float32)
        allowed[list(range(self.n_classes)) if default_classes is None else list(default_classes)] = 1.0
        self._default_mask = tf.constant(allowed)
        self.mirror = bool(mirror)
        self._gaussian = _gaussian_taps(smoothing_sigma, image_shape[0] - 1) if smoothing_sigma > 0 else None
        # A fixed signature traces once for every batch size.
        self._compute = tf.function(
            self._compute_cams,
            input_signature=[
                tf.TensorSpec((None, *image_shape), tf.float32, name="images"),
                tf.TensorSpec((None,), tf.int32, name="target_classes"),
            ],
        )

    def _compute_cams(self, images, target_classes):
        n = tf.shape(images)[0]
        if self.mirror:  # one pass over the slices and their mirrors: (2N, S, S, 1)
            images = tf.concat([images, tf.reverse(images, axis=[2])], axis=0)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            # Watching the input records every op, so frozen (non-trainable) weights work too.
            tape.watch(images)
            outputs = self._cam_model(images, training=False)
            conv_maps, logits, probabilities = outputs[:3]
            if self.mirror:
                probabilities = (probabilities[:n] + probabilities[n:]) / 2.0
            # probabilities >= 0, so masked-out classes (set to -1) never win the argmax
            candidates = probabilities * self._default_mask - (1.0 - self._default_mask)
            top_classes = tf.argmax(candidates, axis=-1, output_type=tf.int32)
            targets = tf.where(target_classes == TOP_CLASS, top_classes, target_classes)
            if self.mirror:  # the mirror is explained for the same class
                targets = tf.concat([targets, targets], axis=0)
            # Images are independent at inference, so one summed score gives per-image gradients.
            scores = tf.gather(logits, targets, axis=1, batch_dims=1)  # (N,)
        grads = tape.gradient(scores, conv_maps)  # (N, h, w, K)
        channel_weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # (N, 1, 1, K)
        cams = _normalise_per_image(tf.nn.relu(tf.reduce_sum(conv_maps * channel_weights, axis=-1)))  # (N, h, w)
        if self.mirror:
            cams = _normalise_per_image(cams[:n] + tf.reverse(cams[n:], axis=[2]))
        if self._gaussian is not None:
            cams = self._smooth(cams)
        if not self.segments:
            return probabilities, cams
        masks = outputs[3][..., 0]  # (N or 2N, S, S)
        if self.mirror:  # the mirror's mask flipped back, averaged with the slice's
            masks = (masks[:n] + tf.reverse(masks[n:], axis=[2])) / 2.0
        return probabilities, cams, masks

    def _smooth(self, cams):
        """(N, h, w) -> (N, S, S): bilinear up to the input's size, then a separable Gaussian
        (edges mirrored, like scipy's "reflect"), renormalised."""
        taps = self._gaussian
        radius = (len(taps) - 1) // 2
        maps = tf.image.resize(cams[..., None], self.image_shape[:2], method="bilinear")
        maps = tf.pad(maps, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
        maps = tf.nn.conv2d(maps, taps.reshape(-1, 1, 1, 1), strides=1, padding="VALID")
        maps = tf.nn.conv2d(maps, taps.reshape(1, -1, 1, 1), strides=1, padding="VALID")
        return _normalise_per_image(tf.nn.relu(maps[..., 0]))

    @property
    def tracing_count(self) -> int:
        """How often the compiled function has been traced (1 after the first call)."""
        return self._compute.experimental_get_tracing_count()

    def __call__(self, images: np.ndarray, target_classes: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(N, S, S, 1) float32 -> (probabilities (N, C) float32, cams (N, h, w) float32 in [0, 1]).

        `target_classes` (N,) class indices; None = each image's top class among
        `default_classes`.
        """
        return self.read(images, target_classes)[:2]

    def read(self, images: np.ndarray, target_classes: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Like calling it, plus the mask of the same pass: (probabilities (N, C), cams (N, h, w),
        mask probabilities (N, S, S) float32, or None for a network without a mask output)."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"Expected prepared images of shape (N, {', '.join(map(str, self.image_shape))}), "
                f"got {images.shape}; pass them through preprocess.prepare first."
            )
        targets = self._check_targets(target_classes, len(images))
        outputs = self._compute(tf.constant(images), tf.constant(targets))
        masks = outputs[2].numpy() if self.segments else None
        return outputs[0].numpy(), outputs[1].numpy(), masks

    def _check_targets(self, target_classes, n_images: int) -> np.ndarray:
        if target_classes is None:
            return np.full(n_images, TOP_CLASS, dtype=np.int32)
        targets = np.asarray(target_classes).reshape(-1)
        if len(targets) != n_images or not np.all((targets >= 0) & (targets < self.n_classes)):
            raise ValueError(
                f"Expected {n_images} target classes in 0..{self.n_classes - 1}, got {targets.tolist()}."
            )
        return targets.astype(np.int32)


def gradcam_reference(model: keras.Model, layer_name: str, images: np.ndarray,
                      target_classes) -> np.ndarray:
    """tf-keras-vis Grad-CAM on the logit (ReplaceToLinear), normalised like `GradCam`.

    (N, S, S, 1) float32, (N,) class indices -> cams (N, h, w) float32 in [0, 1] at the
    layer's own grid. Slow (eager, clones the model); for tests and Grad-CAM++/Score-CAM.
    """
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    _layer_output(model, layer_name)  # a clear error for a missing layer
    targets = [int(t) for t in np.asarray(target_classes).reshape(-1)]
    # The CLI's stdout carries only JSON lines; whatever the library prints goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        visualizer = Gradcam(class_output_view(model), model_modifier=ReplaceToLinear(), clone=True)
        cams = visualizer(
            CategoricalScore(targets), np.asarray(images, dtype=np.float32),
            penultimate_layer=layer_name, seek_penultimate_conv_layer=False,
            expand_cam=False, normalize_cam=False,
        )
    cams = np.maximum(np.asarray(cams, dtype=np.float32), 0.0)
    return np.asarray(_normalise_per_image(cams), dtype=np.float32)


LIBRARY_CAMS = ("gradcam++", "scorecam")
_visualizers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # keras model -> {method: visualizer}


def _visualizer(model: keras.Model, method: str):
    """One tf-keras-vis visualizer per model and method (building one clones the model)."""
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

    cache = _visualizers.setdefault(model, {})
    if method not in cache:
        with contextlib.redirect_stdout(sys.stderr):
            # Grad-CAM++ differentiates the logit, like Grad-CAM; Score-CAM scores the
            # softmax output of each masked input, as its authors do. Both see the class
            # output only (a segmenting network's mask is not explained).
            cache[method] = (GradcamPlusPlus(class_output_view(model), model_modifier=ReplaceToLinear(), clone=True)
                             if method == "gradcam++" else Scorecam(_ScoreCamView(model), clone=False))
    return cache[method]


def class_output_view(model: keras.Model) -> keras.Model:
    """`model` itself when it has one output; for a segmenting network, a view of the same layers
    and weights that ends at its class probabilities (tf-keras-vis scores every output it finds)."""
    if len(model.outputs) == 1:
        return model
    return keras.Model(model.inputs, model.outputs[0], name=f"{model.name}_classes")


class _ScoreCamView(keras.Model):
    """`model` (same layers, same weights, its first output) as tf-keras-vis's Score-CAM calls it.

    Score-CAM hands `predict` a list of inputs and no `verbose`: on a model whose input is a
    single tensor Keras then warns that the inputs' structure does not match, and prints a
    progress bar per call. Here the input is a list of one, and `predict` is silent.
    """

    def __init__(self, model: keras.Model):
        super().__init__(inputs=list(model.inputs), outputs=model.outputs[0], name=f"{model.name}_scorecam")

    def predict(self, x, batch_size=None, verbose=0, **kwargs):  # verbose is ignored: always silent
        return super().predict(x, batch_size=batch_size, verbose=0, **kwargs)


def library_cams(model: keras.Model, layer_name: str, images: np.ndarray, target_classes,
                 method: str) -> np.ndarray:
    """Grad-CAM++ or Score-CAM from tf-keras-vis, normalised like `GradCam`.

    (N, S, S, 1) float32, (N,) class indices -> cams (N, h, w) float32 in [0, 1] at the
    layer's own grid (map them back with `preprocess.heatmap_to_original`). Eager and slow
    (Score-CAM runs the model once per channel of the layer), and silent: no progress bar, and
    anything else the library prints goes to stderr.
    """
    from tf_keras_vis.utils.scores import CategoricalScore

    if method not in LIBRARY_CAMS:
        raise ValueError(f"Unknown CAM method {method!r}; tf-keras-vis serves {', '.join(LIBRARY_CAMS)}.")
    _layer_output(model, layer_name)  # a clear error for a missing layer
    images = np.asarray(images, dtype=np.float32)
    targets = [int(t) for t in np.asarray(target_classes).reshape(-1)]
    if not len(images):
        return np.zeros((0, 1, 1), np.float32)
    with contextlib.redirect_stdout(sys.stderr):
        cams = _visualizer(model, method)(
            CategoricalScore(targets), images, penultimate_layer=layer_name,
            seek_penultimate_conv_layer=False, expand_cam=False, normalize_cam=False)
    cams = np.nan_to_num(np.maximum(np.asarray(cams, dtype=np.float32), 0.0)).reshape(len(images), *np.shape(cams)[-2:])
    return np.asarray(_normalise_per_image(cams), dtype=np.float32)


def cam_peak_and_box(heatmap: np.ndarray, level: float = CAM_BOX_LEVEL
                     ) -> tuple[tuple[int, int], tuple[int, int, int, int]] | tuple[None, None]:
    """(H, W) heatmap in original pixels -> (peak (x, y), inclusive box (x0, y0, x1, y1)).

    The box bounds the 8-connected region at or above `level` * peak that contains the
    peak, so a second, weaker hot spot elsewhere does not stretch it. All-zero -> (None, None).
    """
    if not 0.0 < level <= 1.0:
        raise ValueError(f"level must be in (0, 1], got {level}.")
    heatmap = np.nan_to_num(np.asarray(heatmap, dtype=np.float32))
    if heatmap.ndim != 2:
        raise ValueError(f"Expected a 2-D heatmap (H, W), got shape {heatmap.shape}.")
    peak_value = float(heatmap.max()) if heatmap.size else 0.0
    if peak_value <= 0.0:
        return None, None
    peak_y, peak_x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    regions, _ = ndimage.label(heatmap >= level * peak_value, structure=np.ones((3, 3)))
    ys, xs = np.nonzero(regions == regions[peak_y, peak_x])
    return (int(peak_x), int(peak_y)), (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
