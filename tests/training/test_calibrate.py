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
    miss, false, false_all = RECIPES["default"].band_rule
    assert mirrored["operating_point"]["band_rule"] == {"miss_rate": miss, "false_rate": false,
                                                        "false_rate_overall": false_all}
    low, high = mirrored["uncertainty_band"]
    assert low <= mirrored["threshold"] <= high
    assert paper["uncertainty_band"] is None and paper["segmentation"] is None


def test_the_band_keeps_every_tumor_source_and_every_healthy_stratum_and_defers_the_conflict():
    from mri_core.training.calibrate import band_summary, band_threshold, choose_band

    rng = np.random.default_rng(0)
    tumors_a = rng.uniform(0.5, 1.0, 200)  # a source whose tumors score high
    tumors_b = rng.uniform(0.2, 1.0, 100)  # one whose tumors score lower
    healthy_ax = rng.uniform(0.0, 0.1, 100)
    healthy_co = rng.uniform(0.0, 0.4, 100)  # a plane the model finds harder
    scores = np.concatenate([tumors_a, tumors_b, healthy_ax, healthy_co])
    is_tumor = np.r_[np.ones(300, bool), np.zeros(200, bool)]
    sources = ["a"] * 200 + ["b"] * 100 + ["a"] * 200
    strata = ["a/x"] * 200 + ["b/x"] * 100 + ["a/axial"] * 100 + ["a/coronal"] * 100
    low, high, how = choose_band(scores, is_tumor, sources, strata, miss_rate=0.01, false_rate=0.03,
                                 false_rate_overall=0.02)
    assert how["low_set_by"] == "b" and how["high_set_by"] == "a/coronal"
    assert np.mean(tumors_b < low) <= 0.01 and np.mean(tumors_a < low) <= 0.01
    assert np.mean(healthy_co >= high) <= 0.03 and np.mean(healthy_ax >= high) <= 0.03
    assert low < high  # the styles conflict: the band defers the difference
    assert low < band_threshold(low, high) < high
    figures = band_summary(scores, is_tumor, strata, low, high)
    assert figures["all"]["missed"] <= 0.01 and figures["a/coronal"]["healthy_called_tumor"] <= 0.03
    assert 0 < figures["all"]["deferred"] < 0.5


def test_the_mask_cleanup_is_chosen_on_validation_outlines_and_the_simplest_wins_a_tie():
    from mri_core.training.calibrate import MASK_CLEANUPS, choose_mask_cleanup

    rows, cols = np.indices((32, 32))
    truth = ((rows - 12) ** 2 + (cols - 12) ** 2 <= 25).astype(np.float32)  # a disc of radius 5
    clean = truth * 0.9
    masks = np.stack([truth] * 4)[..., None]
    cleanup, dice, plain = choose_mask_cleanup(np.stack([clean] * 4)[..., None], masks, 0.5)
    assert cleanup == MASK_CLEANUPS[0] == {"relative": None, "component_peak": None, "fill_holes": False}
    assert dice == plain == 1.0
    specked = clean.copy()
    specked[26:29, 26:29] = 0.6  # a faint false speck away from the tumor
    cleanup, dice, plain = choose_mask_cleanup(np.stack([specked] * 4)[..., None], masks, 0.5)
    assert cleanup["component_peak"] is not None and dice == 1.0 > plain
    empty = np.zeros((1, 32, 32, 1), np.float32)  # slices without an outline are left out
    assert choose_mask_cleanup(np.concatenate([np.stack([specked] * 4)[..., None], empty]),
                               np.concatenate([masks, empty]), 0.5)[1] == 1.0
