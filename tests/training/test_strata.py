"""Figures per stratum, on readings as the app makes them: each rate counted by hand here."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from mri_core.io.reading import Reading
from mri_core.training import strata
from mri_core.training.strata import Item


def _reading(verdict: str, p: float, label: str = "notumor", mask=None, heatmap=None, peak=None) -> Reading:
    return Reading(source="x", label=label, tumor=verdict == "tumor", tumor_probability=p, threshold=0.5,
                   probabilities={"glioma": p, "notumor": 1 - p}, heatmap=heatmap, cam_peak=peak, cam_box=None,
                   warnings=(), model="m@1", verdict=verdict, mask=mask)


def test_each_stratum_counts_its_own_misses_false_alarms_and_deferrals(tmp_path):
    items = ([Item(tmp_path / f"t{i}", "a", "glioma") for i in range(4)]
             + [Item(tmp_path / f"h{i}", "b", "notumor", "coronal") for i in range(5)]
             + [Item(tmp_path / f"c{i}", "head-ct", "not_mri") for i in range(2)])
    readings = ([_reading("tumor", 0.9, "glioma"), _reading("tumor", 0.9, "meningioma"),
                 _reading("no_tumor", 0.1), _reading("uncertain", 0.5, "glioma")]
                + [_reading("no_tumor", 0.1)] * 3 + [_reading("tumor", 0.8, "glioma"), _reading("cannot_read", 0.2)]
                + [_reading("cannot_read", 0.9, "glioma"), _reading("tumor", 0.9, "glioma")])
    figures = strata.verdict_figures(items, readings)
    assert figures["tumor_sources"]["a"]["missed"]["successes"] == 1 and figures["tumor_sources"]["a"]["missed"]["n"] == 4
    assert figures["tumor_sources"]["a"]["deferred"]["successes"] == 1
    coronal = figures["healthy_strata"]["b/coronal"]
    assert (coronal["called_tumor"]["successes"], coronal["called_tumor"]["n"]) == (1, 5)
    assert coronal["deferred"]["successes"] == 1
    assert figures["deferred_mri"]["successes"] == 2 and figures["deferred_mri"]["n"] == 9
    assert figures["mri_cannot_read"]["successes"] == 1
    assert figures["not_mri_cannot_read"]["successes"] == 1 and figures["not_mri_called_tumor"]["successes"] == 1
    # 4-class, not deferred: tumors right 1 of 3 (a wrong type, a miss), healthy right 3 of 4
    accuracy = figures["four_class_accuracy_not_deferred"]
    assert (accuracy["successes"], accuracy["n"]) == (4, 7)
    low, high = accuracy["low"], accuracy["high"]
    assert low < 4 / 7 < high


def test_a_model_that_calls_everything_tumor_fails_every_healthy_stratum(tmp_path):
    items = [Item(tmp_path / f"h{i}", "brisc2025", "notumor", plane) for i, plane in
             enumerate(["axial", "coronal", "sagittal"] * 10)]
    figures = strata.verdict_figures(items, [_reading("tumor", 0.99, "glioma")] * 30)
    assert all(entry["called_tumor"]["rate"] == 1.0 for entry in figures["healthy_strata"].values())


def test_dice_of_the_mask_and_of_the_heatmap_against_an_outline_file(tmp_path):
    truth = np.zeros((20, 30), np.uint8)
    truth[5:10, 5:15] = 255  # 50 tumor pixels
    (tmp_path / "masks").mkdir()
    Image.fromarray(truth).save(tmp_path / "masks" / "t.png")
    predicted = np.zeros((20, 30), bool)
    predicted[5:10, 10:20] = True  # 25 inside, 25 outside: Dice = 2 * 25 / (50 + 50)
    heatmap = np.zeros((20, 30), np.float32)
    heatmap[5:10, 5:15] = 1.0  # exactly the outline at half its peak
    item = Item(tmp_path / "t.png", "brisc2025", "glioma", "axial", tmp_path / "masks" / "t.png")
    figures = strata.segmentation_figures([item], [_reading("tumor", 0.9, "glioma", predicted, heatmap, (7, 7))])
    assert figures["brisc2025"]["n"] == 1
    assert figures["brisc2025"]["mask"]["mean_dice"] == pytest.approx(0.5)
    assert figures["brisc2025"]["mask"]["pooled_dice"] == pytest.approx(0.5)
    assert figures["brisc2025"]["cam"]["mean_dice"] == pytest.approx(1.0)
    pointing = strata.pointing_figures([item, replace(item, mask_path=None, box=(0, 0, 3, 3))],
                                       [_reading("tumor", 0.9, "glioma", peak=(7, 7)),
                                        _reading("tumor", 0.9, "glioma", peak=(7, 7))])
    assert pointing["brisc2025"]["successes"] == 1 and pointing["brisc2025"]["n"] == 2  # in the outline, not the box


def test_ece_of_the_tumor_probability_is_zero_when_it_is_the_event_rate(tmp_path):
    items = [Item(tmp_path / f"x{i}", "a", "glioma" if i < 3 else "notumor") for i in range(10)]
    readings = [_reading("uncertain", 0.3, "glioma") for _ in range(10)]  # 3 of 10 are tumors
    figures = strata.calibration_figures(items, readings)
    assert figures["ece_tumor_probability"] == pytest.approx(0.0, abs=1e-9)
    wrong = [_reading("tumor", 0.95, "glioma") for _ in range(10)]
    assert strata.calibration_figures(items, wrong)["ece_tumor_probability"] == pytest.approx(0.95 - 0.3)


def test_roc_auc_per_source_and_plane_where_both_kinds_are_read(tmp_path):
    # brisc2025 axial: tumors 0.9, 0.8, healthy 0.7, 0.95 -> 2 of 4 pairs ranked right; coronal: all right
    items = ([Item(tmp_path / f"t{i}", "brisc2025", "glioma", plane) for i, plane in enumerate(["axial"] * 2 + ["coronal"] * 2)]
             + [Item(tmp_path / f"h{i}", "brisc2025", "notumor", plane) for i, plane in enumerate(["axial"] * 2 + ["coronal"] * 2)]
             + [Item(tmp_path / "f", "figshare-boxes", "glioma"), Item(tmp_path / "c", "head-ct", "not_mri")])
    readings = [_reading("tumor", p, "glioma") for p in (0.9, 0.8, 0.9, 0.8)] + [
        _reading("no_tumor", p) for p in (0.7, 0.95, 0.1, 0.2)] + [_reading("tumor", 0.6, "glioma"), _reading("cannot_read", 0.99)]
    figures = strata.auc_figures(items, readings)
    assert set(figures) == {"all", "brisc2025", "brisc2025/axial", "brisc2025/coronal"}  # figshare has no healthy slices
    assert figures["brisc2025/axial"]["auc"] == pytest.approx(0.5) and figures["brisc2025/coronal"]["auc"] == 1.0
    assert (figures["all"]["tumors"], figures["all"]["healthy"]) == (5, 4)  # the head CT is not MRI
    assert figures["brisc2025"]["low"] <= figures["brisc2025"]["auc"] <= figures["brisc2025"]["high"]
    assert strata.auc_text(figures["brisc2025/coronal"]) == "1.000 [1.000, 1.000] (2 tumors, 2 healthy)"


def test_manifest_items_hold_outlines_boxes_planes_and_the_head_ct_and_drop_what_another_split_saw(data_root):
    from pathlib import Path as P

    from mri_core.training.splits import read_manifest

    bench = P(__file__).resolve().parents[2] / "bench" / "splits"
    manifest = read_manifest(bench / "mri-v2.json")
    items = strata.manifest_items(manifest, data_root, "test")
    assert len(items) == sum(e["split"] == "test" for s in ("images", "not_mri") for e in manifest[s].values())
    ct = [i for i in items if not i.is_mri]
    assert ct and all(i.path.is_file() and i.path.parent.name == "head-ct" for i in ct)
    assert any(i.mask_path for i in items if i.source == "brisc2025" and i.is_tumor)
    assert any(i.box for i in items if i.source == "figshare-boxes")
    assert {i.plane for i in items if i.source == "brisc2025"} == {"axial", "coronal", "sagittal"}
    unseen = strata.manifest_items(manifest, data_root, "test", unseen_by=read_manifest(bench / "shipped.json"))
    assert len(ct) < len(unseen) < len(items)  # the old split trained on some of these slices
    sample = strata.manifest_items(manifest, data_root, "test", per_stratum=3)
    keys = [f"{i.source}/{i.class_name}/{i.plane}" for i in sample]
    assert max(keys.count(k) for k in set(keys)) == 3


def test_a_model_without_a_mask_output_gets_heatmap_figures_only(tmp_path):
    truth = np.zeros((20, 30), np.uint8)
    truth[5:10, 5:15] = 255
    (tmp_path / "masks").mkdir()
    Image.fromarray(truth).save(tmp_path / "masks" / "t.png")
    heatmap = np.zeros((20, 30), np.float32)
    heatmap[5:10, 5:15] = 1.0
    item = Item(tmp_path / "t.png", "brisc2025", "glioma", "axial", tmp_path / "masks" / "t.png")
    figures = strata.segmentation_figures([item], [_reading("tumor", 0.9, "glioma", None, heatmap, (7, 7))])
    assert "mask" not in figures["brisc2025"] and figures["brisc2025"]["cam"]["mean_dice"] == pytest.approx(1.0)
