"""The Diagnose page's widget groups (not a page: pages/diagnose.py calls them): which upload to read,
which slice, Scan all slices, the verdict and its details, what to draw over the scan, the reading log
with the reader's finding, the report and the DICOM Segmentation.

Every word and figure comes from `mri_core.present`; the reading from `mri_core.inference`. The reading
log (`mri_core.present.reading_log`) gets one row per upload, slice and model shown, not one per script
run: the reading id is kept in session state under that key. Scan all slices reads every slice but logs
only the slice then shown, as any other reading. No TensorFlow at import.
"""

from __future__ import annotations

import streamlit as st

from mri_core.io import slices as io
from mri_core.io.errors import MriError
from mri_core.io.reading import CANNOT_READ, describe_warning
from mri_core.io.volume import DICOM_PIXEL_SPACING, plane_count
from mri_core.package import registry
from mri_core.present import charts, reading_log, render, report
from pages.common import load_scan_model, or_stop, show_chart

VERDICT_COLOURS = {"tumor": "red", "no_tumor": "green", "uncertain": "orange", "cannot_read": "gray"}
# The overlay's checkboxes: (layer, label); the box and the peak start unticked over a model's outline
LAYER_BOXES = ((render.OUTLINE, "Outline"), (render.HEATMAP, "Heatmap"), (render.BOX, "Box"), (render.PEAK, "Peak"))
FINDING_LABEL = "Your finding (recorded in the reading log)"
LOGGED = "logged_readings"  # session state: {(file ids, scan, plane, slice, model): reading id or the failure}


@st.cache_data(show_spinner="Reading the scan ...", max_entries=16, ttl=3600)
def read_scan(package_path: str, version: int, scan_key: tuple, _volume, index: int, plane: str, cam: str):
    """Slice `index` of `plane` -> (Slice, Reading) with a heatmap by `cam`; `scan_key` names the volume."""
    from mri_core.inference import read as pipeline

    [slice_] = io.volume_slices(_volume, index, plane)
    return slice_, pipeline.read_slices(load_scan_model(package_path, version), [slice_], cam=cam)[0]


def choose_scan(scans: list, uploads_key: tuple) -> int:
    """Which of several uploaded scans to read, as a list (the newest upload's scan chosen whenever the
    files change); 0 for a single one."""
    if len(scans) == 1:
        return 0
    newest = max(range(len(scans)), key=lambda number: scans[number].uploads[-1])
    return st.radio(f"Uploaded scans ({len(scans)}): the newest is read; choose another to read it",
                    range(len(scans)), index=newest, format_func=lambda number: report.scan_label(scans[number]),
                    key=f"scan-{abs(hash(uploads_key))}")


def choose_slice(entry, scan_key: tuple, volume, plane: str, index: int) -> int:
    """A volume's slice slider (counted from 1, as a reader counts), Scan all slices and what it found;
    the 0-based index of the slice to read (`index`, the middle one, for a single slice)."""
    if volume.count == 1:
        return index
    slider_key = f"slice-{abs(hash(scan_key))}"  # new files: back to the middle
    # Its value lives in session state only (Scan all slices sets it too): a default as well makes
    # Streamlit log a warning with a stack on every run after the scan.
    st.session_state.setdefault(slider_key, index + 1)
    index = st.slider("Slice", 1, plane_count(volume, plane), key=slider_key) - 1
    st.button("Scan all slices", on_click=scan_all_slices, args=(entry, scan_key, volume, plane, slider_key),
              help="Tumor probability of every slice and, where the model outlines tumors, the tumor's area on "
                   "each and its volume (no heatmaps); then jump to the most suspicious slice.")
    scanned = st.session_state.scanned.get(scan_key)
    if isinstance(scanned, str):
        st.error(scanned)
    elif scanned is not None:
        summary = scanned["summary"]
        if summary is not None:
            st.markdown(f"**{report.summary_words(summary)}**")
        outlined = summary is not None and summary["slices_with_tumor"]
        probability_column, area_column = st.columns(2) if outlined else (st, None)
        show_chart(charts.slice_probability_figure(scanned["probabilities"], entry.info["threshold"], index,
                                                   entry.info.get("uncertainty_band")), where=probability_column)
        if outlined:
            show_chart(charts.slice_area_figure(summary, index), where=area_column)
    return index


