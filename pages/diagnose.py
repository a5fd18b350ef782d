"""Diagnose: upload a brain MRI slice, DICOM series or NIfTI volume, get the verdict (tumor / no tumor /
uncertain / cannot read) with its probability, the tumor's outline where the model segments, and a heatmap.

A thin script: widgets, calls into `mri_core`, rendering; the figures, overlay and words come
from `mri_core.present`. TensorFlow loads in the background and on the first reading.
"""

from __future__ import annotations

import streamlit as st

from mri_core.io import slices as io
from mri_core.io.errors import MriError
from mri_core.io.reading import CANNOT_READ, UNCERTAIN, VERDICT_HEADLINE, VERDICT_TEXT, describe_warning
from mri_core.io.volume import DICOM_PIXEL_SPACING, available_planes, middle_index, plane_count
from mri_core.present import charts, render, report
from pages.common import (NOTICE, files_to_read, load_scan_model, or_stop, reading_page_header, show_chart,
                          volumes_to_read)

UPLOAD_TYPES = None  # any name: DICOM files from a PACS often have no extension; the bytes decide
VERDICT_COLOURS = {"tumor": "red", "no_tumor": "green", "uncertain": "orange", "cannot_read": "gray"}


@st.cache_data(show_spinner="Reading the scan ...", max_entries=16, ttl=3600)
def read_scan(package_path: str, version: int, scan_key: tuple, _volume, index: int, plane: str, cam: str):
    """Slice `index` of `plane` -> (Slice, Reading) with a heatmap by `cam`; `scan_key` names the volume."""
    from mri_core.inference import read as pipeline

    [slice_] = io.volume_slices(_volume, index, plane)
    return slice_, pipeline.read_slices(load_scan_model(package_path, version), [slice_], cam=cam)[0]


def scan_all_slices(entry, scan_key: tuple, volume, plane: str, slider_key: str) -> None:
    """Button callback: every slice's tumor probability and, for a segmenting model, its outline measured
    (no heatmaps), then jump to the most suspicious slice. Only the figures are kept, never the masks."""
    from mri_core.inference import measure, read as pipeline

    try:
        readings = pipeline.read_volume(load_scan_model(str(entry.path), entry.version), volume, "all", plane, cam="none")
    except MriError as exc:  # shown in place of the chart on the next run
        st.session_state.scans[scan_key] = str(exc)
        return
    segments = bool(readings) and readings[0].mask is not None  # a classifier alone outlines nothing
    st.session_state.scans[scan_key] = {
        "probabilities": [r.tumor_probability for r in readings],
        "summary": measure.volume_summary([r.mask for r in readings], volume, plane) if segments else None}
    st.session_state[slider_key] = pipeline.most_suspicious_slice(readings) + 1  # the slider counts from 1


def offer_segmentation(entry, files, volume, plane: str, shown_masks: dict, every_slice: bool) -> None:
    """What a DICOM Segmentation copies of the source, and a button that builds it in memory (only then)
    and offers it for download, never kept: of every slice when `every_slice` (Scan all slices ran),
    else of `shown_masks` ({slice index: mask} of the slice shown)."""
    from mri_core.present import dicom_seg  # highdicom: imported only for a DICOM series

    st.caption(dicom_seg.COPIED_WORDS)
    if not st.button("Make a DICOM Segmentation", help="The tumor outline of every slice read (all of them after "
                     "Scan all slices, else the one shown), as a DICOM object a PACS viewer lays over the series."):
        return
    try:
        with st.spinner("Building the DICOM Segmentation ..."):
            masks = scanned_masks(entry, volume, plane) if every_slice else shown_masks
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


entry = reading_page_header("Diagnose")
uploads = st.file_uploader("Brain MRI: a slice (PNG, JPEG, BMP, TIFF), DICOM files or a zip of a series, "
                           "or a NIfTI volume (.nii, .nii.gz)", type=UPLOAD_TYPES, accept_multiple_files=True)
cam = st.selectbox("Heatmap method", list(report.CAM_NAMES), format_func=report.CAM_NAMES.get,
                   help="Grad-CAM is fast and as good as the others here (bench/cams.py); Score-CAM takes seconds.")
chosen = volumes_to_read(uploads)
if chosen is None:
    st.info("Upload one axial brain MRI slice to read it, or the files of a DICOM series (several files or a "
            "zip) or a NIfTI volume to pick a slice.")
    st.stop()
volumes, volumes_key = chosen
series = st.selectbox("Series", range(len(volumes)), format_func=lambda i: volumes[i].label) if len(volumes) > 1 else 0
volume = volumes[series]
planes = available_planes(volume)
plane = st.radio("Plane", planes, horizontal=True) if len(planes) > 1 else planes[0]
scan_key, index = (volumes_key, series, plane), middle_index(volume, plane)
if report.volume_words(volume, plane):
    st.caption(report.volume_words(volume, plane))
