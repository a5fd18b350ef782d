"""Training: one loop of our own, used under every `tf.distribute` strategy.

`train` discovers and splits the data (`datasets`), prepares every image once
(`pipeline.prepare_paths`), runs a custom training step through `strategy.run` (Keras 3's
`fit` fails under MultiWorkerMirroredStrategy, see DESIGN.md), keeps the weights of the
epoch with the lowest validation loss, fits a calibration temperature on validation and
measures the test split. It talks only through small event objects passed to `on_event`;
the CLI draws them as a progress bar, the Train page as plotly curves. `train_and_save`
then writes a package atomically through `registry`. Never imports streamlit.
"""

from __future__ import annotations

import functools
import shlex
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mri_core.training import recipes as architectures

from mri_core.training import checkpoint

from mri_core.training import data as datasets

from mri_core.training import ood_fit as ood

from mri_core.package import registry
from mri_core.inference.model import apply_temperature, predict_arrays
from mri_core.io.errors import DatasetInvalid, SettingsInvalid, TrainingCancelled

STRATEGIES = ("auto", "mirrored", "multiworker")
# `default` models operate at high sensitivity: the threshold is the highest one that still
# finds this share of the validation tumors (the paper's model keeps its plain 0.5).
TARGET_SENSITIVITY = 0.98
THRESHOLD_RANGE = (0.02, 0.5)
MIN_SOURCE_TUMORS = 10  # a source with fewer validation tumors cannot set the threshold
SPLITS = ("grouped", "naive")


# Per-architecture defaults for what the user leaves unset (CLI flags, Train page).
ARCH_DEFAULTS = {
    "paper": {"epochs": 30, "batch_size": 16, "learning_rate": 1e-3, "image_size": 128,
              "source_balance": 0.0, "box_weight": 0.0},
    "default": {"epochs": 36, "batch_size": 32, "learning_rate": 2e-3, "image_size": 128,
                "source_balance": 0.5, "box_weight": 1.5},
}


def settings_for(arch: str = "paper", **given) -> "TrainSettings":
    """TrainSettings for `arch`, with that architecture's defaults where `given` is None."""
    if arch not in ARCH_DEFAULTS:
        raise SettingsInvalid(f"Unknown architecture {arch!r}; choose {' or '.join(ARCH_DEFAULTS)}.")
    chosen = {key: value for key, value in given.items() if value is not None}
    return TrainSettings(arch=arch, **{**ARCH_DEFAULTS[arch], **chosen})


@dataclass(frozen=True)
class TrainSettings:
    """What the user may set; defaults are what the CLI and Train page start from."""

    arch: str = "paper"
    epochs: int = 30
    image_size: int = 128
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0
    name: str | None = None
    strategy: str = "auto"
    split: str = "grouped"  # grouped: near-duplicates kept together; naive: per image (as the paper)
    manifest: str | None = None  # a committed split manifest to follow instead of splitting anew
    # loss weight of each (source folder, class) stratum: (median stratum size / its size) ** this;
    # 0 = every image counts the same. Raises the few tumors shown in a rare source's style.
    source_balance: float = 0.0
    # weight of the box loss: on images with a tumor box (a root's boxes.csv), the class
    # evidence map (the Grad-CAM layer x the logits' weights) is pushed inside the box.
    box_weight: float = 0.0
    # share of healthy training images that get a boxed tumor pasted in (labelled with its
    # class, boxed where it lands), and of boxed tumors whose box is covered by the mirrored
    # other side of the same slice (labelled healthy): style alone then never decides the label.
    box_mix: float = 0.0
    # share of training images whose head has its grey levels inverted (1 - x inside the head):
    # T1 slices then look T2-like and T2 slices T1-like, tumor and healthy alike, so that the
    # contrast style (which tells the data sets' tumor and healthy images apart) cannot decide the label.
    invert: float = 0.0
    # share of healthy training images that get a synthetic focal lesion drawn in and are then
    # labelled "tumor of unknown type" (`synthetic_lesions`)
    lesions: float = 0.0

    def check(self) -> "TrainSettings":
        if self.arch not in architectures.ARCHITECTURES:
            raise SettingsInvalid(f"Unknown architecture {self.arch!r}; choose {' or '.join(architectures.ARCHITECTURES)}.")
        if not 1 <= self.epochs <= 500:
            raise SettingsInvalid(f"Epochs must be between 1 and 500, got {self.epochs}.")
        if not architectures.MIN_IMAGE_SIZE <= self.image_size <= architectures.MAX_IMAGE_SIZE:
            raise SettingsInvalid(f"Image size must be between {architectures.MIN_IMAGE_SIZE} and {architectures.MAX_IMAGE_SIZE} px, got {self.image_size}.")
        if not 1 <= self.batch_size <= 1024:
            raise SettingsInvalid(f"Batch size must be between 1 and 1024, got {self.batch_size}.")
        if not 0.0 < self.learning_rate <= 1.0:
            raise SettingsInvalid(f"Learning rate must be in (0, 1], got {self.learning_rate}.")
        if self.strategy not in STRATEGIES:
            raise SettingsInvalid(f"Unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}.")
        if self.split not in SPLITS:
            raise SettingsInvalid(f"Unknown split {self.split!r}; choose one of {', '.join(SPLITS)}.")
        if not 0.0 <= self.source_balance <= 1.0:
            raise SettingsInvalid(f"Source balance must be between 0 and 1, got {self.source_balance}.")
        if not 0.0 <= self.box_weight <= 10.0:
            raise SettingsInvalid(f"Box weight must be between 0 and 10, got {self.box_weight}.")
        if not 0.0 <= self.box_mix <= 1.0:
            raise SettingsInvalid(f"Box mix must be between 0 and 1, got {self.box_mix}.")
        if not 0.0 <= self.invert <= 1.0:
            raise SettingsInvalid(f"Invert share must be between 0 and 1, got {self.invert}.")
        if not 0.0 <= self.lesions <= 1.0:
            raise SettingsInvalid(f"Lesion share must be between 0 and 1, got {self.lesions}.")
        if self.name is not None:
            registry.check_model_name(self.name)
        return self


