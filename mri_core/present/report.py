"""A one-page PDF report of one reading: scan, overlay, probabilities, warnings, model, date.

`reading_report` returns the PDF as bytes (fpdf2, pure Python); the Diagnose page offers
them as a download and `python -m mri_core predict --report DIR` writes one per input.
Nothing identifies a patient unless the user typed it into `note`: not even the file name
(file names often carry a patient's name). `confidence_words` and `reliability_rows` are
the plain-words explanation of the calibrated probability that the page shows too.
Never imports streamlit.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from mri_core.present import render
from mri_core.io.reading import Reading
from mri_core.io.reading import describe_warning

NOTICE = "Decision support, not a diagnosis."
CAM_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM", "none": "none"}
PAGE_WIDTH_MM, MARGIN_MM = 210, 15


def _latin1(text: str) -> str:
    """The PDF core fonts speak Latin-1: replace the few typographic characters we use."""
    for wide, narrow in (("–", "-"), ("—", "-"), ("·", "|"), ("≥", ">="), ("≤", "<="), ("→", "->"), ("’", "'")):
        text = text.replace(wide, narrow)
    return text.encode("latin-1", "replace").decode("latin-1")


def confidence_words(tumor_probability: float, threshold: float, ece: float | None = None) -> str:
    """What the calibrated tumor probability means, in plain words."""
    per_100 = round(100 * tumor_probability)
    text = (f"A tumor probability of {tumor_probability:.0%} is calibrated: of 100 scans like this one that get "
            f"about {tumor_probability:.0%}, roughly {per_100} would show a tumor and {100 - per_100} would not. "
            f"The app says \"tumor\" from {threshold:.0%} up.")
    if ece is not None:
        text += f" On the model's held-out test scans, stated and observed rates differed by {ece:.1%} on average (ECE)."
    return text


def reliability_rows(info: dict) -> list[dict] | None:
    """The package's stored reliability bins (test split), or None when it has none."""
    bins = (info.get("test_metrics") or {}).get("reliability")
    return bins or None


def card_summary(info: dict) -> list[tuple[str, str]]:
    """Model name, version and the model card's key figures as (label, value) rows."""
    metrics = info.get("test_metrics") or {}

    def fmt(key):
        value = metrics.get(key)
        return "-" if value is None else f"{value:.3f}"

    return [
        ("model", f"{info.get('name', '?')}@{info.get('version', '?')} ({info.get('architecture', '?')}, created {str(info.get('created', '?'))[:10]})"),
        ("classes", ", ".join(info.get("class_names", []))),
        ("decision", f"tumor when tumor probability >= {float(info.get('threshold', 0.5)):.2f}; temperature {float(info.get('temperature', 1.0)):.3f}"),
        ("test figures", f"n={metrics.get('n', '-')}, accuracy {fmt('accuracy')}, sensitivity {fmt('sensitivity')}, "
                         f"specificity {fmt('specificity')}, ROC AUC {fmt('roc_auc')}, ECE {fmt('ece_tumor')}"),
    ]


def _png(rgb: np.ndarray):
    from io import BytesIO

    return BytesIO(render.to_png(rgb))


