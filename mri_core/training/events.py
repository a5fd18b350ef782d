"""What a training run tells the outside, as small frozen objects passed to `on_event`.

The CLI draws them as a progress bar, the Train page as curves, a background job records
them. `DataReady` comes once, then a `StepEnd` per training batch and an `EpochEnd` per epoch;
after the loop, a `PartFailed` for each part that failed without failing the run (the model is
saved without it), so that a page shows it, not only the server log.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    """One epoch done, with its metrics; `eta_s` is the estimated time left. `box_loss` is
    the mean box loss over the epoch's boxed images (None when the run uses no boxes);
    `mask_loss` the mean mask loss over its images with an outline (None without a mask
    output)."""

    epoch: int
    epochs: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    elapsed_s: float
    eta_s: float
    box_loss: float | None = None
    mask_loss: float | None = None


@dataclass(frozen=True)
class PartFailed:
    """A part of training after the loop failed and the run went on without it: `part` is "ood"
    (no out-of-distribution statistics were fitted) or "activation" (asked for, refused by the
    activation rule); `message` says why and what it means, in plain words."""

    part: str
    message: str


Event = DataReady | StepEnd | EpochEnd | PartFailed
