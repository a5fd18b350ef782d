"""model_table: the Models page's rows, from the shipped packages' model.json and a bare package."""

from __future__ import annotations

import pytest

from mri_core.package import registry
from mri_core.present import model_table


@pytest.fixture
def shipped() -> list[registry.ModelEntry]:
    entries = [e for e in registry.list_models() if e.shipped]
    if not entries:
        pytest.skip("no shipped model in assets/models yet")
    return entries


def test_a_row_per_model_with_its_test_metrics_and_data(shipped):
    active = registry.active().ref
    for entry in shipped:
        row, metrics = model_table.summary_row(entry, active), entry.info["test_metrics"]
        assert row["Model"] == entry.ref and row["Source"] == "shipped"
        assert row["Active"] == ("active" if entry.ref == active else "")
        assert row["Test accuracy"] == f"{metrics['accuracy']:.1%}"
        assert row["Classes"] == ", ".join(entry.info["class_names"])
        assert row["Created"][:10] == entry.info["created"][:10] and len(row["Created"]) <= 20


def test_comparison_puts_two_models_side_by_side(shipped):
    left, right = shipped[0], shipped[-1]
    rows = model_table.compare_rows(left, right)
    facts = {row[""]: (row[f"A · {left.ref}"], row[f"B · {right.ref}"]) for row in rows}
    assert facts["Architecture"] == (left.info["architecture"], right.info["architecture"])
    assert facts["Epochs"] == (str(len(left.info["history"])), str(len(right.info["history"])))
    assert facts["Threshold"][0] == f"{left.info['threshold']:.1%}"


def test_a_package_without_metrics_shows_dashes():
    bare = registry.save_package("imported", {"architecture": "default"},
                                 lambda folder: (folder / registry.MODEL_FILE).write_bytes(b"weights"))
    row = model_table.summary_row(bare, None)
    assert row["Test accuracy"] == row["Classes"] == model_table.MISSING
    assert model_table.facts(bare)["Epochs"] == model_table.facts(bare)["Images per class"] == model_table.MISSING


def test_agreement_rows_show_the_figure_only_from_twenty_calls():
    from mri_core.present.model_table import agreement_rows

    table = {"a@1": {"agreed": 18, "n": 22, "findings": 25, "deferred": 2, "low": 0.615, "high": 0.927},
             "b@2": {"agreed": 1, "n": 1, "findings": 1, "deferred": 0, "low": 0.2, "high": 1.0}}
    a, b = agreement_rows(table)
    assert a == {"Model": "a@1", "Readings with your finding": 25, "Agreed with you": "82% (18 of 22; 95% CI 62%–93%)",
                 "Model deferred (uncertain / cannot read)": 2}
    assert b["Agreed with you"] == "– (shown from 20 calls; 1 so far)"
