"""A one-page PDF report of one reading: scan, overlay, probabilities, warnings, model, date.

`reading_report` returns the PDF as bytes (fpdf2, pure Python); the Diagnose page offers
them as a download and `python -m mri_core predict --report DIR` writes one per input.
Nothing identifies a patient unless the user typed it into `note`: not even the file name
(file names often carry a patient's name). `verdict_words`, `operating_point_words`, `decision_metrics`,
`percent`, `confidence_words`, `reliability_rows`, `reliability_words`, `peak_words`, `lesion_words`,
`spacing_words`, `summary_words`, `model_line`, `volume_words`, `scan_label`, `image_caption` and
`model_banner` are the plain words that the Diagnose page shows too (its figures are in `charts`). The rules
that keep the words honest: the verdict comes first and a tumor type is named only under a `tumor` verdict;
a probability is never shown as 0 % or 100 % (`percent`); it is called calibrated only when the model's test
ECE is at most `activation.MAX_ECE` and the image is not out of distribution; and the heatmap is mentioned
only when one is drawn (`heatmap_shown`). Never imports streamlit.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from mri_core.package.activation import MAX_ECE, calibrated
from mri_core.present import render
from mri_core.io.reading import (CANNOT_READ, LOW_CONFIDENCE, OUT_OF_DISTRIBUTION, TUMOR, VERDICT_HEADLINE,
                                 VERDICT_TEXT, Reading, describe_warning)
from mri_core.io.slices import DICOM, NIFTI, UploadedScan
from mri_core.io.volume import Slice, Volume, plane_count

NOTICE = "Decision support, not a diagnosis."
CAM_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM", "none": "none"}
PAGE_WIDTH_MM, MARGIN_MM = 210, 15
# The class of a model that knows no tumor types (the Kaggle `yes/` folder): it names no type
TYPELESS_TUMOR_CLASS = "tumor"
# Reliability bins with fewer test scans than this are not drawn: their rate is mostly chance
MIN_BIN_SCANS = 10
# The warnings that qualify a tumor call (or its absence) under the headline
CAUTIONS = {OUT_OF_DISTRIBUTION: "the image looks unlike the scans the model was trained on",
            LOW_CONFIDENCE: "the probability is close to the decision threshold"}


def _latin1(text: str) -> str:
    """The PDF core fonts speak Latin-1: replace the few typographic characters we use."""
    for wide, narrow in (("–", "-"), ("—", "-"), ("·", "|"), ("≥", ">="), ("≤", "<="), ("→", "->"), ("’", "'")):
        text = text.replace(wide, narrow)
    return text.encode("latin-1", "replace").decode("latin-1")


def percent(probability: float) -> str:
    """A probability as a page shows it, to 0.1 %, but never as a certainty it is not: ">99.9%" where it
    would round to 100.0 %, "<0.1%" where it would round to 0.0 % (a model's probability is never exact)."""
    if probability >= 0.9995:
        return ">99.9%"
    if probability < 0.0005:
        return "<0.1%"
    return f"{probability:.1%}"


def verdict_words(reading: Reading) -> tuple[str, str]:
    """The headline (the verdict in words) and the one line under it: the most likely tumor type under a
    `tumor` verdict (and only there), why under `uncertain` and `cannot_read`, what `no_tumor` means; a
    warning that qualifies the call (CAUTIONS) is named in that line, so the headline never contradicts it."""
    verdict = reading.verdict
    if verdict == TUMOR and reading.label != TYPELESS_TUMOR_CLASS:
        line = f"Most likely type: {reading.label}."
    else:
        line = VERDICT_TEXT[verdict]
    cautions = [words for warning, words in CAUTIONS.items() if warning in reading.warnings]
    if cautions and verdict != CANNOT_READ:
        line += f" Read it with caution: {' and '.join(cautions)} (see the warnings)."
    return VERDICT_HEADLINE[verdict], line


def operating_point_words(info: dict) -> str:
    """What a "tumor" call means at this model's operating point, in words a clinician reads at once: the
    probability it takes (with an uncertainty band: the band, where the model defers), and how the model did
    there: the band's figures on the validation scans that set it, and the test sensitivity and specificity
    at the threshold (model.json's `test_metrics`, `uncertainty_band`, `operating_point.validation`)."""
    threshold = float(info.get("threshold", 0.5))
    metrics = info.get("test_metrics") or {}
    sensitivity, specificity, n = metrics.get("sensitivity"), metrics.get("specificity"), metrics.get("n")
    tested = "" if n is None else f"{n:,} "
    band = info.get("uncertainty_band")
    if not band:
        text = f"A \"tumor\" call means a tumor probability of at least {threshold:.1%}"
        if sensitivity is None or specificity is None:
            return text + "; this model records no test sensitivity or specificity."
        return (f"{text}: on its {tested}held-out test scans, calls at that level caught {sensitivity:.1%} of the "
                f"tumors and called {1 - specificity:.1%} of the healthy scans tumor.")
    low, high = (float(v) for v in band)
    text = (f"A \"tumor\" call means a tumor probability of at least {high:.1%}, a \"no tumor\" call one below "
            f"{low:.1%}; in between the model defers (uncertain: refer to a reader).")
    validation = ((info.get("operating_point") or {}).get("validation") or {}).get("all")
    if validation:
        tumors, healthy = validation["tumors"], validation["healthy"]
        missed, false_calls = round(validation["missed"] * tumors), round(validation["healthy_called_tumor"] * healthy)
        deferred = round(validation["deferred"] * (tumors + healthy))
        text += (f" On the {tumors + healthy:,} validation scans that set these limits it called {missed} of "
                 f"{tumors:,} tumors \"no tumor\" and {false_calls} of {healthy:,} healthy scans \"tumor\" "
                 f"({validation['healthy_called_tumor']:.1%}), and deferred {deferred} ({validation['deferred']:.1%}).")
    if sensitivity is not None and specificity is not None:
        text += (f" Counting every probability from its threshold, {threshold:.1%}, as tumor, its {tested}held-out "
                 f"test scans gave sensitivity {sensitivity:.1%} and specificity {specificity:.1%}.")
    return text


def decision_metrics(info: dict) -> list[tuple[str, str]]:
    """(label, value) of the probabilities a call turns on, beside the reading's tumor probability: with an
    uncertainty band its two ends (the threshold inside it decides no verdict), else the threshold."""
    if band := info.get("uncertainty_band"):
        return [("Tumor call from", f"{float(band[1]):.1%}"), ("No tumor below", f"{float(band[0]):.1%}")]
    return [("Decision threshold", f"{float(info.get('threshold', 0.5)):.1%}")]


def confidence_words(tumor_probability: float, ece: float | None = None, warnings=()) -> str:
    """What the tumor probability means, in plain words; `ece` is the model's test ECE of it. Called
    calibrated only when `calibrated(ece)` and the image is not out of distribution (`warnings`): the
    calibration was measured on scans like the model's test scans; otherwise the words say plainly that it
    is not a checked rate."""
    shown = percent(tumor_probability)
    if ece is None:
        return (f"A tumor probability of {shown}. This model records no calibration error, so {shown} is a score, "
                "not a checked rate of tumors.")
    measured = f"on the model's held-out test scans, stated and observed rates differed by {ece:.1%} on average (ECE)"
    if not calibrated(ece):
        return (f"A tumor probability of {shown}. This model's probabilities are poorly calibrated: {measured}, more "
                f"than the {MAX_ECE:.0%} the app accepts, so {shown} is a rough score, not a rate of tumors.")
    if OUT_OF_DISTRIBUTION in warnings:
        return (f"A tumor probability of {shown}. The model's probabilities are calibrated for scans like its test "
                f"scans (test ECE {ece:.1%}), but this image looks unlike them, so here {shown} is a score, not a checked rate.")
    per_100 = round(100 * tumor_probability)
    if per_100 >= 100:
        share = "nearly all would show a tumor"
    elif per_100 <= 0:
        share = "nearly none would show a tumor"
    else:
        share = f"roughly {per_100} would show a tumor and {100 - per_100} would not"
    return (f"The tumor probability, {shown}, is calibrated: of 100 scans given about this probability, {share}. "
            f"{measured[0].upper()}{measured[1:]}.")


def reliability_rows(info: dict) -> list[dict] | None:
    """The package's stored reliability bins (test split), or None when it has none."""
    bins = (info.get("test_metrics") or {}).get("reliability")
    return bins or None


def reliability_words(bins: list[dict], min_scans: int = MIN_BIN_SCANS) -> str:
    """The caption under the reliability diagram (`charts.reliability_figure`): what a point is, and which
    bins are not drawn because they hold too few scans to say anything."""
    hidden = [b for b in bins if b["n"] < min_scans]
    text = ("Each point is a group of the model's held-out test scans with about the same stated tumor probability; "
            "its label and size give how many scans it holds. Points on the dashed line are perfectly calibrated.")
    if hidden:
        scans = sum(b["n"] for b in hidden)
        text += (f" {len(hidden)} group{'s' if len(hidden) != 1 else ''} with fewer than {min_scans} scans "
                 f"({scans} scan{'s' if scans != 1 else ''} in all) {'are' if len(hidden) != 1 else 'is'} not drawn: "
                 "so few scans give a rate that is mostly chance.")
    return text


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


def plural(count: int, word: str, words: str | None = None) -> str:
    """1 -> "1 file", 2 -> "2 files" (`words` where the plural is not `word` + "s")."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


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
    return f"{volume}; tumor on {plural(len(slices), 'slice')} ({where}); {across} within a slice."


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


def scan_label(scan: UploadedScan) -> str:
    """How Diagnose lists one scan among several uploads: a plain image by its file name, a NIfTI volume by
    its file name and slice count, a DICOM series as "DICOM series" with its study and series descriptions
    (the only tags ever shown) and slice count; the zip it came in first."""
    volume = scan.volume
    count = plural(volume.count, "slice")
    if scan.kind == DICOM and (volume.count > 1 or len(scan.uploads) > 1 or scan.zip_name):
        described = " · ".join(d for d in (volume.study_description, volume.series_description) if d)
        label = " · ".join(part for part in ("DICOM series", described, count) if part)
    elif scan.kind == DICOM:
        label = f"{volume.source} · DICOM image"
    elif scan.kind == NIFTI:
        label = f"{volume.source} · NIfTI volume · {count}"
    else:
        label = volume.source
    return f"{scan.zip_name}: {label}" if scan.zip_name else label


def heatmap_shown(reading: Reading | None, cam: str, opacity: float = 1.0, layers=render.LAYERS) -> bool:
    """Whether the overlay shows a heatmap: the reader chose it (`layers`), a method was chosen, it gave
    a map that is not all zero (a model with no evidence for any tumor class gives a flat one), the
    opacity is above 0, and the image could be read (no tumor evidence is shown for one that cannot)."""
    return (render.HEATMAP in layers and cam != "none" and opacity > 0
            and (reading is None or (reading.cam_peak is not None and reading.verdict != CANNOT_READ)))


def image_caption(slice_: Slice, cam: str, plane: str, reading: Reading | None = None, opacity: float = 1.0,
                  layers=render.LAYERS) -> str:
    """The overlay's caption: the file, which slice of how many (counted from 1, as the page's slider), then
    what is drawn of `layers`: the heatmap and its method (only when one is drawn, `heatmap_shown`; never a
    word of a heatmap otherwise, but for a map the model left empty), the box and the peak, the outline (or,
    with the outline alone chosen, why there is none). An image that cannot be read gets nothing drawn."""
    where = f" · {plane} slice {slice_.index + 1} of {slice_.count}" if slice_.count > 1 else ""
    if reading is not None and reading.verdict == CANNOT_READ:
        return f"{slice_.source}{where} · not read, so nothing is drawn over it"
    drawn = []
    evidence = cam != "none" and (reading is None or reading.cam_peak is not None)
    if heatmap_shown(reading, cam, opacity, layers):
        drawn.append(f"heatmap ({CAM_NAMES.get(cam, cam)}): evidence for the most likely tumor class")
    elif render.HEATMAP in layers and cam != "none" and opacity > 0 and not evidence:
        drawn.append("the model found no evidence to map on this slice")
    if evidence and render.BOX in layers:
        drawn.append("magenta box: where the evidence is strongest")
    if evidence and render.PEAK in layers:
        drawn.append("cross: its peak")
    if render.OUTLINE in layers:
        if reading is not None and reading.mask is None:
            if set(layers) == {render.OUTLINE}:
                drawn.append("this model does not outline tumors")
        elif reading is not None and reading.lesion is None:
            drawn.append("no tumor outlined on this slice")
        else:
            drawn.append("white line: the tumor's outline as the model segments it")
    return " · ".join([f"{slice_.source}{where}", *drawn])


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
        ("decision", f"{_decision(info)}; temperature {float(info.get('temperature', 1.0)):.3f}"),
        ("test figures", f"n={metrics.get('n', '-')}, accuracy {fmt('accuracy')}, sensitivity {fmt('sensitivity')}, "
                         f"specificity {fmt('specificity')}, ROC AUC {fmt('roc_auc')}, ECE {fmt('ece_tumor')}"),
    ]


def _decision(info: dict) -> str:
    threshold = float(info.get("threshold", 0.5))
    if band := info.get("uncertainty_band"):
        return (f"tumor when tumor probability >= {float(band[1]):.3f}, no tumor below {float(band[0]):.3f}, "
                f"uncertain in between (threshold {threshold:.3f})")
    return f"tumor when tumor probability >= {threshold:.3f}"


def _png(rgb: np.ndarray):
    from io import BytesIO

    return BytesIO(render.to_png(rgb))


def reading_report(reading: Reading, pixels: np.ndarray, info: dict, cam: str = "gradcam",
                   note: str = "", created: datetime | None = None, spacing_source: str | None = None,
                   summary: dict | None = None, slice_count: int | None = None, plane: str | None = None) -> bytes:
    """One reading -> PDF bytes, the verdict first. `pixels`: the slice read, float32 (H, W) in [0, 1];
    `info`: the model's model.json; `note`: free text the user typed (the only place a
    patient identifier can come from). `spacing_source`: where the slice's pixel spacing came
    from (`Volume.pixel_spacing_source`; None: not given); `summary`: the volume's tumor measurements
    (`measure.volume_summary`, or `series.SeriesTally`'s) when the whole series was read; `slice_count` and
    `plane`: of how many slices of which plane the reading's slice is (its number counted from 1)."""
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
    where = ""
    if reading.slice_index is not None:  # counted from 1, as pages count
        where = (f"    {plane + ' s' if plane else 'S'}lice {reading.slice_index + 1}"
                 + (f" of {slice_count}" if slice_count else ""))
    line(f"Date: {created.strftime('%Y-%m-%d %H:%M %Z')}{where}", 9)
    if note.strip():
        line(f"Note (typed by the user): {note.strip()}", 9)
    pdf.ln(2)

    # the verdict first: the headline, its one line (a type only under a tumor verdict), the outline's size
    headline, verdict_line = verdict_words(reading)
    line(f"Result: {headline.upper()}", 13, "B", 7)
    line(verdict_line, 10)
    ece = (info.get("test_metrics") or {}).get("ece_tumor")
    readable = reading.verdict != CANNOT_READ  # no tumor call, no probability, no heatmap for it
    if lesion := lesion_words(reading):
        line(lesion, 10, "B")
    if readable:
        decision = ", ".join(f"{label.lower()} {value}" for label, value in decision_metrics(info))
        line(f"Tumor probability {percent(reading.tumor_probability)} ({decision}).", 11)
        line(operating_point_words(info), 9)
        line(confidence_words(reading.tumor_probability, ece, reading.warnings), 9)
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
             f"tumor class (magenta box: where it is strongest; cross: its peak); it shows where the model looked, "
             f"not the tumor's outline.{outline}", 8, "I", 4)
    else:
        why = ("the image cannot be read" if not readable else "none was asked for" if cam == "none"
               else "the model's evidence map is empty for this scan")
        line(f"Left: the scan as read. Right: the same scan, without heatmap ({why}).{outline}", 8, "I", 4)
    pdf.ln(2)

    if readable:
        line("Class probabilities (calibrated):" if calibrated(ece) else "Class probabilities:", 10, "B")
        for name, probability in reading.probabilities.items():
            line(f"    {name}: {percent(probability)}", 10)
        if peak := peak_words(reading):
            line(peak, 9)
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
