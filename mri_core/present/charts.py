"""Every plotly figure the pages show, built from plain values: a reading's class
probabilities, the per-slice tumor probability and tumor area of a scanned volume, a test confusion matrix,
the loss and accuracy curves of a training history, and the reliability diagram.

Pages only hand the figures to `st.plotly_chart`. Inputs are what `Reading`, `model.json`
and training events already hold; nothing here reads files. Never imports streamlit or
tensorflow.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import plotly.graph_objects as go

from mri_core.present.report import MIN_BIN_SCANS, percent

TUMOR_RGB, NO_TUMOR_RGB, MARK_RGB = "#c62828", "#2e7d32", "#c62828"
MARGIN = {"l": 10, "r": 20, "t": 40, "b": 10}
PERCENT_AXIS = {"range": [0, 1.001], "tickformat": ".0%"}
# (title, train key, validation key, y axis) of each training curve, in model.json's history keys
CURVES = (("Loss", "loss", "val_loss", {}), ("Accuracy", "accuracy", "val_accuracy", {"tickformat": ".0%"}))


def class_probability_figure(probabilities: Mapping[str, float], no_tumor_classes: Sequence[str]) -> go.Figure:
    """A reading's class probabilities as horizontal bars, no-tumor classes green, tumor classes red."""
    classes = list(probabilities)
    figure = go.Figure(go.Bar(
        x=[probabilities[c] for c in classes], y=classes, orientation="h",
        marker_color=[NO_TUMOR_RGB if c in no_tumor_classes else TUMOR_RGB for c in classes],
        text=[percent(probabilities[c]) for c in classes], cliponaxis=False,
        textposition=["inside" if probabilities[c] > 0.2 else "outside" for c in classes]))  # a label for every bar
    figure.update_layout(title="Class probabilities", xaxis=PERCENT_AXIS, yaxis={"autorange": "reversed"},
                         height=90 + 36 * len(classes), margin=MARGIN)
    return figure


def _slice_axis(count: int) -> dict:
    """An x axis of whole slice numbers 1..count (as the page's slider counts), never a tick at 2.5."""
    return {"title": "slice", "range": [0.5, count + 0.5], "tickformat": "d", "dtick": 1 if count <= 20 else None}


def slice_probability_figure(tumor_probabilities: Sequence[float], threshold: float,
                             current_slice: int | None = None, band: Sequence[float] | None = None) -> go.Figure:
    """Tumor probability of every slice, counted from 1 on the x axis as the page's slider counts, with
    what decides the call: the model's uncertainty `band` (low, high) shaded, where it defers, when it has
    one (its threshold then decides no verdict), else the threshold; and the slice shown (`current_slice`
    is the 0-based index)."""
    count = len(tumor_probabilities)
    figure = go.Figure(go.Scatter(x=list(range(1, count + 1)), y=list(tumor_probabilities),
                                  mode="lines+markers", name="tumor probability"))
    if band:
        figure.add_hrect(y0=float(band[0]), y1=float(band[1]), fillcolor="orange", opacity=0.15, line_width=0,
                         annotation_text="uncertain", annotation_position="top left")
        figure.add_hline(y=float(band[1]), line_dash="dash", annotation_text="tumor call")
    else:
        figure.add_hline(y=threshold, line_dash="dash", annotation_text="threshold")
    if current_slice is not None:
        figure.add_vline(x=current_slice + 1, line_color=MARK_RGB)
    figure.update_layout(title="Tumor probability per slice", xaxis=_slice_axis(count), height=260,
                         yaxis=PERCENT_AXIS, margin=MARGIN)
    return figure


def slice_area_figure(summary: Mapping[str, Any], current_slice: int | None = None) -> go.Figure:
    """The outlined tumor's area on every slice of a volume (`measure.volume_summary`), in mm² where
    the file gives the pixel spacing, else in pixels; slices counted from 1 as on the page."""
    in_mm2 = summary.get("areas_mm2") is not None
    areas = summary["areas_mm2"] if in_mm2 else summary["areas_px"]
    unit = "mm²" if in_mm2 else "pixels"
    figure = go.Figure(go.Bar(x=list(range(1, len(areas) + 1)), y=list(areas), marker_color=TUMOR_RGB,
                              name=f"tumor area ({unit})",
                              hovertemplate=f"slice %{{x}}: %{{y:,.{1 if in_mm2 else 0}f}} {unit}<extra></extra>"))
    if current_slice is not None:
        figure.add_vline(x=current_slice + 1, line_color=MARK_RGB)
    title = "Tumor area per slice (mm²)" if in_mm2 else "Tumor area per slice (pixels: the file gives no pixel spacing)"
    figure.update_layout(title=title, xaxis=_slice_axis(len(areas)), yaxis={"title": unit, "rangemode": "tozero"},
                         height=260, margin=MARGIN)
    return figure


