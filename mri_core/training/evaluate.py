"""The metrics of a model on labelled slices.

The tumor call comes from `inference.verdict.decide`, as for a reading. `compute_metrics` returns a plain-JSON dict (the
`evaluate --json` line and a package's `test_metrics`). Imports only numpy at module level
(scikit-learn is imported when metrics are computed). Never imports streamlit.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mri_core.training.data import FOLDER_CLASSES, NO_TUMOR_CLASS
from mri_core.inference.verdict import decide
from mri_core.io.errors import DatasetInvalid

ECE_BINS = 15
RELIABILITY_BINS = 10  # the reliability diagram on the Diagnose and Models pages
# DESIGN.md's folder names that mean "no tumor", for true classes a model does not have
# (e.g. Kaggle `no/` against a model whose no-tumor class is `notumor`).
NO_TUMOR_NAMES = frozenset({NO_TUMOR_CLASS} | {f for f, c in FOLDER_CLASSES.items() if c == NO_TUMOR_CLASS})
METRIC_DECIMALS = 6


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE: sum over equal-width confidence bins of |bin| / n * |accuracy - mean confidence|.

    (N,) confidences in [0, 1], (N,) bool. Bins are (lo, hi], the first also holds 0
    (Guo et al. 2017). Works on top-class confidence or on a binary probability's max(p, 1-p).
    """
    confidences = np.asarray(confidences, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=np.float64).reshape(-1)
    if len(confidences) == 0 or len(confidences) != len(correct):
        raise ValueError(f"Expected equally many confidences and outcomes (at least one), got "
                         f"{len(confidences)} and {len(correct)}.")
    bins = np.clip(np.ceil(confidences * n_bins).astype(int) - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    gaps = np.abs(np.bincount(bins, correct, n_bins) - np.bincount(bins, confidences, n_bins))
    # per bin |sum(correct) - sum(confidence)| / n == |bin| / n * |accuracy - confidence|
    return float(gaps[counts > 0].sum() / len(confidences))


def reliability_bins(tumor_probability: np.ndarray, true_tumor: np.ndarray, n_bins: int = RELIABILITY_BINS) -> list[dict]:
    """Reliability diagram of the tumor probability: per equal-width bin (lo, hi] (the first also
    holds 0), how many images, their mean probability and the share that really had a tumor.
    Bins without images are left out. A calibrated model has tumor_rate ~ mean_probability."""
    p = np.asarray(tumor_probability, dtype=np.float64).reshape(-1)
    truth = np.asarray(true_tumor, dtype=np.float64).reshape(-1)
    bins = np.clip(np.ceil(p * n_bins).astype(int) - 1, 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        members = bins == b
        if members.any():
            out.append({"lo": round(b / n_bins, 4), "hi": round((b + 1) / n_bins, 4), "n": int(members.sum()),
                        "mean_probability": _metric(p[members].mean()), "tumor_rate": _metric(truth[members].mean())})
    return out


def _metric(value) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), METRIC_DECIMALS)


def _ratio(numerator: float, denominator: float) -> float | None:
    return _metric(numerator / denominator) if denominator else None


def compute_metrics(true_classes: Sequence[str], probabilities: np.ndarray, class_names: Sequence[str],
                    no_tumor_classes: Sequence[str], threshold: float) -> dict:
    """True class names (N,) and probabilities (N, C) -> plain-JSON metrics.

    A reported label is right when it equals the true class; a true class the model does not
    have (`tumor`/`yes` of unknown type, `no`, a type a binary model does not name) is judged
    on tumor vs no tumor only. `confusion_matrix` rows are true classes, columns reported
    labels, both in `labels` order (the model's classes, then any other true classes).
    Sensitivity, specificity and ROC AUC are tumor vs no tumor (None where undefined).
    `ece` is on the top-class confidence; `ece_tumor` on the binary tumor probability.
    """
    from sklearn.metrics import confusion_matrix, roc_auc_score

    class_names = list(class_names)
    true_classes = [str(c) for c in true_classes]
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(true_classes) == 0:
        raise DatasetInvalid("There are no images to evaluate; point evaluation at folders with images.")
    if probabilities.shape != (len(true_classes), len(class_names)):
        raise ValueError(f"Expected probabilities of shape ({len(true_classes)}, {len(class_names)}), "
                         f"got {probabilities.shape}.")
    labels, tumor, tumor_probability = decide(probabilities, class_names, no_tumor_classes, threshold)
    true_tumor = np.array([not (c in no_tumor_classes or c in NO_TUMOR_NAMES) for c in true_classes])

    def is_right(true_class: str, reported: str) -> bool:
        if true_class in class_names:
            return true_class == reported
        return (reported not in no_tumor_classes) == (true_class not in NO_TUMOR_NAMES)

    correct = np.array([is_right(t, r) for t, r in zip(true_classes, labels)])
    top_classes = [class_names[i] for i in probabilities.argmax(axis=1)]
    top_correct = np.array([is_right(t, r) for t, r in zip(true_classes, top_classes)])
    others = sorted(set(true_classes) - set(class_names))
    matrix_labels = class_names + others
    matrix = confusion_matrix(true_classes, labels, labels=matrix_labels)

    true_array, label_array = np.array(true_classes), np.array(labels)
    per_class = {
        name: {
            "precision": _ratio(correct[label_array == name].sum(), (label_array == name).sum()),
            "recall": _ratio(correct[true_array == name].sum(), (true_array == name).sum()),
            "support": int((true_array == name).sum()),
        }
        for name in matrix_labels
    }
    both_kinds = 0 < true_tumor.sum() < len(true_tumor)
    tumor_confidence = np.maximum(tumor_probability, 1.0 - tumor_probability)
    return {
        "n": len(true_classes),
        "accuracy": _metric(correct.mean()),
        "roc_auc": _metric(roc_auc_score(true_tumor, tumor_probability)) if both_kinds else None,
        "sensitivity": _ratio((tumor & true_tumor).sum(), true_tumor.sum()),
        "specificity": _ratio((~tumor & ~true_tumor).sum(), (~true_tumor).sum()),
        "confusion_matrix": {"labels": matrix_labels, "matrix": matrix.astype(int).tolist()},
        "per_class": per_class,
        "ece": _metric(expected_calibration_error(probabilities.max(axis=1), top_correct)),
        "ece_tumor": _metric(expected_calibration_error(tumor_confidence, (tumor_probability >= 0.5) == true_tumor)),
        "threshold": _metric(threshold),
        "reliability": reliability_bins(tumor_probability, true_tumor),
    }


def evaluate_dirs(scan_model, data_dirs: Sequence[str], manifest: str | None = None, part: str = "test") -> dict:
    """Metrics of a loaded model on folder-per-class data (or one part of a split manifest)."""
    from mri_core.training import data as datasets
    from mri_core.training import splits
    from mri_core.io.inputs import prepare_files

    dataset = datasets.discover(data_dirs)
    records = dataset.records
    if manifest:
        split = splits.apply_manifest(dataset, splits.read_manifest(manifest))
        records = [r for r in records if split.get(r.sha256) == part]
    if not records:
        raise DatasetInvalid(f"No images to evaluate in {', '.join(map(str, data_dirs))}"
                             + (f" in the {part} part of {manifest}" if manifest else "") + ".")
    images = prepare_files([r.path for r in records], scan_model.image_size)
    probabilities = scan_model.calibrate(scan_model.predict(images))
    metrics = compute_metrics([r.class_name for r in records], probabilities, scan_model.class_names,
                              scan_model.no_tumor_classes, scan_model.threshold)
    return {**metrics, "skipped": len(dataset.skipped), "model": scan_model.ref}
