"""training_view: what the Train page says of a real data set and a real training job."""

from __future__ import annotations

import time

import pytest

from mri_core.present import training_view
from mri_core.training import data as datasets
from mri_core.training import jobs
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
    shown = dict(training_view.result_metrics({"accuracy": 0.9, "sensitivity": 1.0, "roc_auc": 0.95}))
    assert shown == {"Test accuracy": "90.0%", "Sensitivity": "100.0%", "Specificity": "n/a", "ROC AUC": "0.950"}


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
