"""Model cards are written from model.json alone and say what a reader must know."""

from mri_core.package.card import INTENDED_USE, model_card


def test_card_states_use_data_metrics_and_reproduction(tiny_model):
    card = model_card(tiny_model.info)
    assert card.startswith("# Model card: tiny@1")
    assert INTENDED_USE in card and "not a diagnosis" in card
    assert "| architecture | `paper` |" in card
    assert f"tumor_probability >= {tiny_model.threshold:.2f}" in card
    assert f"| accuracy | {tiny_model.info['test_metrics']['accuracy']:.3f} |" in card
    assert tiny_model.info["command"] in card
    assert "| true \\ reported |" in card


def test_card_tolerates_a_package_without_metrics(tiny_model):
    info = {k: v for k, v in tiny_model.info.items() if k not in ("test_metrics", "history", "data")}
    card = model_card(info)
    assert "| accuracy | n/a |" in card


def test_card_adds_benchmark_figures_with_intervals_and_failure_modes(tiny_model):
    rate = {"rate": 0.9, "low": 0.8, "high": 0.95, "n": 40, "successes": 36}
    evaluation = {
        "accuracy": rate, "sensitivity": rate, "specificity": rate,
        "roc_auc": {"value": 0.97, "low": 0.95, "high": 0.99},
        "per_source": {"kaggle-brain-mri": {"sensitivity": rate}},
        "ece": {"before": 0.08, "after": 0.02},
        "localisation": {"pointing_game": rate, "pointing_game_centre": {"rate": 0.2},
                         "iou": {"mean": 0.3}, "iou_centre": {"mean": 0.1}},
    }
    card = model_card(tiny_model.info, evaluation, "- misses small tumors")
    assert "| sensitivity, kaggle-brain-mri | 0.900 [0.800, 0.950] (n=40) |" in card
    assert "0.080 -> 0.020" in card and "0.9700 [0.9500, 0.9900]" in card
    assert "From the audit that `python bench/accuracy.py` ran on `bench/splits/shipped.json` until issue 21" in card
    assert "## Known failure modes" in card and "- misses small tumors" in card


def test_card_states_how_the_operating_point_was_chosen_and_the_training_recipe(tiny_model):
    info = {**tiny_model.info, "threshold": 0.04,
            "operating_point": {"rule": "highest threshold with validation sensitivity >= 0.98 in every source",
                                "validation": {"kaggle-brain-mri": {"sensitivity": 1.0, "tumors": 23,
                                                                    "specificity": 0.8, "healthy": 15}}},
            "settings": {**tiny_model.info["settings"], "box_weight": 1.0, "source_balance": 0.5},
            "data": {**tiny_model.info["data"], "boxed_train_images": 1900},
            "reading": {"mirror_average": True, "heatmap_sigma": 2.0}}
    card = model_card(info)
    assert "## Operating point" in card and ">= 0.040" in card and "in every source" in card
    assert "| kaggle-brain-mri | 1.000 (23) | 0.800 (15) |" in card
    assert "on 1900 boxed training images" in card and "| source balance" in card
    assert "averaged over the slice and its left-right mirror; heatmap smoothed by a Gaussian of 2 model-input px" in card


def test_card_states_the_band_its_rule_the_mask_and_the_figures_per_stratum(tiny_model):
    rate = {"rate": 0.02, "low": 0.01, "high": 0.05, "n": 200, "successes": 4}
    info = {**tiny_model.info, "threshold": 0.2, "uncertainty_band": [0.05, 0.6],
            "segmentation": {"output": "mask", "threshold": 0.45, "validation_dice_model_resolution": 0.81,
                             "validation_outlines": 300},
            "operating_point": {"rule": "the band rule", "set_by": {"low": "br35h-extra", "high": "brisc2025/coronal"},
                                "validation": {"brisc2025/coronal": {"tumors": 0, "healthy": 46, "missed": None,
                                                                     "healthy_called_tumor": 0.021, "deferred": 0.08}}}}
    strata = {"images": 1800,
              "verdicts": {"tumor_sources": {"br35h-extra": {"missed": rate}},
                           "healthy_strata": {"brisc2025/coronal": {"called_tumor": rate}},
                           "healthy_called_tumor_all": rate, "deferred_mri": rate,
                           "deferred_strata": {"brisc2025/notumor/coronal": rate}, "mri_cannot_read": rate,
                           "not_mri_cannot_read": rate, "not_mri_called_tumor": rate,
                           "four_class_accuracy_not_deferred": rate},
              "segmentation": {"brisc2025": {"n": 400, "mask": {"mean_dice": 0.82, "low": 0.8, "high": 0.84,
                                                                "pooled_dice": 0.85},
                                             "cam": {"mean_dice": 0.47, "low": 0.45, "high": 0.49, "pooled_dice": 0.5}}},
              "pointing_game": {"brisc2025": rate},
              "roc_auc": {"all": {"auc": 0.996, "low": 0.991, "high": 0.999, "tumors": 1500, "healthy": 276}},
              "calibration": {"ece_tumor_probability": 0.021, "ece_top_label": 0.034}}
    card = model_card(info, strata=strata)
    assert "From `python bench/accuracy.py` on 1800 test images" in card
    assert "| ROC AUC, tumor vs healthy MRI, all | 0.996 [0.991, 0.999] (1500 tumors, 276 healthy) |" in card
    assert "no_tumor below 0.050, uncertain (refer to a reader) from 0.050 to 0.600, tumor at or above 0.600" in card
    assert "The low end was set by br35h-extra, the high end by brisc2025/coronal." in card
    assert "| brisc2025/coronal | 0 | n/a | 46 | 0.021 | 0.080 |" in card
    assert "tumor at >= 0.45 (validation Dice at the model's resolution 0.810 on 300 outlines)" in card
    assert "| missed tumors (verdict no_tumor), br35h-extra | 0.020 [0.010, 0.050] (n=200) |" in card
    assert "| Dice of the mask, brisc2025 (mean [95%]; pooled) | 0.820 [0.800, 0.840]; 0.850 (n=400) |" in card
    assert "| ECE (15 bins): tumor probability; top label | 0.021; 0.034 |" in card
    assert "then, chosen on the same outlines" not in card  # no cleanup named, none described
    cleaned = {**info, "segmentation": {**info["segmentation"], "validation_dice_model_resolution_cleaned": 0.83,
                                        "cleanup": {"relative": 0.5, "component_peak": 0.95, "fill_holes": False}}}
    assert ("then, chosen on the same outlines (0.830 with it): the threshold falls to 50% of the slice's highest mask "
            "probability where that is lower (so a faint mask still outlines); parts whose own peak is under 95% of "
            "the slice's highest are dropped; the heatmap") in model_card(cleaned, strata=strata)