def confusion_figure(test_metrics: Mapping[str, Any] | None, title: str) -> go.Figure | None:
    """model.json's test confusion matrix (rows true, columns reported) as a heatmap; None when absent."""
    confusion = (test_metrics or {}).get("confusion_matrix")
    if not confusion:
        return None
    labels, matrix = confusion["labels"], confusion["matrix"]
    figure = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, colorscale="Blues", showscale=False,
                                  text=matrix, texttemplate="%{text}"))
    figure.update_layout(title=title, xaxis_title="reported", yaxis_title="true",
                         yaxis={"autorange": "reversed"}, height=370, margin=MARGIN)
    return figure


def _value(row: Any, key: str):
    """A history row is a model.json dict or a training event with the same names as attributes."""
    return row.get(key) if isinstance(row, Mapping) else getattr(row, key, None)


def curve_figures(history: Sequence[Any], planned_epochs: int | None = None,
                  title_suffix: str = "") -> list[go.Figure]:
    """Loss and accuracy per epoch, train and validation; [] without history.

    `history`: model.json "history" rows or training `EpochEnd` events. `planned_epochs` fixes
    the x axis to every epoch of a run still going, so the curves grow into it.
    """
    if not history:
        return []
    epochs = [_value(row, "epoch") or number for number, row in enumerate(history, start=1)]
    last = max(planned_epochs or 0, epochs[-1], 2)
    x_axis = {"title": "epoch", "range": [0.8, last + 0.2], "tickformat": "d", "dtick": 1 if last <= 20 else None}
    figures = []
    for title, train_key, val_key, y_axis in CURVES:
        figure = go.Figure([go.Scatter(x=epochs, y=[_value(row, key) for row in history], name=name,
                                       mode="lines+markers", line={"dash": dash})
                            for name, key, dash in (("train", train_key, "solid"), ("validation", val_key, "dash"))])
        figure.update_layout(title=title + title_suffix, xaxis=x_axis, yaxis=y_axis, height=320, margin=MARGIN)
        figures.append(figure)
    return figures


def reliability_figure(bins: Sequence[Mapping[str, float]], min_scans: int = MIN_BIN_SCANS) -> go.Figure | None:
    """Reliability diagram of model.json's stored bins: observed tumor rate against stated probability, one
    point per bin with at least `min_scans` test scans (fewer give a rate that is mostly chance), labelled and
    sized by its count; None when no bin has that many (`report.reliability_words` says what is left out)."""
    shown = [b for b in bins if b["n"] >= min_scans]
    if not shown:
        return None
    largest = max(b["n"] for b in shown)
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                                line={"dash": "dash", "color": "#888"}, hoverinfo="skip"))
    figure.add_trace(go.Scatter(
        x=[b["mean_probability"] for b in shown], y=[b["tumor_rate"] for b in shown], mode="markers+text",
        name="this model (test scans)", marker={"size": [8 + 22 * (b["n"] / largest) ** 0.5 for b in shown]},
        text=[f"n={b['n']:,}" for b in shown], cliponaxis=False,
        textposition=["middle left" if b["mean_probability"] > 0.7 else "middle right" for b in shown],
        customdata=[[b["n"], b["lo"], b["hi"]] for b in shown],
        hovertemplate=("%{customdata[0]:,} test scans stated %{customdata[1]:.0%}–%{customdata[2]:.0%}: "
                       "mean stated %{x:.1%}, %{y:.1%} had a tumor<extra></extra>")))
    figure.update_layout(title={"text": "Reliability (test scans)", "x": 0, "xanchor": "left"},
                         xaxis={"title": "stated tumor probability", "range": [-0.02, 1.02], "tickformat": ".0%"},
                         yaxis={"title": "share with a tumor", "range": [-0.02, 1.04], "tickformat": ".0%"},
                         height=380, margin={**MARGIN, "t": 50},
                         legend={"x": 0.98, "xanchor": "right", "y": 0.04, "yanchor": "bottom"})  # the empty corner
    return figure
