"""The evaluation metrics, on constructed probabilities with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mri_core.io.errors import DatasetInvalid
from mri_core.training.evaluate import compute_metrics, expected_calibration_error

TYPED = ["glioma", "meningioma", "notumor", "pituitary"]
BINARY = ["notumor", "tumor"]


def test_metrics_of_a_hand_counted_case():
    # 3 gliomas, 2 no-tumor, 1 pituitary, 1 tumor of unknown type (Kaggle `yes`).
    true_classes = ["glioma", "glioma", "glioma", "notumor", "notumor", "pituitary", "tumor"]
    probabilities = np.array([
        [0.70, 0.10, 0.10, 0.10],  # glioma     -> glioma      right
        [0.20, 0.50, 0.20, 0.10],  # glioma     -> meningioma  wrong type, tumor found
        [0.10, 0.05, 0.80, 0.05],  # glioma     -> notumor     missed
        [0.05, 0.05, 0.85, 0.05],  # notumor    -> notumor     right
        [0.10, 0.10, 0.20, 0.60],  # notumor    -> pituitary   false alarm
        [0.05, 0.05, 0.10, 0.80],  # pituitary  -> pituitary   right
        [0.30, 0.30, 0.30, 0.10],  # tumor      -> glioma      right: tumor of unknown type found
    ])

    metrics = compute_metrics(true_classes, probabilities, TYPED, ["notumor"], threshold=0.5)

    assert json.loads(json.dumps(metrics)) == metrics
    assert metrics["n"] == 7
    assert metrics["accuracy"] == pytest.approx(4 / 7, abs=1e-6)
    assert metrics["sensitivity"] == pytest.approx(4 / 5, abs=1e-6)  # 5 tumors, 1 missed
    assert metrics["specificity"] == pytest.approx(1 / 2, abs=1e-6)  # 2 clean, 1 false alarm
    # tumor probabilities: tumors .9 .8 .2 .9 .7, clean .15 .8 -> 7 of 10 pairs ordered, 1 tie
    assert metrics["roc_auc"] == pytest.approx(7.5 / 10, abs=1e-6)
    assert metrics["confusion_matrix"] == {
        "labels": ["glioma", "meningioma", "notumor", "pituitary", "tumor"],
        "matrix": [
            [1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],
            [0, 0, 1, 1, 0],
            [0, 0, 0, 1, 0],
            [1, 0, 0, 0, 0],
        ],
    }
    assert metrics["per_class"]["glioma"] == {"precision": 1.0, "recall": pytest.approx(1 / 3, abs=1e-6), "support": 3}
    assert metrics["per_class"]["meningioma"] == {"precision": 0.0, "recall": None, "support": 0}
    assert metrics["per_class"]["pituitary"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    assert metrics["per_class"]["tumor"] == {"precision": None, "recall": 1.0, "support": 1}
    assert metrics["threshold"] == 0.5


def test_metrics_with_one_kind_only_leave_undefined_values_empty():
    metrics = compute_metrics(["tumor", "tumor"], np.array([[0.2, 0.8], [0.6, 0.4]]), BINARY, ["notumor"], 0.5)

    assert metrics["roc_auc"] is None and metrics["specificity"] is None
    assert metrics["sensitivity"] == 0.5 and metrics["accuracy"] == 0.5


def test_foreign_class_names_are_judged_on_tumor_or_not():
    # Kaggle folder names against a typed model, and tumor types against a binary model.
    typed = compute_metrics(["yes", "no"], np.array([[0.6, 0.1, 0.2, 0.1], [0.1, 0.1, 0.7, 0.1]]),
                            TYPED, ["notumor"], 0.5)
    binary = compute_metrics(["glioma", "notumor"], np.array([[0.3, 0.7], [0.4, 0.6]]), BINARY, ["notumor"], 0.5)

    assert typed["accuracy"] == 1.0 and typed["sensitivity"] == 1.0 and typed["specificity"] == 1.0
    assert binary["accuracy"] == 0.5 and binary["specificity"] == 0.0


def test_nothing_to_evaluate_is_a_dataset_error():
    with pytest.raises(DatasetInvalid, match="no images"):
        compute_metrics([], np.zeros((0, 2)), BINARY, ["notumor"], 0.5)


def test_ece_of_a_perfectly_calibrated_case_is_zero():
    # In each confidence bin the share of right answers equals the confidence.
    confidences = np.repeat([0.6, 0.8, 1.0], 10)
    correct = np.concatenate([np.arange(10) < 6, np.arange(10) < 8, np.ones(10, bool)])

    assert expected_calibration_error(confidences, correct) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_an_overconfident_case_matches_hand_computation():
    # 4 answers at 0.95 confidence, half right; 6 at 0.7 confidence, 2 right.
    confidences = np.array([0.95] * 4 + [0.7] * 6)
    correct = np.array([1, 1, 0, 0, 1, 1, 0, 0, 0, 0], bool)
    expected = 4 / 10 * abs(0.5 - 0.95) + 6 / 10 * abs(2 / 6 - 0.7)  # = 0.40

    assert expected_calibration_error(confidences, correct) == pytest.approx(expected)


def test_metrics_ece_uses_top_class_confidence():
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8], [0.2, 0.8]])
    true_classes = ["notumor", "tumor", "tumor", "tumor"]

    metrics = compute_metrics(true_classes, probabilities, BINARY, ["notumor"], 0.5)

    # bin of 0.9: 2 answers, 1 right; bin of 0.8: 2 answers, 2 right
    assert metrics["ece"] == pytest.approx(0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.8), abs=1e-6)
    assert metrics["ece_tumor"] == pytest.approx(metrics["ece"], abs=1e-6)  # binary: the same thing
