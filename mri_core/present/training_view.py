"""What the Train page shows of a data set and of a training run, in words and rows: the data
set summary (classes, images per folder, near-duplicate groups, the split), the progress
line of a running job and the test figures of a finished one. Its figures are in `charts`.

Plain values in, plain values out; a job snapshot is only read. Never imports streamlit or
tensorflow.
"""

from __future__ import annotations

from collections import Counter

from mri_core.training import data as datasets
from mri_core.training import duplicates
from mri_core.training import splits

# (label, key in model.json "test_metrics") of the figures shown after a run
RESULT_METRICS = (("Test accuracy", "accuracy"), ("Sensitivity", "sensitivity"),
                  ("Specificity", "specificity"), ("ROC AUC", "roc_auc"))
SUMMARY_SEED = 0  # the split shown before training is the one seed 0 gives


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


def result_metrics(test_metrics: dict | None) -> list[tuple[str, str]]:
    """(label, value) of the test figures a finished run shows; "n/a" where a figure is missing."""
    shown = []
    for label, key in RESULT_METRICS:
        value = (test_metrics or {}).get(key)
        shown.append((label, "n/a" if value is None else (f"{value:.3f}" if key == "roc_auc" else f"{value:.1%}")))
    return shown