def reading_report(reading: Reading, pixels: np.ndarray, info: dict, cam: str = "gradcam",
                   note: str = "", created: datetime | None = None) -> bytes:
    """One reading -> PDF bytes. `pixels`: the slice read, float32 (H, W) in [0, 1];
    `info`: the model's model.json; `note`: free text the user typed (the only place a
    patient identifier can come from)."""
    from fpdf import FPDF

    created = created or datetime.now(timezone.utc)
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(MARGIN_MM, MARGIN_MM)
    pdf.set_auto_page_break(True, MARGIN_MM)
    pdf.set_title("Brain MRI screening reading")
    pdf.set_creation_date(created)
    pdf.add_page()
    width = PAGE_WIDTH_MM - 2 * MARGIN_MM

    def line(text: str, size: float = 10, style: str = "", height: float = 5.5):
        pdf.set_font("Helvetica", style, size)
        pdf.multi_cell(width, height, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    line("Brain MRI screening - reading report", 16, "B", 8)
    line(f"{NOTICE} A radiologist must review every scan.", 10, "B")
    line(f"Date: {created.strftime('%Y-%m-%d %H:%M %Z')}" + (f"    Slice {reading.slice_index}" if reading.slice_index is not None else ""), 9)
    if note.strip():
        line(f"Note (typed by the user): {note.strip()}", 9)
    pdf.ln(2)

    # scan and overlay side by side, each half the text width, aspect kept
    image_width = (width - 6) / 2
    height, width_px = pixels.shape
    image_height = image_width * height / width_px
    top = pdf.get_y()
    pdf.image(_png(render.grey_rgb(pixels)), x=MARGIN_MM, y=top, w=image_width, h=image_height)
    overlay = render.overlay(pixels, reading.heatmap, 0.45, reading.cam_peak, reading.cam_box)
    pdf.image(_png(overlay), x=MARGIN_MM + image_width + 6, y=top, w=image_width, h=image_height)
    pdf.set_y(top + image_height + 1)
    line(f"Left: the scan as read. Right: heatmap ({CAM_NAMES.get(cam, cam)}) of the evidence for the most likely "
         "tumor class; it shows where the model looked, not the tumor's outline.", 8, "I", 4)
    pdf.ln(2)

    line(f"Result: {'TUMOR' if reading.tumor else 'NO TUMOR'} - reported class: {reading.label}", 13, "B", 7)
    line(f"Tumor probability {reading.tumor_probability:.1%} (decision threshold {reading.threshold:.0%}).", 11)
    line(confidence_words(reading.tumor_probability, reading.threshold,
                          (info.get("test_metrics") or {}).get("ece_tumor")), 9)
    pdf.ln(1)
    line("Class probabilities (calibrated):", 10, "B")
    for name, probability in reading.probabilities.items():
        line(f"    {name}: {probability:.1%}", 10)
    if reading.cam_peak is not None:
        x0, y0, x1, y1 = reading.cam_box
        line(f"Heatmap peak at x {reading.cam_peak[0]}, y {reading.cam_peak[1]}; box x {x0}-{x1}, y {y0}-{y1} "
             "(original pixels, x right, y down).", 9)
    pdf.ln(1)
    line("Warnings:", 10, "B")
    if reading.warnings:
        for warning in reading.warnings:
            line(f"    {warning}: {describe_warning(warning)}", 10)
    else:
        line("    none", 10)
    pdf.ln(2)
    line("Model", 10, "B")
    for label, value in card_summary(info):
        line(f"    {label}: {value}", 9)
    pdf.ln(2)
    line(f"{NOTICE} Generated by the offline brain MRI screening app; it reads one 2-D slice and "
         "was trained on public data sets. Check against the full study.", 8, "I", 4)
    return bytes(pdf.output())


def reliability_figure(bins: list[dict]):
    """Plotly reliability diagram of stored bins: observed tumor rate against stated probability."""
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                                line={"dash": "dash", "color": "#888"}))
    figure.add_trace(go.Scatter(
        x=[b["mean_probability"] for b in bins], y=[b["tumor_rate"] for b in bins], mode="lines+markers",
        name="this model (test split)", marker={"size": [6 + 24 * (b["n"] / max(c["n"] for c in bins)) ** 0.5 for b in bins]},
        text=[f"{b['n']} scans with p in ({b['lo']:.1f}, {b['hi']:.1f}]" for b in bins], hoverinfo="text+x+y"))
    figure.update_layout(title="Reliability: stated tumor probability vs share that had a tumor",
                         xaxis={"title": "stated tumor probability", "range": [0, 1], "tickformat": ".0%"},
                         yaxis={"title": "share with a tumor", "range": [0, 1.02], "tickformat": ".0%"},
                         height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"x": 0.02, "y": 0.98})
    return figure
