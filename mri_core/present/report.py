"""A one-page PDF report of one reading: scan, overlay, probabilities, warnings, model, date.

`reading_report` returns the PDF as bytes (fpdf2, pure Python); the Diagnose page offers
them as a download and `python -m mri_core predict --report DIR` writes one per input.
Nothing identifies a patient unless the user typed it into `note`: not even the file name
(file names often carry a patient's name). `confidence_words`, `reliability_rows`,
`peak_words`, `lesion_words`, `spacing_words`, `summary_words`, `model_line`, `volume_words`, `image_caption`
and `model_banner` are the plain words that the Diagnose page shows too (its figures are in `charts`). Two
rules keep the words honest: a probability is called calibrated only when the model's test ECE is at most
`activation.MAX_ECE`, and a heatmap method is named only when a heatmap is shown (`heatmap_shown`). Never
imports streamlit.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from mri_core.package.activation import MAX_ECE, calibrated
from mri_core.present import render
from mri_core.io.reading import CANNOT_READ, VERDICT_HEADLINE, VERDICT_TEXT, Reading, describe_warning
from mri_core.io.volume import Slice, Volume, plane_count

NOTICE = "Decision support, not a diagnosis."
CAM_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM", "none": "none"}
PAGE_WIDTH_MM, MARGIN_MM = 210, 15


def _latin1(text: str) -> str:
    """The PDF core fonts speak Latin-1: replace the few typographic characters we use."""
    for wide, narrow in (("–", "-"), ("—", "-"), ("·", "|"), ("≥", ">="), ("≤", "<="), ("→", "->"), ("’", "'")):
        text = text.replace(wide, narrow)
    return text.encode("latin-1", "replace").decode("latin-1")


def confidence_words(tumor_probability: float, threshold: float, ece: float | None = None) -> str:
    """What the tumor probability means, in plain words; `ece` is the model's test ECE of it. Called
    calibrated only when `calibrated(ece)`; otherwise the words say plainly that it is not a checked rate."""
    per_100 = round(100 * tumor_probability)
    decision = f"The app says \"tumor\" from {threshold:.0%} up."
    if ece is None:
        return (f"A tumor probability of {tumor_probability:.0%}. This model records no calibration error, so "
                f"{tumor_probability:.0%} is a score, not a checked rate of tumors. {decision}")
    measured = f"on the model's held-out test scans, stated and observed rates differed by {ece:.1%} on average (ECE)"
    if not calibrated(ece):
        return (f"A tumor probability of {tumor_probability:.0%}. This model's probabilities are poorly calibrated: "
                f"{measured}, more than the {MAX_ECE:.0%} the app accepts, so {tumor_probability:.0%} is a rough "
                f"score, not a rate of tumors. {decision}")
    return (f"A tumor probability of {tumor_probability:.0%} is calibrated: of 100 scans like this one that get "
            f"about {tumor_probability:.0%}, roughly {per_100} would show a tumor and {100 - per_100} would not. "
            f"{decision} {measured[0].upper()}{measured[1:]}.")


def reliability_rows(info: dict) -> list[dict] | None:
    """The package's stored reliability bins (test split), or None when it has none."""
    bins = (info.get("test_metrics") or {}).get("reliability")
    return bins or None


def peak_words(reading: Reading) -> str | None:
    """Where the heatmap peaks and its box, in original pixels; None without a heatmap."""
    if reading.cam_peak is None or reading.cam_box is None:
        return None
    x0, y0, x1, y1 = reading.cam_box
    return (f"Heatmap peak at x {reading.cam_peak[0]}, y {reading.cam_peak[1]}; box x {x0}–{x1}, y {y0}–{y1} "
            "(original pixels, x right, y down).")


def lesion_words(reading: Reading) -> str | None:
    """The tumor outline's area and largest diameter (in mm² and mm where the file gives the pixel
    spacing, else in pixels with the reason) and its box in original pixels; None when the reading
    has no lesion (the model does not segment, or no tumor)."""
    lesion = reading.lesion
    if lesion is None:
        return None
    x0, y0, x1, y1 = lesion["box"]
    diameter_mm, diameter_px = lesion.get("diameter_mm"), lesion.get("diameter_px")
    if lesion["area_mm2"] is not None:
        size = f"{lesion['area_mm2']:,.1f} mm² ({lesion['area_px']:,} pixels)"
        across = f"; largest diameter {diameter_mm:,.1f} mm" if diameter_mm is not None else ""
    else:
        size = f"{lesion['area_px']:,} pixels (the file gives no pixel spacing, so no mm)"
        across = f"; largest diameter {diameter_px:,.1f} pixels" if diameter_px is not None else ""
    return f"Tumor outline: {size}{across}; box x {x0}–{x1}, y {y0}–{y1} (original pixels, x right, y down)."


