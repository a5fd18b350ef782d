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