def scan_all_slices(entry, scan_key: tuple, volume, plane: str, slider_key: str) -> None:
    """Button callback: every slice's tumor probability and, for a segmenting model, its outline measured
    (no heatmaps), then jump to the most suspicious slice. Only the figures are kept, never the masks."""
    from mri_core.inference import measure, read as pipeline

    try:
        readings = pipeline.read_volume(load_scan_model(str(entry.path), entry.version), volume, "all", plane, cam="none")
    except MriError as exc:  # shown in place of the chart on the next run
        st.session_state.scanned[scan_key] = str(exc)
        return
    segments = bool(readings) and readings[0].mask is not None  # a classifier alone outlines nothing
    st.session_state.scanned[scan_key] = {
        "probabilities": [r.tumor_probability for r in readings],
        "summary": measure.volume_summary([r.mask for r in readings], volume, plane) if segments else None}
    st.session_state[slider_key] = pipeline.most_suspicious_slice(readings) + 1  # the slider counts from 1


def show_verdict(entry, reading) -> None:
    """The headline in words, the one line under it (a tumor type only under a tumor verdict, the reason
    otherwise), the outline's size; for an image that can be read, its tumor probability beside the
    probabilities the call turns on, and what a call means at this model's operating point."""
    headline, line = report.verdict_words(reading)
    st.subheader(f":{VERDICT_COLOURS[reading.verdict]}[{headline}]")
    st.markdown(line)
    if lesion := report.lesion_words(reading):  # area and largest diameter, right under the verdict
        st.markdown(f"**{lesion}**")
    if reading.verdict == CANNOT_READ:  # no tumor call, probability or heatmap for it
        return
    decision = report.decision_metrics(entry.info)
    for column, (label, value) in zip(st.columns(4),
                                      [("Tumor probability", report.percent(reading.tumor_probability)), *decision]):
        column.metric(label, value, border=True)
    st.caption(report.operating_point_words(entry.info))


def show_details(entry, reading) -> None:
    """The warnings, what the probability means, the class probabilities and the reliability diagram; for
    an image that cannot be read, only its warnings."""
    for warning in reading.warnings:
        st.warning(f"**{warning.replace('_', ' ')}**: {describe_warning(warning)}")
    if reading.verdict == CANNOT_READ:
        return
    st.markdown(report.confidence_words(reading.tumor_probability, entry.info.get("test_metrics", {}).get("ece_tumor"),
                                        reading.warnings))
    show_chart(charts.class_probability_figure(reading.probabilities, entry.info["no_tumor_classes"]))
    if peak := report.peak_words(reading):
        st.markdown(peak)
    with st.expander("How reliable are these probabilities? (reliability diagram)"):
        if bins := report.reliability_rows(entry.info):
            show_chart(charts.reliability_figure(bins))
            st.caption(report.reliability_words(bins))
        else:
            st.info("This model package stores no reliability bins; retrain it or run bench/fit_ood.py to add them.")


def choose_layers(reading, cam: str) -> tuple[set, float]:
    """Checkboxes for what to draw over the scan (the outline where the model segments; the heatmap, its box
    and its peak where a method is chosen) and the heatmap's opacity, only while the heatmap is ticked ->
    (layers, opacity). Nothing to choose for an image that cannot be read."""
    if reading.verdict == CANNOT_READ:
        return set(), 0.0
    segments = reading.mask is not None
    offered = [(layer, label) for layer, label in LAYER_BOXES
               if (layer == render.OUTLINE and segments) or (layer != render.OUTLINE and cam != "none")]
    layers = set()
    for column, (layer, label) in zip(st.columns(len(offered) or 1), offered):
        ticked = layer in (render.OUTLINE, render.HEATMAP) or not segments  # the outline shows the tumor
        if column.checkbox(label, value=ticked, key=f"layer-{layer}"):
            layers.add(layer)
    opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05) if render.HEATMAP in layers else 0.0
    return layers, opacity


def log_reading(entry, files: list, uploads_key: tuple, scan, plane: str, index: int, reading) -> str | None:
    """The reading's id in the reading log, appended on the first run that shows this upload (the scan's
    files: their ids in `uploads_key`, one per file), slice and model, never again on a rerun; the SHA-256
    of the scan's files in upload order. None, with a warning, when the log cannot be written (the reading
    stands)."""
    logged = st.session_state.setdefault(LOGGED, {})
    reading_key = (tuple(uploads_key[number] for number in scan.uploads), scan.volume.source, plane, index, entry.ref)
    if reading_key not in logged:
        slice_number = index + 1 if plane_count(scan.volume, plane) > 1 else None  # as the slider; none for an image
        try:
            sha256 = reading_log.image_sha256(files[number][1] for number in scan.uploads)
            logged[reading_key] = reading_log.append_reading(registry.mri_home(), reading, entry.ref, sha256, slice_number)
        except (OSError, ValueError) as exc:  # a read-only or full folder; a model name the log refuses
            logged[reading_key] = exc
    if isinstance(logged[reading_key], Exception):
        st.warning(f"This reading could not be written to the reading log ({logged[reading_key]}), so no finding "
                   f"can be recorded for it; check that {reading_log.log_path(registry.mri_home())} is writable.")
        return None
    return logged[reading_key]


