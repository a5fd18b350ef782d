"""training_view: what the Train page says of a real data set and a real training job."""

from __future__ import annotations

import json
import time

import pytest

from mri_core.package import registry
from mri_core.present import training_view
from mri_core.training import data as datasets
from mri_core.training import jobs
from mri_core.training.audit import wilson_interval
from mri_core.training.recipes import settings_for


def test_the_summary_of_a_real_folder_counts_classes_groups_and_the_split(small_kaggle):
    summary = training_view.summarize_dataset(datasets.discover([small_kaggle]))
    assert summary["total"] == 60 and summary["kind"] != "typed"
    assert sum(summary["split_sizes"].values()) == 60
    headline, split_line = training_view.summary_words(summary)
    assert headline.startswith("**60 readable images** in 2 classes") and "tumor / no tumor" in headline
    sizes = summary["split_sizes"]
    assert f"**{sizes['train']} train · {sizes['val']} validation · {sizes['test']} test**" in split_line
    [row] = training_view.summary_rows(summary)
    assert sum(value for key, value in row.items() if key != "root") == 60


def test_result_figures_are_percentages_and_the_auc_a_fraction():
    shown = {label: value for label, value, _ in
             training_view.result_metrics({"accuracy": 0.9, "sensitivity": 1.0, "roc_auc": 0.95})}
    assert shown == {"Test accuracy": "90.0%", "Sensitivity": "100.0%", "Specificity": "n/a", "ROC AUC": "0.950"}


def test_result_figures_carry_wilson_intervals_from_the_counts_of_the_shipped_paper_model():
    info = json.loads((registry.SHIPPED_DIR / "paper-kaggle" / "model.json").read_text())
    metrics = info["test_metrics"]  # 37 test images: 14 without a tumor, 23 with one
    assert metrics["n"] == 37
    shown = training_view.result_metrics(metrics, info["no_tumor_classes"])
    assert shown == [
        ("Test accuracy", "64.9%", "24 of 37 · 95% CI 48.8%–78.2%"),
        ("Sensitivity", "69.6%", "16 of 23 · 95% CI 49.1%–84.4%"),
        ("Specificity", "57.1%", "8 of 14 · 95% CI 32.6%–78.6%"),
        ("ROC AUC", "0.717", ""),
    ]
    for _, _, words in shown[:3]:  # the same interval audit.py gives for those counts
        successes, n = (int(x) for x in words.split(" · ")[0].split(" of "))
        low, high = wilson_interval(successes, n)
        assert f"{low:.1%}–{high:.1%}" in words
    assert training_view.small_test_caution(metrics) == (
        "Only 37 test images (fewer than 100): these figures are rough; the intervals show how rough.")


def test_a_large_test_set_has_no_caution_and_unknown_counts_no_interval():
    assert training_view.small_test_caution({"n": training_view.SMALL_TEST_SET}) is None
    assert training_view.small_test_caution(None) is None
    # no confusion matrix: accuracy still has its n, sensitivity and specificity no denominator
    shown = training_view.result_metrics({"n": 200, "accuracy": 0.9, "sensitivity": 0.8})
    assert [words for _, _, words in shown] == ["180 of 200 · 95% CI 85.1%–93.4%", "", "", ""]


def test_the_busy_note_says_how_far_and_since_when_and_nothing_else():
    started = time.mktime((2024, 5, 6, 9, 41, 0, 0, 0, -1))
    note = training_view.busy_words(jobs.Busy(epoch=3, epochs=20, started=started))
    assert note == ("The server is training another user's model (epoch 3 of 20, started 09:41); "
                    "only one model trains at a time. You can start yours when it finishes.")
    assert "(reading the data for 20 epochs, started 09:41)" in training_view.busy_words(
        jobs.Busy(epoch=None, epochs=20, started=started))


@pytest.mark.usefixtures("no_leftover_job")
def test_progress_words_follow_a_real_job_from_the_data_to_the_epochs(small_kaggle):
    job = jobs.start_job([small_kaggle], settings_for("paper", epochs=50, image_size=64))
    seen, deadline = set(), time.monotonic() + 300
    while not any(text.startswith("Epoch 2 of 50") for text in seen):
        assert time.monotonic() < deadline and job.snapshot().running, job.snapshot().error
        seen.add(training_view.progress_words(job.snapshot()))
        time.sleep(0.02)
    job.cancel()
    epochs = [text for text in seen if text.startswith("Epoch ")]
    assert any("batch 1 of" in text for text in epochs)
    assert any(text.endswith(" left") for text in epochs), "time left once an epoch is done"