# --- events -----------------------------------------------------------------------------

@dataclass(frozen=True)
class DataReady:
    """The data set is read and split; training is about to start."""

    n_train: int
    n_val: int
    n_test: int
    class_names: tuple[str, ...]
    skipped: int
    duplicate_groups: int


@dataclass(frozen=True)
class StepEnd:
    """One training batch done (for a progress bar inside an epoch)."""

    epoch: int
    step: int
    steps: int


@dataclass(frozen=True)
class EpochEnd:
    """One epoch done, with its metrics; `eta_s` is the estimated time left."""

    epoch: int
    epochs: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    elapsed_s: float
    eta_s: float


Event = DataReady | StepEnd | EpochEnd


@dataclass
class TrainingData:
    """Prepared images (float32 in [0, 1], (N,S,S,1), as a reading prepares them) and labels per split, plus provenance.

    A label is a class index, or `len(class_names)` (`any_tumor_label`) for an image known
    to show a tumor of unknown type (a `yes/` folder next to typed folders): its loss is on
    the summed probability of the tumor classes, so it still teaches "tumor".
    """

    class_names: list[str]
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (images, labels)
    summary: dict
    true_names: dict[str, list[str]] = field(default_factory=dict)  # split -> true class per image
    train_weights: np.ndarray | None = None  # per training image loss weight (mean 1)
    train_masks: np.ndarray | None = None  # (N, S, S, 1) uint8 1 inside the tumor box; None: no boxes
    train_has_box: np.ndarray | None = None  # (N,) float32 1.0 where the image has a box
    val_sources: list[str] = field(default_factory=list)  # root name per validation image
    paths: dict[str, list[Path]] = field(default_factory=dict)  # split -> image files, in array order

    @property
    def any_tumor_label(self) -> int:
        return len(self.class_names)

    @property
    def tumor_mask(self) -> np.ndarray:
        """(C,) 1.0 for tumor classes, 0.0 for no-tumor classes."""
        return np.array([c not in datasets.NO_TUMOR_CLASSES for c in self.class_names], np.float32)


def model_classes(found: Sequence[str]) -> list[str]:
    """Classes the network outputs: `tumor` (unknown type) is folded into the types when typed."""
    typed = any(c in datasets.TUMOR_TYPES for c in found)
    return [c for c in found if not (typed and c == datasets.TUMOR_CLASS)]


def target_probability(probabilities: np.ndarray, labels: np.ndarray, tumor_mask: np.ndarray) -> np.ndarray:
    """Probability given to each image's label; for `any tumor` labels, the summed tumor classes."""
    n_classes = probabilities.shape[1]
    own = probabilities[np.arange(len(labels)), np.minimum(labels, n_classes - 1)]
    return np.where(labels == n_classes, probabilities @ tumor_mask, own)


def is_correct(probabilities: np.ndarray, labels: np.ndarray, tumor_mask: np.ndarray) -> np.ndarray:
    predicted = probabilities.argmax(-1)
    return np.where(labels == probabilities.shape[1], tumor_mask[predicted] == 1.0, predicted == labels)


@dataclass
class TrainResult:
    keras_model: object
    info: dict = field(default_factory=dict)
    data: TrainingData | None = None  # what it was trained on (prepared images, files per split)


# --- data -------------------------------------------------------------------------------

def load_training_data(data_dirs: Sequence[str | Path], settings: TrainSettings) -> TrainingData:
    """Discover, validate, group near-duplicates, split, and prepare every image once."""
    from mri_core.io.inputs import prepare_files

    dataset = datasets.discover(data_dirs)
    groups = datasets.group_near_duplicates(dataset.records)
    manifest_hash = None
    if settings.manifest:
        manifest = datasets.read_manifest(settings.manifest)
        split = datasets.apply_manifest(dataset, manifest)
        manifest_hash = datasets.manifest_hash(manifest)
    elif settings.split == "naive":
        split = datasets.split_naive(dataset, settings.seed)
    else:
        split = datasets.split_groups(dataset, groups, settings.seed)
    class_names = model_classes(dataset.class_names)
    arrays, true_names, paths = {}, {}, {}
    for part in ("train", "val", "test"):
        records = [r for r in dataset.records if split.get(r.sha256) == part]
        if not records:
            raise DatasetInvalid(
                f"The {part} split is empty ({len(dataset.records)} images in all); add more images per class."
            )
        images = prepare_files([r.path for r in records], settings.image_size)
        labels = np.array([class_names.index(r.class_name) if r.class_name in class_names else len(class_names)
                           for r in records], np.int32)
        arrays[part] = (images, labels)
        true_names[part] = [r.class_name for r in records]
        paths[part] = [r.path for r in records]
        if part == "train":
            train_weights = stratum_weights([(r.root_name, r.class_name) for r in records], settings.source_balance)
            train_masks, train_has_box = box_masks(records, settings.image_size) if settings.box_weight else (None, None)
        if part == "val":
            val_sources = [r.root_name for r in records]
    summary = {
        "roots": [str(Path(root)) for root in data_dirs],
        "kind": dataset.kind,
        "counts_per_class": {c: int(sum(r.class_name == c for r in dataset.records)) for c in dataset.class_names},
        "skipped": len(dataset.skipped),
        "split": settings.split if not settings.manifest else "manifest",
        "split_seed": settings.seed,
        "split_sizes": {part: int(len(arrays[part][1])) for part in arrays},
        "duplicate_groups": int(sum(np.bincount(groups) > 1)),
        "manifest": settings.manifest,
        "manifest_hash": manifest_hash,
        "test_leakage": int(datasets.leakage_count(split, groups, dataset)),
    }
    summary["source_balance"] = settings.source_balance
    summary["boxed_train_images"] = int(train_has_box.sum()) if train_has_box is not None else 0
    return TrainingData(class_names, arrays, summary, true_names, train_weights,
                        train_masks, train_has_box, val_sources, paths)


