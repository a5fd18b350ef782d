"""Model cards are written from model.json alone and say what a reader must know."""

from mri_core.card import INTENDED_USE, model_card


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