def spacing_words(spacing_source: str | None, lesion: dict | None = None) -> str:
    """Where the pixel spacing that turns pixels into mm came from (`Volume.pixel_spacing_source`:
    "DICOM PixelSpacing", "NIfTI zooms"), or that the file gives none; a lesion measured in mm says the
    file gave it even when its source was not passed."""
    if spacing_source:
        return f"Pixel spacing from the {spacing_source}."
    if lesion is not None and lesion.get("area_mm2") is not None:
        return "Pixel spacing as the file gives it."
    return "Pixel spacing: not given by the file, so sizes are in pixels."


def summary_words(summary: dict) -> str:
    """A volume's tumor measurements (`measure.volume_summary`) in one sentence: the volume in mL and
    where the slice thickness came from, the slices that hold tumor (counted from 1, as pages count),
    the largest diameter; each figure that cannot be given says why."""
    slices = summary["slices_with_tumor"]
    if not slices:
        return "No slice holds an outlined tumor, so there is no tumor volume to measure."
    if summary["volume_ml"] is not None:
        volume = f"Tumor volume {summary['volume_ml']:,.2f} mL (slice thickness from {summary['spacing_source']})"
    elif summary["areas_mm2"] is None:
        volume = "No tumor volume: the file gives no pixel spacing"
    else:
        volume = "No tumor volume: the file gives no slice thickness or positions"
    where = _slice_ranges([i + 1 for i in slices])
    if summary["max_diameter_mm"] is not None:
        across = f"largest diameter {summary['max_diameter_mm']:,.1f} mm"
    else:
        across = f"largest diameter {summary['max_diameter_px']:,.1f} pixels"
    return f"{volume}; tumor on {len(slices)} slice{'s' if len(slices) != 1 else ''} ({where}); {across} within a slice."