def box_masks(records: Sequence[datasets.ImageRecord], image_size: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Tumor boxes of the records whose root has a boxes.csv -> ((N, S, S, 1) uint8 masks, (N,) flags).

    (None, None) when no record has a box. A box whose stated image size differs from the
    file's is not used (it would land in the wrong place).
    """
    from concurrent.futures import ThreadPoolExecutor

    from mri_core.io import slices as io

    from mri_core.io import preprocess

    boxes_by_root = {root: datasets.read_boxes(root) for root in {r.root for r in records}}
    boxed = [(i, boxes_by_root[r.root][r.relative_path]) for i, r in enumerate(records)
             if r.relative_path in boxes_by_root[r.root]]
    if not boxed:
        return None, None
    masks = np.zeros((len(records), image_size, image_size, 1), np.uint8)
    has_box = np.zeros(len(records), np.float32)

    def fill(item):
        i, (box, shape) = item
        pixels = io.read_file(records[i].path)[0].pixels
        if tuple(pixels.shape[:2]) != shape:
            return
        crop = preprocess.prepare(pixels, image_size).crop_box  # the same crop as the model input's
        x0, y0, x1, y1 = preprocess.box_to_model(box, crop, image_size)
        masks[i, y0:y1 + 1, x0:x1 + 1] = 1
        has_box[i] = 1.0

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(fill, boxed))
    return masks, has_box


def stratum_weights(strata: Sequence[tuple[str, str]], exponent: float) -> np.ndarray:
    """Per-image weights (mean 1): (median stratum size / own stratum size) ** exponent."""
    names, index = np.unique(np.array([f"{root}/{name}" for root, name in strata]), return_inverse=True)
    sizes = np.bincount(index).astype(np.float64)
    weights = (np.median(sizes) / sizes[index]) ** exponent
    return (weights / weights.mean()).astype(np.float32)


# --- the loop ---------------------------------------------------------------------------

def make_strategy(name: str):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()  # reads the standard TF_CONFIG
    return tf.distribute.get_strategy()


def is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0)


def checkpoint_fingerprint(data: TrainingData, settings: TrainSettings) -> dict:
    """What must match for a checkpoint to be resumed (the number of epochs may grow)."""
    kept = {k: v for k, v in asdict(settings).items() if k not in ("epochs", "name", "strategy")}
    return {**kept, "class_names": data.class_names, "split_sizes": data.summary["split_sizes"]}


def fit(data: TrainingData, settings: TrainSettings, strategy=None,
        on_event: Callable[[Event], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        checkpoint_dir: str | Path | None = None):
    """Train a `settings.arch` model on data; returns (keras_model, history list).

    With `checkpoint_dir`, the state after every completed epoch is saved there, and a
    checkpoint already there is resumed: training continues with the next epoch.
    """
    import keras
    import tensorflow as tf

    emit = on_event or (lambda event: None)
    stop = should_stop or (lambda: False)
    strategy = strategy or make_strategy(settings.strategy)
    keras.utils.set_random_seed(settings.seed)
    n_classes = len(data.class_names)
    with strategy.scope():
        model = architectures.build(settings.arch, settings.image_size, n_classes)
    global_batch = settings.batch_size * strategy.num_replicas_in_sync
    train_x, train_y = data.arrays["train"]
    train_w = data.train_weights if data.train_weights is not None else np.ones(len(train_y), np.float32)
    steps = int(np.ceil(len(train_y) / global_batch))
    with strategy.scope():
        learning_rate = settings.learning_rate
        if settings.arch != "paper":  # the paper used a constant rate; ours decays to settle
            learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps * settings.epochs, alpha=0.02)
        optimizer = keras.optimizers.Adam(learning_rate)
    use_boxes = settings.box_weight > 0 and data.train_masks is not None
    # without boxes a (N, 1, 1, 1) stand-in keeps one pipeline and one step for both cases
    train_m = data.train_masks if use_boxes else np.zeros((len(train_y), 1, 1, 1), np.uint8)
    train_b = data.train_has_box if use_boxes else np.zeros(len(train_y), np.float32)
    augment = _augmenter(settings.arch, settings.invert)
    batch_seeds = tf.data.Dataset.random(seed=settings.seed, rerandomize_each_iteration=True).batch(2)
    batches = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y, train_w, train_m, train_b))
        .shuffle(len(train_y), seed=settings.seed, reshuffle_each_iteration=True)
        .batch(global_batch)
    )

    healthy_label = data.class_names.index(datasets.NO_TUMOR_CLASS) if datasets.NO_TUMOR_CLASS in data.class_names else None
    mix = use_boxes and settings.box_mix > 0 and healthy_label is not None

    lesions = settings.arch != "paper" and settings.lesions > 0 and healthy_label is not None

    def augment_batch(batch, seeds):
        images, labels = tf.cast(batch[0], tf.float32), batch[1]
        masks, has_box = tf.cast(batch[3], tf.float32), batch[4]
        if lesions:  # drawn before the other augmentations, so that they act on the lesion too
            chosen = (tf.random.stateless_uniform(tf.shape(labels), seeds + 20) < settings.lesions) & (labels == healthy_label)
            images, cores = synthetic_lesions(images, chosen, seeds)
            labels = tf.where(chosen, tf.cast(data.any_tumor_label, labels.dtype), labels)
            if use_boxes:  # the lesion's core is its box: the heatmap is taught to land on it
                masks = tf.maximum(masks, cores)
                has_box = tf.maximum(has_box, tf.cast(chosen, has_box.dtype))
        images, masks = augment(images, masks, seeds)
        if mix:
            return box_mix(images, labels, batch[2], masks, has_box, seeds, settings.box_mix, healthy_label)
        return images, labels, batch[2], masks, has_box

    train_ds = (
        tf.data.Dataset.zip(batches, batch_seeds)
        .map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(2)
    )
    dist_train = strategy.experimental_distribute_dataset(train_ds)

    tumor_mask = tf.constant(data.tumor_mask)
    cam_layer = architectures.GRADCAM_LAYERS[settings.arch]
    # images -> (probabilities, Grad-CAM layer maps (N, h, w, K)); shares the model's weights
    step_model = keras.Model(model.inputs, [model.outputs[0], model.get_layer(cam_layer).output])
    logits_kernel = model.get_layer("logits").kernel  # (K, C)

    def replica_step(images, labels, weights, masks, has_box):
        with tf.GradientTape() as tape:
            probabilities, maps = step_model(images, training=True)
            own = tf.gather(probabilities, tf.minimum(labels, n_classes - 1), axis=1, batch_dims=1)
            any_tumor = tf.reduce_sum(probabilities * tumor_mask, axis=-1)
            target = tf.where(labels == n_classes, any_tumor, own)
            per_example = -tf.math.log(tf.clip_by_value(target, 1e-7, 1.0))
            loss = tf.nn.compute_average_loss(per_example * weights, global_batch_size=global_batch)
            boxed = tf.zeros_like(per_example)
            if use_boxes:
                # only synthetic lesions give a tumor of unknown type a box
                shown = tf.argmax(probabilities * tumor_mask, axis=-1, output_type=tf.int32) if lesions else None
                boxed = box_loss(maps, logits_kernel, labels, masks, has_box, untyped_class=shown)
                loss += settings.box_weight * tf.nn.compute_average_loss(boxed, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        predicted = tf.argmax(probabilities, -1, output_type=tf.int32)
        hit = tf.where(labels == n_classes, tf.gather(tumor_mask, predicted) > 0.5, tf.equal(predicted, labels))
        correct = tf.reduce_sum(tf.cast(hit, tf.float32))
        return tf.reduce_sum(per_example), correct, tf.reduce_sum(boxed), tf.reduce_sum(has_box)

    @tf.function
    def train_step(images, labels, weights, masks, has_box):
        sums = strategy.run(replica_step, args=(images, labels, weights, masks, has_box))
        return tuple(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) for value in sums)

    history, best_loss, best_weights = [], np.inf, None
    fingerprint = checkpoint_fingerprint(data, settings)
    resumed = checkpoint.load(checkpoint_dir, fingerprint)
    if resumed:
        model.set_weights(resumed.weights)
        with strategy.scope():
            optimizer.build(model.trainable_variables)
        for variable, value in zip(optimizer.variables, resumed.optimizer):
            variable.assign(value)
        history, best_loss, best_weights = resumed.history, resumed.best_loss, resumed.best_weights
    started = time.monotonic() - (history[-1]["elapsed_s"] if history else 0.0)
    for epoch in range(len(history) + 1, settings.epochs + 1):
        loss_total, correct_total, box_total, box_count = 0.0, 0.0, 0.0, 0.0
        for step, batch in enumerate(dist_train, start=1):
            if stop():
                raise TrainingCancelled("Training was cancelled; no model was saved.")
            loss_sum, correct, box_sum, boxes = train_step(*batch)
            loss_total += float(loss_sum)
            correct_total += float(correct)
            box_total += float(box_sum)
            box_count += float(boxes)  # lesions add boxes, covered tumors lose theirs
            emit(StepEnd(epoch, step, steps))
        val_x, val_y = data.arrays["val"]
        val_probabilities = predict_arrays(model, val_x)
        val_loss = float(np.mean(-np.log(np.clip(target_probability(val_probabilities, val_y, data.tumor_mask), 1e-7, 1.0))))
        val_accuracy = float(np.mean(is_correct(val_probabilities, val_y, data.tumor_mask)))
        elapsed = time.monotonic() - started
        record = {
            "epoch": epoch,
            "loss": loss_total / len(train_y),
            "accuracy": correct_total / len(train_y),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "elapsed_s": round(elapsed, 2),
        }
        if use_boxes:
            record["box_loss"] = box_total / max(box_count, 1.0)
        history.append(record)
        if val_loss < best_loss:  # keep the weights of the best validation epoch
            best_loss, best_weights = val_loss, [w.copy() for w in model.get_weights()]
        if checkpoint_dir is not None:
            checkpoint.save(checkpoint_dir, checkpoint.CheckpointState(
                epoch, model.get_weights(), [np.asarray(v) for v in optimizer.variables],
                best_weights if best_weights is not None else model.get_weights(),
                float(best_loss), history), fingerprint)
        emit(EpochEnd(epoch, settings.epochs, record["loss"], record["accuracy"], val_loss, val_accuracy,
                      elapsed, elapsed / epoch * (settings.epochs - epoch)))
    model.set_weights(best_weights)
    return model, history


def box_loss(maps, logits_kernel, labels, masks, has_box, untyped_class=None):
    """Per image: -log(share of its true class's spatial evidence softmax that lies inside its box).

    maps (N, h, w, K) Grad-CAM layer output; logits_kernel (K, C); labels (N,) int32 (C =
    tumor of unknown type); masks (N, S, S, 1) float 1 inside the box; has_box (N,) float. A
    boxed tumor of unknown type (a synthetic lesion) is judged on the map of `untyped_class`
    (N,), the tumor class that Grad-CAM would explain for it; without it, such images add no
    loss. With global average pooling before `logits`, the class evidence map sum_k A_k w_kc
    is exactly what Grad-CAM on the logit shows, so this teaches the heatmap to land on the tumor.
    Returns (N,) float32, 0 where an image has no usable box.
    """
    import tensorflow as tf

    n_classes = logits_kernel.shape[-1]
    evidence = tf.einsum("nhwk,kc->nhwc", maps, logits_kernel)
    typed = labels < n_classes
    shown = labels if untyped_class is None else tf.where(typed, labels, tf.cast(untyped_class, labels.dtype))
    own = tf.gather(evidence, tf.minimum(shown, n_classes - 1), axis=3, batch_dims=1)  # (N, h, w)
    n, cells = tf.shape(own)[0], tf.shape(own)[1] * tf.shape(own)[2]
    log_share = tf.nn.log_softmax(tf.reshape(own, [n, cells]), axis=-1)
    inside = tf.image.resize(masks, tf.shape(own)[1:3], method="area")  # share of each cell in the box
    inside = tf.reshape(inside, [n, cells])
    usable = (has_box * tf.cast(tf.reduce_max(inside, axis=-1) > 0, tf.float32)
              * tf.cast(typed | (untyped_class is not None), tf.float32))
    per_example = -tf.reduce_logsumexp(log_share + tf.math.log(inside + 1e-6), axis=-1)
    return per_example * usable


MIX_FEATHER_PX = 4  # the pasted region's edge is blended over about twice this many pixels


def box_mix(images, labels, weights, masks, has_box, seeds, share: float, healthy_label: int):
    """Tumor transplants within a batch (`TrainSettings.box_mix`), all as tensors.

    A healthy image, with probability `share`, gets the box region of a randomly drawn boxed
    tumor image of the batch pasted in (soft-edged), takes that tumor's class and box. A
    boxed tumor image, with probability `share`, gets its box covered by the mirror image of
    the other side of the same slice, where the mirrored box does not overlap its own, and is
    labelled healthy (its box no longer counts). Returns (images, labels, weights, masks, has_box).
    """
    import tensorflow as tf

    n = tf.shape(images)[0]
    donors = tf.argsort(tf.random.stateless_uniform([n], seeds + 6))
    pasted = ((tf.random.stateless_uniform([n], seeds + 7) < share) & (labels == healthy_label)
              & (tf.gather(has_box, donors) > 0))
    flipped = tf.reverse(masks, axis=[2])
    apart = tf.reduce_sum(masks * flipped, axis=(1, 2, 3)) == 0
    covered = ((tf.random.stateless_uniform([n], seeds + 8) < share) & (has_box > 0) & apart
               & (labels != healthy_label) & ~pasted)

    def feather(mask):  # area down, bilinear up: a soft edge; far cheaper than a stride-1 pooling on a CPU
        side = tf.shape(mask)[1]
        small = tf.image.resize(mask, [side // MIX_FEATHER_PX, side // MIX_FEATHER_PX], method="area")
        return tf.maximum(tf.image.resize(small, [side, side], method="bilinear"), mask)  # the box itself fully

    def per_image(flags):  # (N,) -> (N, 1, 1, 1), to choose whole images
        return tf.reshape(flags, [-1, 1, 1, 1])

    donor_masks = tf.gather(masks, donors)
    edge = feather(donor_masks)
    images = tf.where(per_image(pasted), images * (1.0 - edge) + tf.gather(images, donors) * edge, images)
    edge = feather(masks)
    images = tf.where(per_image(covered), images * (1.0 - edge) + tf.reverse(images, axis=[2]) * edge, images)
    labels = tf.where(pasted, tf.gather(labels, donors), tf.where(covered, tf.cast(healthy_label, labels.dtype), labels))
    masks = tf.where(per_image(pasted), donor_masks, masks)
    has_box = tf.where(pasted, 1.0, tf.where(covered, 0.0, has_box))
    return images, labels, weights, masks, has_box


ROTATION_TURNS = 0.04  # largest rotation, in turns (0.04 = 14.4 degrees)
ZOOM = 0.1  # largest change of scale, either way


def geometric_augment(images, seeds):
    """(N, S, S, C) -> the same, each image flipped left-right at random, rotated and zoomed
    about its centre (bilinear, black outside). Every draw is a pure function of `seeds`
    (stateless random ops), so a run is repeatable however tf.data schedules its batches."""
    import math

    import tensorflow as tf

    n, side = tf.shape(images)[0], tf.shape(images)[1]
    flip = tf.random.stateless_uniform([n], seeds + 9) < 0.5
    images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
    angle = tf.random.stateless_uniform([n], seeds + 10, -ROTATION_TURNS, ROTATION_TURNS) * (2.0 * math.pi)
    scale = 1.0 + tf.random.stateless_uniform([n], seeds + 11, -ZOOM, ZOOM)
    centre = (tf.cast(side, tf.float32) - 1.0) / 2.0
    # output pixel (x, y) samples the input at scale * rotation * ((x, y) - centre) + centre
    a0, a1 = scale * tf.cos(angle), -scale * tf.sin(angle)
    b0, b1 = scale * tf.sin(angle), scale * tf.cos(angle)
    a2, b2 = centre - a0 * centre - a1 * centre, centre - b0 * centre - b1 * centre
    zero = tf.zeros_like(angle)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.stack([side, side]), fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT")


HEAD_LEVEL = 0.06  # grey level (after the percentile stretch) above which a pixel is taken as head


def head_mask(images):
    """(N, S, S, 1) in [0, 1] -> float 1 where a pixel is brighter than HEAD_LEVEL."""
    import tensorflow as tf

    return tf.cast(images > HEAD_LEVEL, images.dtype)


def head_interior(head, cell_px: int, share: float):
    """A head mask -> float 1 where the `cell_px` cells around a pixel, bilinearly blended, are
    more than `share` head: dark holes smaller than a cell are filled, the rim is eroded."""
    import tensorflow as tf

    side = tf.shape(head)[1]
    cells = tf.image.resize(head, [side // cell_px, side // cell_px], method="area")
    return tf.cast(tf.image.resize(cells, [side, side], method="bilinear") > share, head.dtype)


def invert_head(images, chosen):
    """(N, S, S, 1) in [0, 1] -> the same, with the head of each `chosen` (N,) image inverted
    (1 - x) and the background left black. The head is the pixels above a dark level, with
    dark holes inside it (CSF in T1) filled by an 8-px-cell closing, so they turn bright."""
    import tensorflow as tf

    head = head_mask(images)
    inverted = tf.maximum(head, head_interior(head, 8, 0.9)) * (1.0 - images)
    return tf.where(chosen[:, None, None, None], inverted, images)


LESION_BLOBS = 3  # Gaussian blobs summed into one irregular lesion
LESION_SIGMA_PX = (0.025, 0.08)  # blob size, as a share of the image side


def synthetic_lesions(images, chosen, seeds):
    """(N, S, S, 1) in [0, 1], (N,) bool -> (the same, with one synthetic focal lesion drawn into
    the brain of each `chosen` image; (N, S, S, 1) float masks of the lesions' cores, 0 for the
    others). A lesion is an irregular blob (a few overlapping Gaussians, soft edge) with a
    fainter halo, mostly bright (as tumors and edema show in T2), sometimes dark (as in T1). It
    teaches "a focal lesion is a tumor" in contrast styles that the labelled tumors rarely
    show. Every draw is a pure function of `seeds`."""
    import tensorflow as tf

    n, side = tf.shape(images)[0], tf.shape(images)[1]
    size = tf.cast(side, tf.float32)
    head = head_mask(images)
    # the lesion's centre: a random pixel well inside the head (anywhere, if none is)
    deep = tf.reshape(head_interior(head, 16, 0.95), [n, -1])
    deep = tf.where(tf.reduce_sum(deep, axis=1, keepdims=True) > 0, deep, tf.ones_like(deep))
    centre = tf.random.stateless_categorical(tf.math.log(deep + 1e-9), 1, seeds + 13)[:, 0]
    cy = tf.cast(centre // tf.cast(side, tf.int64), tf.float32)[:, None]
    cx = tf.cast(centre % tf.cast(side, tf.int64), tf.float32)[:, None]
    sigma = tf.random.stateless_uniform([n, LESION_BLOBS], seeds + 14, *LESION_SIGMA_PX) * size
    offset = tf.random.stateless_normal([n, LESION_BLOBS, 2], seeds + 15) * sigma[..., None] * 0.7
    bright = tf.random.stateless_uniform([n], seeds + 16) < 0.8
    level = tf.where(bright, tf.random.stateless_uniform([n], seeds + 17, 0.75, 1.0),
                     tf.random.stateless_uniform([n], seeds + 18, 0.02, 0.2))
    strength = tf.random.stateless_uniform([n, 2], seeds + 19, [0.6, 0.15], [1.0, 0.45])
    # every image's draws are made (so they do not depend on which are chosen); the lesion
    # maps, (K, blobs, S, S) Gaussians, only for the K chosen ones
    picked = tf.where(chosen)[:, 0]

    def only_chosen(values):
        return tf.gather(values, picked)

    cy, cx, sigma, offset, level, strength = map(only_chosen, (cy, cx, sigma, offset, level, strength))
    by, bx = (cy + offset[..., 0])[:, :, None, None], (cx + offset[..., 1])[:, :, None, None]
    grid = tf.range(size)
    yy, xx = grid[None, None, :, None], grid[None, None, None, :]
    distance2 = (yy - by) ** 2 + (xx - bx) ** 2  # (K, B, S, S)
    s2 = (2.0 * sigma ** 2)[:, :, None, None]
    core = tf.sigmoid((tf.reduce_sum(tf.exp(-distance2 / s2), axis=1) - 0.6) * 12.0)
    halo = tf.sigmoid((tf.reduce_sum(tf.exp(-distance2 / (s2 * 3.0)), axis=1) - 0.3) * 8.0)
    blend = (strength[:, 0, None, None] * core + strength[:, 1, None, None] * halo * (1.0 - core))[..., None]
    originals, inside = only_chosen(images), only_chosen(head)
    lesioned = originals + (level[:, None, None, None] - originals) * blend * inside
    cores = tf.cast(core[..., None] > 0.5, tf.float32) * inside
    return (tf.tensor_scatter_nd_update(images, picked[:, None], lesioned),
            tf.tensor_scatter_nd_update(tf.zeros_like(images), picked[:, None], cores))


def _augmenter(arch: str, invert: float = 0.0):
    """(images, masks, seeds) -> (images, masks). The paper trained without augmentation;
    `default` gets flips, small rotations and zoom (applied to the tumor-box masks alike),
    blur, gamma, contrast and noise, so that it does not learn one scanner's look, and on a
    share `invert` of the images the head's grey levels inverted (`invert_head`). Random
    draws are stateless, from the per-batch seeds: a run is repeatable."""
    import tensorflow as tf

    if arch == "paper":
        return lambda images, masks, seeds: (images, masks)

    @tf.autograph.experimental.do_not_convert  # plain tensor code; its one `if` is on static shapes
    def augment(images, masks, seeds):
        if invert > 0:
            images = invert_head(images, tf.random.stateless_uniform([tf.shape(images)[0]], seeds + 12) < invert)
        if masks.shape[1] == images.shape[1]:  # real masks: move them with the image
            both = geometric_augment(tf.concat([images, masks], axis=-1), seeds)
            images, masks = both[..., :1], tf.round(both[..., 1:])
        else:
            images = geometric_augment(images, seeds)
        per_image = [tf.shape(images)[0], 1, 1, 1]
        # blur: blend with a down-and-up sampled copy (lower scanner resolution, web JPEGs)
        side = tf.shape(images)[1]
        low = tf.cast(tf.cast(side, tf.float32) * tf.random.stateless_uniform([], seeds + 4, 0.35, 0.8), tf.int32)
        blurred = tf.image.resize(tf.image.resize(images, [low, low], method="area"), [side, side], method="bilinear")
        amount = tf.random.stateless_uniform(per_image, seeds + 5, 0.0, 1.0)
        images = images + (blurred - images) * amount
        gamma = tf.exp(tf.random.stateless_uniform(per_image, seeds, -0.3, 0.3))
        images = tf.pow(images + 1e-6, gamma)
        contrast = tf.random.stateless_uniform(per_image, seeds + 1, 0.85, 1.15)
        mean = tf.reduce_mean(images, axis=(1, 2, 3), keepdims=True)
        images = (images - mean) * contrast + mean
        noise_level = tf.random.stateless_uniform(per_image, seeds + 2, 0.0, 0.03)
        images += tf.random.stateless_normal(tf.shape(images), seeds + 3) * noise_level
        return tf.clip_by_value(images, 0.0, 1.0), masks

    return augment


def choose_threshold(tumor_probability: np.ndarray, is_tumor: np.ndarray,
                     target_sensitivity: float = TARGET_SENSITIVITY) -> float:
    """The highest threshold whose sensitivity on these (validation) images meets the target."""
    tumor_scores = np.sort(tumor_probability[is_tumor])
    if not len(tumor_scores):
        return 0.5
    # at threshold t, sensitivity = share of tumor scores >= t; allow this many misses:
    misses = int(np.floor((1.0 - target_sensitivity) * len(tumor_scores)))
    threshold = float(tumor_scores[misses]) - 1e-6
    return float(np.clip(threshold, *THRESHOLD_RANGE))


def choose_threshold_per_source(tumor_probability: np.ndarray, is_tumor: np.ndarray, sources: Sequence[str],
                                target_sensitivity: float = TARGET_SENSITIVITY) -> float:
    """The highest threshold that meets the target sensitivity within every source (data root)
    holding at least MIN_SOURCE_TUMORS validation tumors: a style seen rarely among the tumors
    must not be traded away for the common ones."""
    sources = np.asarray(sources)
    thresholds = [choose_threshold(tumor_probability, is_tumor, target_sensitivity)]
    for source in np.unique(sources):
        inside = sources == source
        if (is_tumor & inside).sum() >= MIN_SOURCE_TUMORS:
            thresholds.append(choose_threshold(tumor_probability[inside], is_tumor[inside], target_sensitivity))
    return float(min(thresholds))


def operating_point_summary(tumor_probability: np.ndarray, is_tumor: np.ndarray, sources: Sequence[str],
                            threshold: float) -> dict:
    """How the threshold was chosen and what it gives on validation, per source (for the model card)."""
    sources = np.asarray(sources)
    caught = tumor_probability >= threshold
    per_source = {}
    for source in np.unique(sources):
        inside = sources == source
        tumors, healthy = is_tumor & inside, ~is_tumor & inside
        per_source[str(source)] = {
            "sensitivity": float(caught[tumors].mean()) if tumors.any() else None, "tumors": int(tumors.sum()),
            "specificity": float((~caught[healthy]).mean()) if healthy.any() else None, "healthy": int(healthy.sum()),
        }
    return {
        "rule": f"highest threshold with validation sensitivity >= {TARGET_SENSITIVITY} overall and within every "
                f"source holding >= {MIN_SOURCE_TUMORS} validation tumors, kept in {list(THRESHOLD_RANGE)}",
        "target_sensitivity": TARGET_SENSITIVITY,
        "validation": per_source,
    }


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray, tumor_mask: np.ndarray | None = None) -> float:
    """Temperature minimising validation negative log-likelihood (Guo et al. 2017)."""
    from scipy.optimize import minimize_scalar

    mask = np.ones(probabilities.shape[1], np.float32) if tumor_mask is None else tumor_mask

    def nll(log_t: float) -> float:
        scaled = apply_temperature(probabilities, float(np.exp(log_t)))
        return float(-np.mean(np.log(np.clip(target_probability(scaled, labels, mask), 1e-12, 1.0))))

    best = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(best.x))


# --- the whole job ----------------------------------------------------------------------

def reproduce_command(data_dirs: Sequence[str | Path], settings: TrainSettings) -> str:
    parts = ["python", "-m", "mri_core", "train", *map(str, data_dirs), "--arch", settings.arch,
             "--epochs", str(settings.epochs), "--image-size", str(settings.image_size),
             "--batch-size", str(settings.batch_size), "--learning-rate", str(settings.learning_rate),
             "--seed", str(settings.seed), "--split", settings.split]
    if settings.manifest:
        parts += ["--manifest", str(settings.manifest)]
    parts += ["--source-balance", str(settings.source_balance), "--box-weight", str(settings.box_weight)]
    if settings.box_mix:
        parts += ["--box-mix", str(settings.box_mix)]
    if settings.invert:
        parts += ["--invert", str(settings.invert)]
    if settings.lesions:
        parts += ["--lesions", str(settings.lesions)]
    if settings.name:
        parts += ["--name", settings.name]
    return shlex.join(parts)


def train(data_dirs: Sequence[str | Path], settings: TrainSettings,
          on_event: Callable[[Event], None] | None = None,
          should_stop: Callable[[], bool] | None = None, strategy=None,
          checkpoint_dir: str | Path | None = None) -> TrainResult:
    """Train, calibrate and test a model; returns it with its full model.json content."""
    settings.check()
    data = load_training_data(data_dirs, settings)
    no_tumor = [c for c in data.class_names if c in datasets.NO_TUMOR_CLASSES]
    (on_event or (lambda e: None))(DataReady(
        *(len(data.arrays[p][1]) for p in ("train", "val", "test")), tuple(data.class_names),
        data.summary["skipped"], data.summary["duplicate_groups"]))
    keras_model, history = fit(data, settings, strategy, on_event, should_stop, checkpoint_dir)
    calibration = calibrate_and_test(keras_model, data, settings.arch)
    info = {
        "format_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "architecture": settings.arch,
        "input": {"size": settings.image_size, "channels": 1, "range": [0.0, 1.0]},
        "preprocessing": {"brain_crop": True, "square_pad": True, "normalise": "percentile 0.5-99.5 to [0, 1]"},
        "class_names": data.class_names,
        "no_tumor_classes": no_tumor,
        "outputs": "softmax over class_names; tumor_probability = 1 - sum(p[no_tumor_classes])"
                   + ("; images of a tumor of unknown type were trained on the summed tumor classes"
                      if datasets.TUMOR_CLASS in data.summary["counts_per_class"] and datasets.TUMOR_CLASS not in data.class_names else ""),
        **{key: calibration[key] for key in ("threshold", "operating_point", "temperature", "reading")},
        "gradcam_layer": architectures.GRADCAM_LAYERS[settings.arch],
        "settings": asdict(settings),
        "data": data.summary,
        "history": history,
        "test_metrics": calibration["test_metrics"],
        "command": reproduce_command(data_dirs, settings),
    }
    return TrainResult(keras_model, info, data)


def calibrate_and_test(keras_model, data: TrainingData, arch: str) -> dict:
    """A trained network read the way `arch` is read -> the model.json keys that depend on it:
    temperature (validation NLL), threshold and operating point (validation sensitivity, per
    source), reading, and the test metrics at that threshold."""
    from mri_core.training.evaluate import compute_metrics

    reading = dict(architectures.READING[arch])
    predict = functools.partial(predict_arrays, keras_model, mirror=reading["mirror_average"])
    no_tumor = [c for c in data.class_names if c in datasets.NO_TUMOR_CLASSES]
    val_x, val_y = data.arrays["val"]
    val_raw = predict(val_x)
    temperature = fit_temperature(val_raw, val_y, data.tumor_mask)
    threshold = 0.5
    operating_point = {"rule": "fixed 0.5 (the paper's argmax)"}
    if arch != "paper":
        val_tumor_probability = apply_temperature(val_raw, temperature) @ data.tumor_mask
        val_is_tumor = np.array([c not in datasets.NO_TUMOR_CLASSES for c in data.true_names["val"]])
        threshold = choose_threshold_per_source(val_tumor_probability, val_is_tumor, data.val_sources)
        operating_point = operating_point_summary(val_tumor_probability, val_is_tumor, data.val_sources, threshold)
    test_probabilities = apply_temperature(predict(data.arrays["test"][0]), temperature)
    metrics = compute_metrics(data.true_names["test"], test_probabilities, data.class_names, no_tumor, threshold)
    return {"temperature": temperature, "threshold": threshold, "operating_point": operating_point,
            "reading": reading, "test_metrics": metrics}


def default_name(settings: TrainSettings, data_dirs: Sequence[str | Path]) -> str:
    return settings.name or f"{settings.arch}-{Path(data_dirs[0]).name}"[:64]


def save_result(result: TrainResult, name: str) -> registry.ModelEntry:
    """Write the trained model as a new package version (atomic)."""
    return registry.save_package(name, result.info,
                                 lambda folder: result.keras_model.save(folder / registry.MODEL_FILE))


def train_and_save(data_dirs: Sequence[str | Path], settings: TrainSettings,
                   on_event: Callable[[Event], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   activate: bool = False,
                   checkpoint_dir: str | Path | None = None) -> registry.ModelEntry | None:
    """Train and save a package (chief only under multi-worker); optionally activate it.

    With `checkpoint_dir`, an interrupted run resumes from its last completed epoch; the
    checkpoint is removed once the package is saved.
    """
    strategy = make_strategy(settings.check().strategy)
    result = train(data_dirs, settings, on_event, should_stop, strategy, checkpoint_dir)
    stats = None
    if is_chief(strategy):  # validation statistics for out_of_distribution warnings, from the data in memory
        stats = ood.fit_from_training(result.keras_model, result.info["gradcam_layer"], result.data.arrays["train"][0],
                                      result.data.paths["train"], result.data.paths["val"],
                                      [ood.stratum(source, name) for source, name in
                                       zip(result.data.val_sources, result.data.true_names["val"])])
    return save_if_chief(result, strategy, default_name(settings, data_dirs), activate, checkpoint_dir, stats)


def save_if_chief(result: TrainResult, strategy, name: str, activate: bool = False,
                  checkpoint_dir: str | Path | None = None,
                  ood_stats=None) -> registry.ModelEntry | None:
    """Save (and optionally activate) the package on the chief; a worker saves nothing -> None.
    `ood_stats` (`ood.OodStats`) are written into the package when given.

    Every worker ends with the same weights, so one package is the whole result; each
    worker removes its own checkpoint once the run is complete.
    """
    if not is_chief(strategy):
        checkpoint.clear(checkpoint_dir)
        return None
    entry = save_result(result, name)
    if ood_stats is not None:
        ood.write_stats(entry.path, ood_stats)
        entry = registry.resolve(entry.path)
    checkpoint.clear(checkpoint_dir)
    if activate:
        registry.activate(entry.path)
    return entry
