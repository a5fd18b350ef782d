"""Models: every shipped and trained model; activate, compare, download or delete one.

A thin page: everything it shows comes from each package's `model.json` through
`mri_core.package.registry`; the zip comes from `mri_core.package.packaging`. No TensorFlow here.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from mri_core.package import packaging

from mri_core.package import registry

from mri_core.present import report
from mri_core.io.errors import MriError

METRICS = [("Test accuracy", "accuracy"), ("ROC AUC", "roc_auc"), ("Sensitivity", "sensitivity"),
           ("Specificity", "specificity"), ("ECE", "ece")]
CURVES = [("Loss", "loss", "val_loss"), ("Accuracy", "accuracy", "val_accuracy")]


def percent(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def images_per_class(entry: registry.ModelEntry) -> str:
    counts = entry.info.get("data", {}).get("counts_per_class", {})
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "–"


def created_at(entry: registry.ModelEntry) -> str:
    created = str(entry.info.get("created", "–"))  # ISO 8601, seconds, UTC offset
    return created[:16].replace("T", " ") + (" UTC" if created.endswith("+00:00") else "")


def summary_row(entry: registry.ModelEntry, active_ref: str | None) -> dict:
    metrics = entry.info.get("test_metrics", {})
    return {"Active": "active" if entry.ref == active_ref else "", "Model": entry.ref,
            "Source": "shipped" if entry.shipped else "trained", "Architecture": entry.info.get("architecture", "–"),
            **{label: percent(metrics.get(key)) for label, key in METRICS[:4]},
            "Classes": ", ".join(entry.info.get("class_names", [])) or "–",
            "Images per class": images_per_class(entry), "Created": created_at(entry)}


def compare_rows(left: registry.ModelEntry, right: registry.ModelEntry) -> list[dict]:
    def facts(entry):
        info, metrics = entry.info, entry.info.get("test_metrics", {})
        return {**{label: percent(metrics.get(key)) for label, key in METRICS},
                "Test images": str(metrics.get("n", "–")), "Threshold": percent(info.get("threshold")),
                "Architecture": info.get("architecture", "–"),
                "Image size": str(info.get("input", {}).get("size", "–")),
                "Epochs": str(len(info.get("history", [])) or "–"), "Classes": ", ".join(info.get("class_names", []))}
    left_facts, right_facts = facts(left), facts(right)
    return [{"": key, f"A · {left.ref}": left_facts[key], f"B · {right.ref}": right_facts[key]} for key in left_facts]


def confusion_chart(entry: registry.ModelEntry) -> go.Figure | None:
    confusion = entry.info.get("test_metrics", {}).get("confusion_matrix")
    if not confusion:
        return None
    labels, matrix = confusion["labels"], confusion["matrix"]
    chart = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, colorscale="Blues", showscale=False,
                                 text=matrix, texttemplate="%{text}"))
    chart.update_layout(title=f"Confusion matrix (test) · {entry.ref}", xaxis_title="predicted",
                        yaxis_title="true", yaxis={"autorange": "reversed"},
                        height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return chart


def curve_chart(entry: registry.ModelEntry, title: str, train_key: str, val_key: str) -> go.Figure | None:
    history = entry.info.get("history", [])
    if not history:
        return None
    epochs = [row.get("epoch", number) for number, row in enumerate(history, start=1)]
    chart = go.Figure([go.Scatter(x=epochs, y=[row.get(key) for row in history], name=name, mode="lines+markers",
                                  line={"dash": dash})
                       for name, key, dash in (("train", train_key, "solid"), ("validation", val_key, "dash"))])
    chart.update_layout(title=f"{title} · {entry.ref}", xaxis_title="epoch", height=300,
                        margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return chart


def flash(kind: str, message: str) -> None:
    """Show `message` at the top of the next run (actions run in callbacks, before the page)."""
    st.session_state["flash"] = (kind, message)


ACTIVATED = "{ref} is now the active model: the Diagnose page reads scans with it."


def run_action(action, ref: str, done: str) -> None:
    """Button callback: `action(ref)`, then a success or error message on the next run."""
    try:
        action(ref)
        flash("success", done.format(ref=ref))
    except MriError as exc:
        flash("error", str(exc))
    except OSError as exc:  # e.g. a read-only registry folder
        flash("error", f"{ref} could not be changed ({exc}); check that {registry.models_dir()} is writable.")


st.set_page_config(page_title="Models - Brain MRI screening", layout="wide")
st.title("Models")
kind, message = st.session_state.pop("flash", (None, None))
if kind:
    getattr(st, kind)(message)
try:
    entries = {entry.ref: entry for entry in registry.list_models()}
    active_ref = registry.active().ref
except MriError as exc:
    st.error(str(exc))
    st.stop()
if not entries:
    st.info("No models yet: train one on the Train page or with `python -m mri_core train`.")
    st.stop()
refs = list(entries)
for key in ("manage_ref", "compare_a", "compare_b"):
    if st.session_state.get(key, refs[0]) not in entries:  # deleted here or elsewhere: choose anew
        del st.session_state[key]

st.dataframe([summary_row(entry, active_ref) for entry in entries.values()], hide_index=True)
st.caption(f"Active model: **{active_ref}**, the one the Diagnose page uses. Metrics are on each model's own held-out test split.")

st.subheader("Manage a model")
st.session_state.setdefault("manage_ref", active_ref if active_ref in entries else refs[0])
chosen = entries[st.selectbox("Model", refs, key="manage_ref")]
is_active = chosen.ref == active_ref
activate_column, download_column = st.columns(2)
activate_column.button("Make active", disabled=is_active, on_click=run_action,
                       args=(registry.activate, chosen.ref, ACTIVATED),
                       help="This model is already active." if is_active else "The Diagnose page will use it.")
try:
    download_column.download_button("Download as zip", packaging.zip_package(chosen),
                                    file_name=packaging.zip_file_name(chosen), mime="application/zip")
except MriError as exc:
    download_column.error(str(exc))
reliability = report.reliability_rows(chosen.info)
if reliability:
    st.plotly_chart(report.reliability_figure(reliability), config={"displayModeBar": False}, key="reliability")
    st.caption("Calibrated means: of the test scans given about 90 % tumor probability, about 90 % had a tumor. "
               "Points on the dashed line are perfectly calibrated; bigger points hold more scans.")
else:
    st.caption(f"{chosen.ref} stores no reliability bins (packages trained before they were recorded).")
if chosen.shipped:
    st.info(f"{chosen.ref} is shipped with the app and cannot be deleted.")
elif is_active:
    st.info(f"{chosen.ref} is the active model: make another model active before deleting it.")
else:
    confirmed = st.checkbox(f"I understand that {chosen.ref} will be deleted for good.", key=f"confirm-{chosen.ref}")
    st.button("Delete", type="primary", disabled=not confirmed, on_click=run_action,
              args=(registry.delete, chosen.ref, "{ref} was deleted."))

st.subheader("Compare two models")
st.session_state.setdefault("compare_a", st.session_state["manage_ref"])
st.session_state.setdefault("compare_b", next((r for r in refs if r != st.session_state["compare_a"]), refs[0]))
left_column, right_column = st.columns(2)
sides = {"A": entries[left_column.selectbox("Model A", refs, key="compare_a")],
         "B": entries[right_column.selectbox("Model B", refs, key="compare_b")]}
st.table(compare_rows(sides["A"], sides["B"]))
for column, (side, entry) in zip(st.columns(2), sides.items()):
    charts = [confusion_chart(entry)] + [curve_chart(entry, *curve) for curve in CURVES]
    for number, chart in enumerate(charts):
        if chart is not None:
            column.plotly_chart(chart, config={"displayModeBar": False}, key=f"chart-{side}-{number}")
    if charts[0] is None:
        column.info(f"{entry.ref} has no test confusion matrix in its model.json.")
    if charts[1] is None:
        column.info(f"{entry.ref} has no training history in its model.json.")
