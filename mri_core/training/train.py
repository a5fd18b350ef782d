"""Training, assembled: data -> loop (with its callbacks) -> calibration -> model.json -> package.

`train` prepares the data once (`prepared`), builds the recipe's network, runs the loop
(`loop`) with history and best weights attached, and, as asked, checkpoints, progress and
cancelling (`callbacks`); then it calibrates and tests (`calibrate`) and assembles model.json
(`model_info`). `train_and_save` also fits the out-of-distribution statistics (`ood_fit`) and
writes the package whole, statistics included, before its one rename (`registry.save_package`):
nothing is written into a package after it appears. A fit that fails (too few images) leaves the
package without statistics and says so in a `PartFailed` event, as does an activation the
activation rule refuses (`package.activation`); the model is saved either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mri_core.inference.model import predict_arrays
from mri_core.inference.ood import INFO_KEY, OOD_FILE
from mri_core.package import activation, registry
from mri_core.training import checkpoint, losses, loop, ood_fit
from mri_core.training.batches import epoch_size, training_batches
from mri_core.training.calibrate import calibrate_and_test
from mri_core.training.callbacks import Cancel, Checkpoint, History, KeepBest, Progress, fingerprint
from mri_core.training.distribute import is_chief, make_strategy
from mri_core.training.events import DataReady, Event, PartFailed
from mri_core.training.model_info import model_info
from mri_core.training.not_mri import not_mri_figures
from mri_core.training.prepared import TrainingData, load_training_data
from mri_core.training.recipes import TrainSettings, build

log = logging.getLogger(__name__)

@dataclass
class TrainResult:
    keras_model: object
    info: dict = field(default_factory=dict)
    data: TrainingData | None = None  # what it was trained on (prepared images, files per split)


def fit(data: TrainingData, settings: TrainSettings, strategy=None,
        callbacks: Sequence[loop.Callback] = ()) -> tuple[object, list[dict]]:
    """Train a network of `settings.recipe` on `data`; returns (keras_model with the best
    validation epoch's weights, history). `callbacks` run after History and KeepBest."""
    import keras

    recipe = settings.recipe
    strategy = strategy or make_strategy(settings.strategy)
    keras.utils.set_random_seed(settings.seed)
    segment = segments(data, settings)
    with strategy.scope():
        model = build(settings.arch, settings.image_size, len(data.class_names), segment=segment)
    global_batch = settings.batch_size * strategy.num_replicas_in_sync
    n_train = epoch_size(data, settings.group_sampling)
    steps = int(np.ceil(n_train / global_batch))
    with strategy.scope():
        optimizer = keras.optimizers.Adam(recipe.schedule(settings.learning_rate, steps * settings.epochs))
    boxes = settings.box_weight > 0 and data.train_masks is not None
    batches = training_batches(data, settings.seed, global_batch, recipe.augment, boxes, strategy,
                               masks=segment, group_sampling=settings.group_sampling)
    step = loop.make_step(strategy, model, optimizer, recipe.gradcam_layer, data.tumor_mask,
                          settings.box_weight if boxes else 0.0, global_batch,
                          settings.mask_weight if segment else 0.0)
    val_x, val_y = data.arrays["val"]

    def validate() -> tuple[float, float]:
        probabilities = predict_arrays(model, val_x)
        return (losses.mean_loss(probabilities, val_y, data.tumor_mask),
                float(np.mean(losses.is_correct(probabilities, val_y, data.tumor_mask))))

    state = loop.LoopState(model, optimizer, strategy, settings.epochs)
    loop.run(state, step, batches, steps, n_train, validate, [History(), KeepBest(), *callbacks], boxes, segment)
    return model, state.history


def segments(data: TrainingData, settings: TrainSettings) -> bool:
    """Whether the run trains a segmentation output: a mask weight, and tumor outlines in the data."""
    kind = data.train_mask_kind
    return bool(settings.mask_weight) and kind is not None and bool(((kind == 1) & (data.train_has_box > 0)).any())


def train(data_dirs: Sequence[str | Path], settings: TrainSettings,
          on_event: Callable[[Event], None] | None = None,
          should_stop: Callable[[], bool] | None = None, strategy=None,
          checkpoint_dir: str | Path | None = None) -> TrainResult:
    """Train, calibrate and test a model; returns it with its full model.json content.

    With `checkpoint_dir`, the state after every completed epoch is saved there, and a
    checkpoint already there is resumed: training continues with the next epoch.
    """
    settings.check()
    data = load_training_data(data_dirs, settings)
    sizes = (len(data.arrays[part][1]) for part in ("train", "val", "test"))
    if on_event is not None:
        on_event(DataReady(*sizes, tuple(data.class_names), data.summary["skipped"],
                           data.summary["duplicate_groups"]))
    attached = [Checkpoint(checkpoint_dir, fingerprint(data, settings))] if checkpoint_dir is not None else []
    attached += [Cancel(should_stop)] if should_stop is not None else []
    attached += [Progress(on_event)] if on_event is not None else []
    keras_model, history = fit(data, settings, strategy, attached)
    calibration = calibrate_and_test(keras_model, data, settings.recipe)
    info = model_info(data_dirs, settings, data, history, calibration)
    if settings.not_mri:
        info["not_mri"] = not_mri_figures(settings.not_mri, settings.manifest, settings.seed, keras_model,
                                          settings.image_size, calibration["temperature"], data.tumor_mask,
                                          calibration["threshold"], settings.recipe.mirror_average)
    return TrainResult(keras_model, info, data)


def default_name(settings: TrainSettings, data_dirs: Sequence[str | Path]) -> str:
    return settings.name or f"{settings.arch}-{Path(data_dirs[0]).name}"[:64]


def train_and_save(data_dirs: Sequence[str | Path], settings: TrainSettings,
                   on_event: Callable[[Event], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   activate: bool = False,
                   checkpoint_dir: str | Path | None = None,
                   confirm: bool = False) -> registry.ModelEntry | None:
    """Train and save a package (chief only under multi-worker); optionally activate it.

    `activate` activates the saved model when it passes the activation rule, or with `confirm`
    whatever it finds; a refusal leaves the model saved but inactive and says why in a
    `PartFailed("activation", ...)` event. With `checkpoint_dir`, an interrupted run resumes
    from its last completed epoch; the checkpoint is removed once the package is saved.
    """
    strategy = make_strategy(settings.check().strategy)
    result = train(data_dirs, settings, on_event, should_stop, strategy, checkpoint_dir)
    stats = fit_ood(result, on_event) if is_chief(strategy) else None
    return save_if_chief(result, strategy, default_name(settings, data_dirs), activate, checkpoint_dir, stats,
                         confirm, on_event)


def _report(on_event: Callable[[Event], None] | None, part: str, message: str) -> None:
    log.warning("%s", message)
    if on_event is not None:
        on_event(PartFailed(part, message))


def fit_ood(result: TrainResult, on_event: Callable[[Event], None] | None = None):
    """The out-of-distribution statistics of a trained model, from the data in memory; None when
    they cannot be fitted (too few images, or an unexpected error), said in a `PartFailed` event."""
    data = result.data
    try:
        return ood_fit.fit_from_training(
            result.keras_model, result.info["gradcam_layer"], data.arrays["train"][0], data.paths["train"],
            data.paths["val"],
            [ood_fit.stratum(source, name) for source, name in zip(data.val_sources, data.true_names["val"])])
    except ValueError as exc:  # too few images
        reason = str(exc)
    except Exception as exc:  # a bug or an exhausted machine must not lose the trained model
        log.exception("fitting the out-of-distribution statistics failed")
        reason = f"the fit failed unexpectedly ({type(exc).__name__}: {exc}; see the server log)"
    _report(on_event, "ood", f"No out-of-distribution statistics: {reason[0].lower()}{reason[1:].rstrip('.')}. "
                             "The model is saved without them, so only the cheap image checks will flag scans unlike "
                             "its training images, and it is activated only after an explicit confirmation.")
    return None


def save_if_chief(result: TrainResult, strategy, name: str, activate: bool = False,
                  checkpoint_dir: str | Path | None = None, ood_stats=None, confirm: bool = False,
                  on_event: Callable[[Event], None] | None = None) -> registry.ModelEntry | None:
    """Save (and optionally activate, see `train_and_save`) the package on the chief; a worker
    saves nothing -> None.

    Every worker ends with the same weights, so one package is the whole result; each
    worker removes its own checkpoint once the run is complete.
    """
    if not is_chief(strategy):
        checkpoint.clear(checkpoint_dir)
        return None
    entry = save_result(result, name, ood_stats)
    checkpoint.clear(checkpoint_dir)
    if activate:
        try:
            registry.activate(entry.path, confirm=confirm)
        except activation.NeedsConfirmation as exc:
            _report(on_event, "activation", str(exc))
    return entry


def save_result(result: TrainResult, name: str, ood_stats=None) -> registry.ModelEntry:
    """Write the trained model as a new package version, whole, in one rename. `ood_stats`
    (`inference.ood.OodStats`) go in as `ood.npz` and model.json's `ood` section, which
    names the npz's sha256."""
    info, npz = result.info, None
    if ood_stats is not None:
        npz = ood_fit.npz_bytes(ood_stats)
        info = {**info, INFO_KEY: ood_fit.info_section(ood_stats, npz)}

    def write_files(folder: Path) -> None:
        result.keras_model.save(folder / registry.MODEL_FILE)
        if npz is not None:
            (folder / OOD_FILE).write_bytes(npz)

    return registry.save_package(name, info, write_files)
