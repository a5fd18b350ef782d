"""Calibration: a temperature that softens overconfidence, and the high-sensitivity operating point."""

import numpy as np

from mri_core.training.calibrate import (MIN_SOURCE_TUMORS, THRESHOLD_RANGE, calibrate_and_test, choose_threshold,
                                         choose_threshold_per_source, fit_temperature, operating_point_summary)


def test_temperature_softens_overconfident_predictions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    correct = rng.random(400) < 0.7  # right 70% of the time but always 99% sure
    predicted = np.where(correct, labels, 1 - labels)
    probabilities = np.full((400, 2), 0.01, np.float32)
    probabilities[np.arange(400), predicted] = 0.99
    assert fit_temperature(probabilities, labels) > 2.0


def test_threshold_is_chosen_for_high_sensitivity_on_validation():
    rng = np.random.default_rng(0)
    tumor_scores = rng.uniform(0.05, 1.0, 200)
    scores = np.concatenate([tumor_scores, rng.uniform(0.0, 0.3, 100)])
    is_tumor = np.arange(300) < 200
    threshold = choose_threshold(scores, is_tumor, target_sensitivity=0.98)
    assert np.mean(tumor_scores >= threshold) >= 0.98
    assert np.mean(tumor_scores >= threshold + 0.01) < 0.98 or threshold == THRESHOLD_RANGE[1]  # the highest
    assert choose_threshold(scores, np.zeros(300, bool), 0.98) == 0.5  # no tumors: nothing to choose on


def test_threshold_keeps_the_target_sensitivity_within_every_source():
    rng = np.random.default_rng(0)
    common = rng.uniform(0.6, 1.0, 200)  # tumors of the common style score high
    rare = rng.uniform(0.1, 1.0, 20)  # tumors in a rare style score lower
    healthy = rng.uniform(0.0, 0.05, 100)
    scores = np.concatenate([common, rare, healthy])
    is_tumor = np.r_[np.ones(220, bool), np.zeros(100, bool)]
    sources = ["common"] * 200 + ["rare"] * 20 + ["common"] * 100
    pooled = choose_threshold(scores, is_tumor, 0.98)
    per_source = choose_threshold_per_source(scores, is_tumor, sources, 0.98)
    assert per_source < pooled
    assert (rare >= per_source).all() and (common >= per_source).all()
    few = ["common"] * 215 + ["few"] * (MIN_SOURCE_TUMORS // 2) + ["common"] * 100  # too few tumors to set it
    assert choose_threshold_per_source(scores, is_tumor, few, 0.98) >= per_source

    summary = operating_point_summary(scores, is_tumor, sources, per_source, 0.98)
    assert summary["target_sensitivity"] == 0.98
    assert summary["validation"]["rare"] == {"sensitivity": 1.0, "tumors": 20, "specificity": None, "healthy": 0}
    assert summary["validation"]["common"]["specificity"] == 1.0


def test_each_recipe_is_calibrated_and_tested_the_way_it_reads(tiny_model, small_kaggle):
    from mri_core.training.prepared import load_training_data
    from mri_core.training.recipes import RECIPES, settings_for

    data = load_training_data([small_kaggle], settings_for("paper", image_size=tiny_model.image_size))
    paper = calibrate_and_test(tiny_model.keras_model, data, RECIPES["paper"])
    assert paper["threshold"] == 0.5 and paper["operating_point"]["rule"].startswith("fixed 0.5")
    assert paper["reading"] == RECIPES["paper"].reading and paper["temperature"] > 0
    assert paper["test_metrics"]["n"] == len(data.arrays["test"][1])
    mirrored = calibrate_and_test(tiny_model.keras_model, data, RECIPES["default"])
    assert mirrored["reading"] == RECIPES["default"].reading
    assert mirrored["operating_point"]["target_sensitivity"] == RECIPES["default"].target_sensitivity
    assert THRESHOLD_RANGE[0] <= mirrored["threshold"] <= THRESHOLD_RANGE[1]