def ask_finding(reading_id: str) -> None:
    """Tumor / No tumor / Unsure, recorded in the reading log when chosen, with a short confirmation."""
    key = f"finding-{reading_id}"
    st.radio(FINDING_LABEL, list(reading_log.FINDINGS), index=None, format_func=reading_log.FINDINGS.get,
             horizontal=True, key=key, on_change=record_finding, args=(reading_id, key))
    recorded = st.session_state.get(f"recorded-{reading_id}")
    if isinstance(recorded, str):
        st.caption(f":material/check: Recorded in the reading log: {reading_log.FINDINGS[recorded]}.")
    elif recorded is not None:
        st.warning(f"Your finding could not be recorded ({recorded}); check that "
                   f"{reading_log.log_path(registry.mri_home())} is writable.")


def record_finding(reading_id: str, key: str) -> None:
    """Radio callback: append the chosen finding (None: the choice was cleared, nothing to record)."""
    finding = st.session_state.get(key)
    if finding is None:
        return
    try:
        reading_log.record_finding(registry.mri_home(), reading_id, finding)
        st.session_state[f"recorded-{reading_id}"] = finding
    except OSError as exc:
        st.session_state[f"recorded-{reading_id}"] = exc


def offer_report(entry, slice_, reading, cam: str, volume, plane: str, summary: dict | None) -> None:
    """A note the reader may type, and the reading's PDF report to download."""
    note = st.text_input("Note for the report (optional)", max_chars=200,
                         help="Only what you type here identifies anything in the report; the file name is not included.")
    st.download_button("Download report (PDF)", report.reading_report(
        reading, slice_.pixels, entry.info, cam, note, spacing_source=volume.pixel_spacing_source, summary=summary,
        slice_count=slice_.count, plane=plane), file_name="mri-reading-report.pdf", mime="application/pdf")


def offer_segmentation(entry, files, volume, plane: str, index: int, mask, every_slice: bool) -> None:
    """For a DICOM series read by a segmenting model: what a DICOM Segmentation copies of the source, and a
    button that builds it in memory (only then) and offers it for download, never kept: of every slice when
    `every_slice` (Scan all slices ran), else of the slice shown (`index`, its `mask`)."""
    if volume.pixel_spacing_source != DICOM_PIXEL_SPACING or mask is None:
        return
    from mri_core.present import dicom_seg  # highdicom: imported only for a DICOM series

    st.caption(dicom_seg.COPIED_WORDS)
    if not st.button("Make a DICOM Segmentation", help="The tumor outline of every slice read (all of them after "
                     "Scan all slices, else the one shown), as a DICOM object a PACS viewer lays over the series."):
        return
    try:
        with st.spinner("Building the DICOM Segmentation ..."):
            masks = scanned_masks(entry, volume, plane) if every_slice else {index: mask}
            data = dicom_seg.segmentation_bytes(files, volume, masks, entry.ref, plane)
    except MriError as exc:
        st.error(str(exc))
        return
    st.download_button("Download the DICOM Segmentation", data, file_name=dicom_seg.FILE_NAME,
                       mime=dicom_seg.MIME_TYPE, on_click="ignore")


def scanned_masks(entry, volume, plane: str) -> dict:
    """Every slice's tumor mask, read again (the scan keeps no masks): {slice index: mask}."""
    from mri_core.inference import read as pipeline

    model = load_scan_model(str(entry.path), entry.version)
    return dict(enumerate(r.mask for r in pipeline.read_volume(model, volume, "all", plane, cam="none")))


def read_or_stop(entry, scan_key: tuple, volume, index: int, plane: str, cam: str):
    """The (Slice, Reading) of slice `index`, or the MriError's message and the page stopped."""
    return or_stop(read_scan, str(entry.path), entry.version, scan_key, volume, index, plane, cam)