if volume.count > 1:
    slider_key = f"slice-{series}-{plane}-{abs(hash(volumes_key))}"  # new files: back to the middle
    # Its value lives in session state only (Scan all slices sets it too): a default as well
    # makes Streamlit log a warning with a stack on every run after the scan. Counted from 1, as
    # a reader counts; the reading path counts from 0.
    st.session_state.setdefault(slider_key, index + 1)
    index = st.slider("Slice", 1, plane_count(volume, plane), key=slider_key) - 1
    st.button("Scan all slices", on_click=scan_all_slices, args=(entry, scan_key, volume, plane, slider_key),
              help="Tumor probability of every slice and, where the model outlines tumors, the tumor's area on "
                   "each and its volume (no heatmaps); then jump to the most suspicious slice.")
    scanned = st.session_state.scans.get(scan_key)
    if isinstance(scanned, str):
        st.error(scanned)
    elif scanned is not None:
        summary = scanned["summary"]
        if summary is not None:
            st.markdown(f"**{report.summary_words(summary)}**")
        outlined = summary is not None and summary["slices_with_tumor"]
        probability_column, area_column = st.columns(2) if outlined else (st, None)
        show_chart(charts.slice_probability_figure(scanned["probabilities"], entry.info["threshold"], index),
                   where=probability_column)
        if outlined:
            show_chart(charts.slice_area_figure(summary, index), where=area_column)
slice_, reading = or_stop(read_scan, str(entry.path), entry.version, scan_key, volume, index, plane, cam)

image_column, result_column = st.columns(2, gap="large")
readable = reading.verdict != CANNOT_READ  # no tumor call, type or heatmap for an image it cannot read
with result_column:
    st.subheader(f":{VERDICT_COLOURS[reading.verdict]}[{VERDICT_HEADLINE[reading.verdict]}]")
    if lesion := report.lesion_words(reading):  # area and largest diameter, right under the verdict
        st.markdown(f"**{lesion}**")
    if reading.verdict in (UNCERTAIN, CANNOT_READ):
        st.markdown(VERDICT_TEXT[reading.verdict])
    if readable:
        st.markdown(f"Reported class: **{reading.label}**")
        probability_column, threshold_column = st.columns(2)
        probability_column.metric("Tumor probability", f"{reading.tumor_probability:.1%}", border=True)
        threshold_column.metric("Decision threshold", f"{reading.threshold:.1%}", border=True)
        show_chart(charts.class_probability_figure(reading.probabilities, entry.info["no_tumor_classes"]))
        if peak := report.peak_words(reading):
            st.markdown(peak)
    for warning in reading.warnings:
        st.warning(f"**{warning.replace('_', ' ')}**: {describe_warning(warning)}")
    if readable:
        st.markdown(report.confidence_words(reading.tumor_probability, reading.threshold,
                                            entry.info.get("test_metrics", {}).get("ece_tumor")))
        with st.expander("How reliable are these probabilities? (reliability diagram)"):
            if bins := report.reliability_rows(entry.info):
                show_chart(charts.reliability_figure(bins))
            else:
                st.info("This model package stores no reliability bins; retrain it or run bench/fit_ood.py to add them.")
    note = st.text_input("Note for the report (optional)", max_chars=200,
                         help="Only what you type here identifies anything in the report; the file name is not included.")
    st.download_button("Download report (PDF)", report.reading_report(reading, slice_.pixels, entry.info, cam, note),
                       file_name="mri-reading-report.pdf", mime="application/pdf")
    if volume.pixel_spacing_source == DICOM_PIXEL_SPACING and reading.mask is not None:  # a DICOM series, outlined
        offer_segmentation(entry, files_to_read(uploads)[0], volume, plane, {index: reading.mask},
                           every_slice=isinstance(st.session_state.scans.get(scan_key), dict))
with image_column:
    outlines = readable and reading.mask is not None  # a segmenting model: the outline, the heatmap or both
    show = st.radio("Show", render.SHOW_CHOICES, index=2, horizontal=True) if outlines else "both"
    opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05) if readable and show in render.SHOWS_HEATMAP else 0.0
    st.image(render.reading_overlay(slice_.pixels, reading, show, opacity),
             caption=report.image_caption(slice_, cam, plane, reading, opacity, show), width="stretch")
st.caption(f"{NOTICE} The heatmap shows where the model looked; the white line, where there is one, is the "
           "tumor's outline as the model segments it.")