def _slice_ranges(numbers: list[int]) -> str:
    """[3, 4, 5, 9] -> "3–5, 9"."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"{run[0]}–{run[-1]}" if len(run) > 1 else f"{run[0]}" for run in runs)


def model_line(ref: str, info: dict) -> str:
    """One Markdown line naming the model a page reads with: name@version, architecture, classes, accuracy."""
    accuracy = (info.get("test_metrics") or {}).get("accuracy")
    return (f"Model **{ref}** · {info.get('architecture', '?')} · classes: {', '.join(info.get('class_names', []))}"
            + (f" · test accuracy {accuracy:.1%}" if accuracy is not None else ""))


def volume_words(volume: Volume, plane: str) -> str | None:
    """The line over a volume's slider: study and series descriptions (the only DICOM tags ever
    shown, never names, IDs or dates) and the slice count; None for a single plain slice."""
    described = " · ".join(d for d in (volume.study_description, volume.series_description) if d)
    if not described and volume.count == 1:
        return None
    return f"{described + ' · ' if described else ''}{plane_count(volume, plane)} {plane} slice(s)"


def heatmap_shown(reading: Reading | None, cam: str, opacity: float = 1.0, show: str = "both") -> bool:
    """Whether the overlay shows a heatmap: the reader did not choose the outline alone (`show`
    "outline"), a method was chosen, it gave a map that is not all zero (a model with no evidence
    for any tumor class gives a flat one), the opacity is above 0, and the image could be read (no
    tumor evidence is shown for one that cannot)."""
    return (show != "outline" and cam != "none" and opacity > 0
            and (reading is None or (reading.cam_peak is not None and reading.verdict != CANNOT_READ)))


def image_caption(slice_: Slice, cam: str, plane: str, reading: Reading | None = None, opacity: float = 1.0,
                  show: str = "both") -> str:
    """The overlay's caption: the file, which slice of how many (counted from 1, as the page's slider), and
    the heatmap method, which is named only when a heatmap is shown (`heatmap_shown`); otherwise why there is
    none. With `show` "outline" (the outline alone) it names no heatmap, only the outline or why there is none."""
    where = f" · {plane} slice {slice_.index + 1} of {slice_.count}" if slice_.count > 1 else ""
    if show == "outline":
        if reading is not None and reading.mask is None:
            return f"{slice_.source}{where} · this model does not outline tumors"
        if reading is not None and reading.lesion is None:
            return f"{slice_.source}{where} · no tumor outlined on this slice"
        return f"{slice_.source}{where} · white line: the tumor's outline as the model segments it"
    if heatmap_shown(reading, cam, opacity):
        return (f"{slice_.source}{where} · heatmap ({CAM_NAMES.get(cam, cam)}): evidence for the most likely "
                "tumor class")
    if reading is not None and reading.verdict == CANNOT_READ:
        why = "the image cannot be read"
    elif cam == "none":
        why = "none was asked for"
    elif opacity <= 0:
        why = "its opacity is 0"
    else:
        why = "the model's evidence map is empty for this scan"
    return f"{slice_.source}{where} · no heatmap: {why}"


def model_banner(ref: str, default_ref: str | None, problems: list[str]) -> str:
    """The warning a reading page shows while a model other than the shipped default is active."""
    text = (f"Reading with **{ref}**, not the shipped default model{f' {default_ref}' if default_ref else ''}: "
            "it was activated on the Models or Train page, or with `python -m mri_core train --activate`.")
    if problems:
        text += (" It was activated although it does not pass the activation checks: "
                 + "; ".join(problems) + ".")
    return text


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
                   note: str = "", created: datetime | None = None, spacing_source: str | None = None,
                   summary: dict | None = None) -> bytes:
    """One reading -> PDF bytes. `pixels`: the slice read, float32 (H, W) in [0, 1];
    `info`: the model's model.json; `note`: free text the user typed (the only place a
    patient identifier can come from). `spacing_source`: where the slice's pixel spacing came
    from (`Volume.pixel_spacing_source`; None: not given); `summary`: the volume's tumor measurements
    (`measure.volume_summary`, or `series.SeriesTally`'s) when the whole series was read."""
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
    shown = heatmap_shown(reading, cam)
    overlay = render.overlay(pixels, reading.heatmap if shown else None, 0.45, reading.cam_peak if shown else None,
                             reading.cam_box if shown else None, reading.mask)
    pdf.image(_png(overlay), x=MARGIN_MM + image_width + 6, y=top, w=image_width, h=image_height)
    pdf.set_y(top + image_height + 1)
    outline = " The white line outlines the tumor the model segmented." if reading.lesion is not None else ""
    if shown:
        line(f"Left: the scan as read. Right: heatmap ({CAM_NAMES.get(cam, cam)}) of the evidence for the most likely "
             f"tumor class; it shows where the model looked, not the tumor's outline.{outline}", 8, "I", 4)
    else:
        why = ("the image cannot be read" if reading.verdict == CANNOT_READ else "none was asked for" if cam == "none"
               else "the model's evidence map is empty for this scan")
        line(f"Left: the scan as read. Right: the same scan, without heatmap ({why}).{outline}", 8, "I", 4)
    pdf.ln(2)

    ece = (info.get("test_metrics") or {}).get("ece_tumor")
    if reading.verdict == CANNOT_READ:  # no tumor call, no tumor type
        line(f"Result: {VERDICT_HEADLINE[CANNOT_READ].upper()}", 13, "B", 7)
        line(VERDICT_TEXT[CANNOT_READ], 10)
    else:
        line(f"Result: {VERDICT_HEADLINE[reading.verdict].upper()} - reported class: {reading.label}", 13, "B", 7)
        line(f"Tumor probability {reading.tumor_probability:.1%} (decision threshold {reading.threshold:.0%}).", 11)
        line(confidence_words(reading.tumor_probability, reading.threshold, ece), 9)
        pdf.ln(1)
        line("Class probabilities (calibrated):" if calibrated(ece) else "Class probabilities:", 10, "B")
        for name, probability in reading.probabilities.items():
            line(f"    {name}: {probability:.1%}", 10)
        for words in (lesion_words(reading), peak_words(reading)):
            if words:
                line(words, 9)
    if reading.lesion is not None or summary is not None:  # what the mm figures rest on
        line(spacing_words(spacing_source, reading.lesion), 9)
    if summary is not None:
        line("Whole series:", 10, "B")
        line(summary_words(summary) if summary.get("slices_with_tumor") is not None
             else "This model does not outline tumors, so the series' tumor volume is not measured.", 9)
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
