"""What the Train page shows of a data set and of a training run, in words and rows: the data
set summary (classes, images per folder, near-duplicate groups, the split), the progress
line of a running job (and the note another session sees meanwhile), and the test figures of a
finished one with their 95% intervals and, for a small test set, a caution. Its figures are
in `charts`.

Plain values in, plain values out; a job snapshot is only read. Never imports streamlit or
tensorflow.
"""

from __future__ import annotations

import time
from collections import Counter

from mri_core.training import data as datasets
from mri_core.training import duplicates
from mri_core.training import splits
from mri_core.training.audit import wilson_interval
from mri_core.training.evaluate import NO_TUMOR_NAMES

# (label, key in model.json "test_metrics") of the figures shown after a run
RESULT_METRICS = (("Test accuracy", "accuracy"), ("Sensitivity", "sensitivity"),
                  ("Specificity", "specificity"), ("ROC AUC", "roc_auc"))
SUMMARY_SEED = 0  # the split shown before training is the one seed 0 gives
SMALL_TEST_SET = 100  # fewer test images than this: the figures get a caution beside their intervals


def summarize_dataset(dataset: datasets.Dataset) -> dict:
    """A discovered data set -> what the page shows: kind, classes, images per root and class,
    skipped files, near-duplicate groups and the split sizes (grouped split, seed 0)."""
    groups = duplicates.group_near_duplicates(dataset.records).tolist()
    split = splits.split_groups(dataset, groups, seed=SUMMARY_SEED)
    sides = Counter(split[r.sha256] for r in dataset.records)
    return {
        "kind": dataset.kind,
        "classes": list(dataset.class_names),
        "per_root": dataset.counts_per_root,
        "total": len(dataset.records),
        "skipped": [(path.name, why) for path, why in dataset.skipped],
        "duplicate_groups": sum(n > 1 for n in Counter(groups).values()),
        "split_sizes": {side: sides.get(side, 0) for side in splits.SPLITS},
    }


def summary_words(summary: dict) -> tuple[str, str]:
    """(what the data set trains, how it is split) as two Markdown lines."""
    kind = "typed (tumor types)" if summary["kind"] == "typed" else "tumor / no tumor"
    sizes = summary["split_sizes"]
    return (f"**{summary['total']} readable images** in {len(summary['classes'])} classes; "
            f"this trains a **{kind}** model.",
            f"{summary['duplicate_groups']} groups of near-duplicate images, each kept on one side of the split. "
            f"Split (seed {SUMMARY_SEED}): **{sizes['train']} train · {sizes['val']} validation · "
            f"{sizes['test']} test** images.")


def summary_rows(summary: dict) -> list[dict]:
    """Images per data folder (rows) and class (columns)."""
    return [{"root": root, **{c: counts.get(c, 0) for c in summary["classes"]}}
            for root, counts in summary["per_root"].items()]


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def progress_words(snapshot) -> str:
    """The progress bar's text for a job snapshot: reading the data, training, epoch and batch, time left."""
    if snapshot.data is None:
        return "Reading, checking and splitting the data ..."
    if snapshot.step is None:
        data = snapshot.data
        return f"Training on {data.n_train} images ({data.n_val} validation, {data.n_test} test) ..."
    text = f"Epoch {snapshot.step.epoch} of {snapshot.settings.epochs} · batch {snapshot.step.step} of {snapshot.step.steps}"
    if snapshot.history:
        text += f" · about {minutes(snapshot.history[-1].eta_s)} left"
    return text


def interrupted_words(interrupted) -> str:
    """What the page says of a run that a server restart or crash cut short (jobs.InterruptedJob)."""
    settings = interrupted.settings
    return (f"A training run stopped before it finished (server restart or crash) after "
            f"{interrupted.epochs_done} of {settings.epochs} epochs "
            f"({settings.arch} on {', '.join(interrupted.data_dirs)}).")


def busy_words(busy) -> str:
    """What a session sees while another user's job (jobs.Busy) trains: how far, since when, and why it waits."""
    where = f"epoch {busy.epoch} of {busy.epochs}" if busy.epoch else f"reading the data for {busy.epochs} epochs"
    return (f"The server is training another user's model ({where}, started "
            f"{time.strftime('%H:%M', time.localtime(busy.started))}); only one model trains at a time. "
            "You can start yours when it finishes.")


def _counts(test_metrics: dict, no_tumor_classes) -> dict[str, int | None]:
    """Denominators of accuracy, sensitivity and specificity: all test images, those with a tumor, those
    without (rows of the confusion matrix whose true class means no tumor); None where unknown."""
    n = test_metrics.get("n")
    confusion = test_metrics.get("confusion_matrix") or {}
    labels, rows = confusion.get("labels"), confusion.get("matrix")
    if not n or not labels or not rows or len(labels) != len(rows):
        return {"accuracy": n or None, "sensitivity": None, "specificity": None}
    healthy = set(no_tumor_classes or ()) | NO_TUMOR_NAMES
    without = sum(sum(row) for label, row in zip(labels, rows) if label in healthy)
    return {"accuracy": n, "sensitivity": n - without, "specificity": without}


def _interval_words(rate: float | None, n: int | None) -> str:
    """'24 of 37 · 95% CI 48.8%–78.2%' for a rate over n images; '' where rate or n is unknown."""
    if rate is None or not n:
        return ""
    successes = min(max(round(rate * n), 0), n)  # the rate is rounded to 6 decimals: the count is exact
    low, high = wilson_interval(successes, n)
    return f"{successes} of {n} · 95% CI {low:.1%}–{high:.1%}"


def result_metrics(test_metrics: dict | None, no_tumor_classes=None) -> list[tuple[str, str, str]]:
    """(label, value, interval) of the test figures a finished run shows; value "n/a" where a figure is
    missing. The interval is the Wilson 95% interval with the counts behind the rate ("24 of 37 · 95% CI
    48.8%–78.2%"), "" for ROC AUC and where the counts are unknown. `no_tumor_classes`: the model's
    (model.json), beside the folder names that always mean no tumor."""
    metrics = test_metrics or {}
    counts = _counts(metrics, no_tumor_classes)
    shown = []
    for label, key in RESULT_METRICS:
        value = metrics.get(key)
        text = "n/a" if value is None else (f"{value:.3f}" if key == "roc_auc" else f"{value:.1%}")
        shown.append((label, text, _interval_words(value, counts.get(key))))
    return shown


def small_test_caution(test_metrics: dict | None) -> str | None:
    """A caution when the test figures rest on fewer than SMALL_TEST_SET images, else None."""
    n = (test_metrics or {}).get("n")
    if n is None or n >= SMALL_TEST_SET:
        return None
    return (f"Only {n} test images (fewer than {SMALL_TEST_SET}): these figures are rough; "
            "the intervals show how rough.")
