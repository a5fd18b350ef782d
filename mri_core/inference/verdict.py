"""The tumor decision: class probabilities -> what a reader is told.

`decide` gives the label, the tumor flag and the tumor probability so that the label and
the flag never contradict each other; readings and metrics both use it. `verdicts` gives
the verdict every reading ends in (DESIGN.md, "Verdict"): `cannot_read` for an input that is
not a brain MRI slice, else `uncertain` inside the model's uncertainty band, `tumor` at or
above it, `no_tumor` below it (without a band: `tumor` iff at or above the threshold).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mri_core.io.errors import ModelInvalid, SettingsInvalid
from mri_core.io.reading import CANNOT_READ, NO_TUMOR, TUMOR, UNCERTAIN


def _class_indices(class_names: Sequence[str], no_tumor_classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """-> (indices of no-tumor classes, indices of tumor classes) into class_names."""
    class_names = list(class_names)
    unknown = [c for c in no_tumor_classes if c not in class_names]
    if unknown:
        raise ModelInvalid(
            f"No-tumor class(es) {', '.join(map(repr, unknown))} are not among the model's classes "
            f"({', '.join(class_names)}); fix no_tumor_classes in its model.json."
        )
    is_no_tumor = np.array([c in no_tumor_classes for c in class_names])
    if is_no_tumor.all():
        raise ModelInvalid(
            f"Every class of the model ({', '.join(class_names)}) means no tumor, so it cannot "
            "find one; fix no_tumor_classes in its model.json or retrain with tumor images."
        )
    return np.flatnonzero(is_no_tumor), np.flatnonzero(~is_no_tumor)


def decide(probabilities: np.ndarray, class_names: Sequence[str], no_tumor_classes: Sequence[str],
           threshold: float):
    """(N, C) probabilities -> (labels list[str], tumor (N,) bool, tumor_probability (N,) float64).

    tumor_probability = 1 - sum(p[no-tumor classes]); tumor = tumor_probability >= threshold;
    label = the most likely tumor class when tumor, else the most likely no-tumor class.
    A single (C,) row gives (label str, tumor bool, tumor_probability float).
    """
    rows = np.asarray(probabilities, dtype=np.float64)
    single = rows.ndim == 1
    rows = np.atleast_2d(rows)
    if rows.ndim != 2 or rows.shape[1] != len(class_names):
        raise ValueError(
            f"Expected probabilities of shape (N, {len(class_names)}) for classes "
            f"{', '.join(class_names)}; got {np.shape(probabilities)}."
        )
    if not 0.0 <= threshold <= 1.0:
        raise SettingsInvalid(f"The decision threshold must be between 0 and 1, got {threshold}.")
    no_tumor_idx, tumor_idx = _class_indices(class_names, no_tumor_classes)
    tumor_probability = np.clip(1.0 - rows[:, no_tumor_idx].sum(axis=1), 0.0, 1.0)
    tumor = tumor_probability >= threshold
    best_tumor = tumor_idx[rows[:, tumor_idx].argmax(axis=1)]
    # Without a no-tumor class tumor_probability is 1, so `tumor` holds and this is never used.
    best_no_tumor = no_tumor_idx[rows[:, no_tumor_idx].argmax(axis=1)] if len(no_tumor_idx) else best_tumor
    labels = [class_names[i] for i in np.where(tumor, best_tumor, best_no_tumor)]
    if single:
        return labels[0], bool(tumor[0]), float(tumor_probability[0])
    return labels, tumor, tumor_probability


def verdicts(tumor_probability, threshold: float, band: Sequence[float] | None = None,
             cannot_read=None) -> np.ndarray:
    """(N,) calibrated tumor probabilities -> (N,) verdicts (str array), vectorised.

    `cannot_read` (N,) bool: the input is not a brain MRI slice (the brain check, or a blank or
    unreadable slice); it wins over everything. Else with `band` (low, high): `uncertain` for
    low <= p < high, `tumor` for p >= high, `no_tumor` for p < low; without a band (None):
    `tumor` iff p >= threshold, as `decide`'s flag.
    """
    p = np.atleast_1d(np.asarray(tumor_probability, dtype=np.float64))
    if p.ndim != 1:
        raise ValueError(f"Expected (N,) tumor probabilities, got shape {np.shape(tumor_probability)}.")
    if band is None:
        if not 0.0 <= threshold <= 1.0:
            raise SettingsInvalid(f"The decision threshold must be between 0 and 1, got {threshold}.")
        out = np.where(p >= threshold, TUMOR, NO_TUMOR).astype(object)
    else:
        low, high = (float(v) for v in band)
        if not 0.0 <= low <= high <= 1.0:
            raise SettingsInvalid(f"The uncertainty band must be (low, high) with 0 <= low <= high <= 1, got {tuple(band)}.")
        out = np.where(p >= high, TUMOR, np.where(p >= low, UNCERTAIN, NO_TUMOR)).astype(object)
    if cannot_read is not None:
        refused = np.asarray(cannot_read, dtype=bool).reshape(-1)
        if refused.shape != p.shape:
            raise ValueError(f"Expected {len(p)} cannot-read flags, got {refused.shape}.")
        out[refused] = CANNOT_READ
    return out.astype(str)
