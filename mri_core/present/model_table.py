"""What the Models page lists and compares, in words: one table row per model package and the
facts of two packages side by side, all read from each package's model.json (a package
without metrics or history shows "–"). Never imports streamlit or tensorflow.
"""

from __future__ import annotations

from mri_core.package.registry import ModelEntry
from mri_core.present.reading_log import MIN_FINDINGS

MISSING = "–"
# (column label, key in model.json "test_metrics"); the table shows the first four. The ECE is the
# tumor probability's, the one figure every page quotes (Diagnose's sentence, the report, here).
METRICS = (("Test accuracy", "accuracy"), ("ROC AUC", "roc_auc"), ("Sensitivity", "sensitivity"),
           ("Specificity", "specificity"), ("ECE (tumor probability)", "ece_tumor"))


def percent(value) -> str:
    return MISSING if value is None else f"{value:.1%}"


def images_per_class(info: dict) -> str:
    counts = info.get("data", {}).get("counts_per_class", {})
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or MISSING


def created_at(info: dict) -> str:
    """model.json's ISO 8601 "created" to the minute: `2025-01-31 14:05 UTC`."""
    created = str(info.get("created", MISSING))
    return created[:16].replace("T", " ") + (" UTC" if created.endswith("+00:00") else "")


def summary_row(entry: ModelEntry, active_ref: str | None) -> dict:
    """One row of the Models page's table, narrow enough to fit the page: the architecture and the
    images per class are in the comparison (`facts`)."""
    info, metrics = entry.info, entry.info.get("test_metrics", {})
    return {"Active": "active" if entry.ref == active_ref else "", "Model": entry.ref,
            "Source": "shipped" if entry.shipped else "trained",
            **{label: percent(metrics.get(key)) for label, key in METRICS[:4]},
            "Classes": ", ".join(info.get("class_names", [])) or MISSING, "Created": created_at(info)}


def facts(entry: ModelEntry) -> dict[str, str]:
    """What the comparison shows of one model: its test metrics, threshold, architecture, size, epochs, classes."""
    info, metrics = entry.info, entry.info.get("test_metrics", {})
    return {**{label: percent(metrics.get(key)) for label, key in METRICS},
            "Test images": str(metrics.get("n", MISSING)), "Threshold": percent(info.get("threshold")),
            "Architecture": info.get("architecture", MISSING),
            "Image size": str(info.get("input", {}).get("size", MISSING)),
            "Epochs": str(len(info.get("history", [])) or MISSING), "Classes": ", ".join(info.get("class_names", [])),
            "Images per class": images_per_class(info)}


def compare_rows(left: ModelEntry, right: ModelEntry) -> list[dict]:
    """Rows of the comparison table: one per fact, a column per model (A, B)."""
    left_facts, right_facts = facts(left), facts(right)
    return [{"": key, f"A · {left.ref}": left_facts[key], f"B · {right.ref}": right_facts[key]} for key in left_facts]


def agreement_rows(table: dict[str, dict]) -> list[dict]:
    """The Models page's agreement table from `reading_log.agreement`: one row per model that has
    recorded findings; the agreement figure (with its 95% interval) only from MIN_FINDINGS calls on."""
    rows = []
    for ref, entry in sorted(table.items()):
        if entry["n"] >= MIN_FINDINGS:
            agreed = f"{entry['agreed'] / entry['n']:.0%} ({entry['agreed']} of {entry['n']}; 95% CI {entry['low']:.0%}–{entry['high']:.0%})"
        else:
            agreed = f"{MISSING} (shown from {MIN_FINDINGS} calls; {entry['n']} so far)"
        rows.append({"Model": ref, "Readings with your finding": entry["findings"], "Agreed with you": agreed,
                     "Model deferred (uncertain / cannot read)": entry["deferred"]})
    return rows
