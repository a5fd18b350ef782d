"""Tests for mri_core.training.audit: intervals and localisation scoring."""

from __future__ import annotations

import numpy as np
import pytest

from mri_core.training import audit


# --- intervals ---------------------------------------------------------------------------

def test_wilson_interval_matches_hand_computed_values():
    # 8 of 10 at 95% (z = 1.959964): centre 0.71674, half width 0.22658
    low, high = audit.wilson_interval(8, 10)
    assert low == pytest.approx(0.49016, abs=1e-4)
    assert high == pytest.approx(0.94332, abs=1e-4)
    # 0 of 10: the upper bound is z^2 / (n + z^2), not 0 as the normal approximation says
    assert audit.wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-4)
    assert audit.wilson_interval(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-4)


def test_wilson_interval_narrows_with_more_images_and_lower_confidence():
    small, large = audit.wilson_interval(9, 10), audit.wilson_interval(900, 1000)
    assert large[1] - large[0] < small[1] - small[0]
    assert large[0] < 0.9 < large[1]
    at_90 = audit.wilson_interval(900, 1000, confidence=0.90)
    assert large[0] < at_90[0] and at_90[1] < large[1]


def test_wilson_interval_refuses_impossible_counts():
    with pytest.raises(ValueError, match="at least one trial"):
        audit.wilson_interval(0, 0)
    with pytest.raises(ValueError, match="successes <= n"):
        audit.wilson_interval(11, 10)


def test_rate_with_interval_is_plain_json_and_empty_for_no_images():
    entry = audit.rate_with_interval(8, 10)
    assert entry["rate"] == 0.8 and entry["successes"] == 8 and entry["n"] == 10
    assert entry["low"] == pytest.approx(0.49016, abs=1e-4)
    assert audit.rate_with_interval(0, 0)["rate"] is None


def test_bootstrap_interval_of_a_proportion_agrees_with_wilson():
    outcomes = np.array([1] * 80 + [0] * 20, float)
    low, high = audit.bootstrap_interval(lambda idx: outcomes[idx].mean(), 100, np.random.default_rng(0))
    wilson_low, wilson_high = audit.wilson_interval(80, 100)
    assert low == pytest.approx(wilson_low, abs=0.03)
    assert high == pytest.approx(wilson_high, abs=0.03)


def test_bootstrap_interval_with_strata_keeps_both_classes_in_every_resample():
    from sklearn.metrics import roc_auc_score

    # 2 positives among 50: unstratified resamples often lose them and AUC is undefined
    truth = np.zeros(50, bool)
    truth[[3, 40]] = True
    scores = np.linspace(0, 1, 50)
    seen = []

    def auc(idx):
        seen.append(truth[idx].sum())
        return roc_auc_score(truth[idx], scores[idx])

    low, high = audit.bootstrap_interval(auc, 50, np.random.default_rng(0), n_boot=200, strata=truth)
    assert set(seen) == {2}
    assert 0.0 <= low <= roc_auc_score(truth, scores) <= high <= 1.0


# --- localisation ------------------------------------------------------------------------

def test_box_iou_of_known_boxes_counts_inclusive_pixels():
    # 10 x 10 boxes overlapping in 5 x 5: 25 / (100 + 100 - 25)
    assert audit.box_iou((0, 0, 9, 9), (5, 5, 14, 14)) == pytest.approx(1 / 7)
    assert audit.box_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert audit.box_iou((0, 0, 9, 9), (10, 0, 19, 9)) == 0.0  # touching, not overlapping
    # a one-pixel box inside a 2 x 2 box: 1 / 4
    assert audit.box_iou((3, 3, 3, 3), (3, 3, 4, 4)) == pytest.approx(0.25)
    pairs = audit.box_iou([(0, 0, 9, 9), (0, 0, 1, 1)], [(0, 0, 9, 4), (0, 0, 1, 1)])
    assert pairs == pytest.approx([0.5, 1.0])


def test_pointing_game_counts_peaks_on_the_box_edge_as_hits():
    box = (10, 20, 30, 40)
    peaks = [(10, 20), (30, 40), (20, 30), (31, 40), (10, 19), (np.nan, np.nan)]
    hits = audit.pointing_game(peaks, [box] * len(peaks))
    assert hits.tolist() == [True, True, True, False, False, False]


def test_pointing_game_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="one box per peak"):
        audit.pointing_game([(1, 1), (2, 2)], [(0, 0, 5, 5)])
    with pytest.raises(ValueError, match="x0 <= x1"):
        audit.pointing_game([(1, 1)], [(5, 0, 0, 5)])


def test_centre_baseline_answers_the_crop_centre_with_a_box_of_the_given_area():
    peaks, boxes = audit.centre_baseline([(0, 0, 99, 99)], [(100, 100)], 0.25)
    assert peaks.tolist() == [[49, 49]]
    assert boxes.tolist() == [[25, 25, 74, 74]]  # 50 x 50 = a quarter of the 100 x 100 crop
    assert audit.box_area_fraction(boxes, [(0, 0, 99, 99)]) == pytest.approx([0.25])


def test_centre_baseline_stays_inside_the_image_for_a_padded_crop():
    # a square crop wider than a 60-pixel-high image (the padding above and below)
    peaks, boxes = audit.centre_baseline([(0, -20, 99, 79), (10, 10, 29, 29)], [(60, 100), (40, 40)], [1.0, 0.04])
    assert peaks.tolist() == [[49, 29], [19, 19]]
    assert boxes[0].tolist() == [0, 0, 99, 59]  # the whole crop, clipped to the image
    assert boxes[1].tolist() == [18, 18, 21, 21]  # 4 x 4 = 0.04 of 20 x 20, centred on 19.5 like the crop
