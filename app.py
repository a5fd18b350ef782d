"""Diagnose: upload a brain MRI slice, DICOM series or NIfTI volume, get tumor / no tumor with its probability and a heatmap.

The Streamlit entry page. A thin script: widgets, one call into `mri_core`, rendering.
No image math, no TensorFlow, no file formats here (TensorFlow loads lazily on first read).
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from mri_core.io import slices as io

from mri_core.package import registry

from mri_core.present import render

from mri_core.present import report
from mri_core.io.reading import describe_warning
from mri_core.inference.read import CAM_METHODS
from mri_core.inference.preload import preload_model
from mri_core.io.errors import MriError
from mri_core.io.volume import available_planes, middle_index, plane_count

UPLOAD_TYPES = None  # any name: DICOM files from a PACS often have no extension; the bytes decide
NOTICE = "Decision support, not a diagnosis: a radiologist must review every scan."


@st.cache_resource(show_spinner="Loading the model ...", max_entries=2)
def load_scan_model(package_path: str, version: int):
    """The model package at `package_path`; shared by every session, never mutated."""
    from mri_core.inference.model import load_cached  # imports TensorFlow: only when first needed

    return load_cached(package_path, version)


def uploaded_volumes(files: list[tuple[str, bytes]], key: tuple) -> list:
    """The uploaded (name, bytes) as volumes, read once per set of files and kept in this session only (in memory)."""
    if st.session_state.get("volumes_key") != key:
        st.session_state.volumes = io.read_volumes(files)
        st.session_state.volumes_key, st.session_state.scans = key, {}
    return st.session_state.volumes


@st.cache_data(show_spinner="Reading the scan ...", max_entries=16, ttl=3600)
def read_scan(package_path: str, version: int, scan_key: tuple, _volume, index: int, plane: str, cam: str):
    """Slice `index` of `plane` -> (Slice, Reading) with a heatmap by `cam`; `scan_key` names the volume."""
    from mri_core.inference import read as pipeline

    [slice_] = io.volume_slices(_volume, index, plane)
    return slice_, pipeline.read_slices(load_scan_model(package_path, version), [slice_], cam=cam)[0]


def scan_all_slices(package_path: str, version: int, scan_key: tuple, volume, plane: str, slider_key: str):
    """Button callback: tumor probability of every slice in batches, then jump to the most suspicious."""
    from mri_core.inference import read as pipeline

    try:
        readings = pipeline.read_volume(load_scan_model(package_path, version), volume, "all", plane, cam="none")
    except MriError as exc:
        st.session_state.scans[scan_key] = str(exc)
        return
    st.session_state.scans[scan_key] = [r.tumor_probability for r in readings]
    st.session_state[slider_key] = pipeline.most_suspicious_slice(readings)


st.set_page_config(page_title="Diagnose - Brain MRI screening", layout="wide")
st.title("Diagnose")
st.caption(NOTICE)
try:
    entry = registry.active()
    preload_model(str(entry.path), entry.version)  # TensorFlow loads while the user picks a file
except MriError as exc:
    st.error(str(exc))
    st.stop()
accuracy = entry.info.get("test_metrics", {}).get("accuracy")
st.markdown(f"Model **{entry.ref}** · {entry.info.get('architecture', '?')} · classes: "
            f"{', '.join(entry.info['class_names'])}"
            + (f" · test accuracy {accuracy:.1%}" if accuracy is not None else ""))

uploads = st.file_uploader("Brain MRI: a slice (PNG, JPEG, BMP, TIFF), DICOM files or a zip of a series, "
                           "or a NIfTI volume (.nii, .nii.gz)", type=UPLOAD_TYPES, accept_multiple_files=True)
cam = st.selectbox("Heatmap method", CAM_METHODS, format_func=report.CAM_NAMES.get,
                   help="Grad-CAM is fast and as good as the others here (bench/cams.py); Score-CAM takes seconds.")
if uploads:
    st.session_state.pop("diagnose_input", None)  # a new upload replaces a file opened from Batch
    files, files_key = [(u.name, u.getvalue()) for u in uploads], tuple(u.file_id for u in uploads)
elif "diagnose_input" in st.session_state:  # (name, bytes) opened from the Batch page
    files = [st.session_state["diagnose_input"]]
    files_key = ("batch", files[0][0], len(files[0][1]))
else:
    st.info("Upload one axial brain MRI slice to read it, or the files of a DICOM series (several files or a "
            "zip) or a NIfTI volume to pick a slice.")
    st.stop()
try:
    volumes = uploaded_volumes(files, files_key)
except MriError as exc:
    st.error(str(exc))
    st.stop()
series = 0
if len(volumes) > 1:
    series = st.selectbox("Series", range(len(volumes)), format_func=lambda i: volumes[i].label)
volume = volumes[series]
planes = available_planes(volume)
plane = st.radio("Plane", planes, horizontal=True) if len(planes) > 1 else planes[0]
scan_key = (st.session_state.volumes_key, series, plane)
index = middle_index(volume, plane)
described = " · ".join(d for d in (volume.study_description, volume.series_description) if d)
if described or volume.count > 1:  # the only DICOM descriptions ever shown: no names, IDs or dates
    st.caption(f"{described + ' · ' if described else ''}{plane_count(volume, plane)} {plane} slice(s)")
if volume.count > 1:
    slider_key = f"slice-{series}-{plane}-{abs(hash(st.session_state.volumes_key))}"  # new files: back to the middle
    index = st.slider("Slice", 0, plane_count(volume, plane) - 1, index, key=slider_key)
    st.button("Scan all slices", on_click=scan_all_slices,
              args=(str(entry.path), entry.version, scan_key, volume, plane, slider_key),
              help="Tumor probability of every slice (no heatmaps), then jump to the most suspicious one.")
    if isinstance(st.session_state.scans.get(scan_key), str):
        st.error(st.session_state.scans[scan_key])
    elif scan_key in st.session_state.scans:
        probabilities = st.session_state.scans[scan_key]
        line = go.Figure(go.Scatter(x=list(range(len(probabilities))), y=probabilities, mode="lines+markers",
                                    name="tumor probability"))
        line.add_hline(y=entry.info["threshold"], line_dash="dash", annotation_text="threshold")
        line.add_vline(x=index, line_color="#c62828")
        line.update_layout(title="Tumor probability per slice", xaxis_title="slice", height=260,
                           yaxis={"range": [0, 1.001], "tickformat": ".0%"},
                           margin={"l": 10, "r": 20, "t": 40, "b": 10})
        st.plotly_chart(line, config={"displayModeBar": False})
try:
    slice_, reading = read_scan(str(entry.path), entry.version, scan_key, volume, index, plane, cam)
except MriError as exc:
    st.error(str(exc))
    st.stop()

image_column, result_column = st.columns(2, gap="large")
with result_column:
    verdict = ":red[Tumor]" if reading.tumor else ":green[No tumor]"
    st.subheader(verdict)
    st.markdown(f"Reported class: **{reading.label}**")
    probability_column, threshold_column = st.columns(2)
    probability_column.metric("Tumor probability", f"{reading.tumor_probability:.1%}", border=True)
    threshold_column.metric("Decision threshold", f"{reading.threshold:.1%}", border=True)
    classes = list(reading.probabilities)
    chart = go.Figure(go.Bar(
        x=[reading.probabilities[c] for c in classes], y=classes, orientation="h",
        marker_color=["#2e7d32" if c in entry.info["no_tumor_classes"] else "#c62828" for c in classes],
        text=[f"{reading.probabilities[c]:.1%}" for c in classes], textposition="auto"))
    chart.update_layout(title="Class probabilities", xaxis={"range": [0, 1.001], "tickformat": ".0%"},
                        yaxis={"autorange": "reversed"},
                        height=90 + 36 * len(classes), margin={"l": 10, "r": 20, "t": 40, "b": 10})
    st.plotly_chart(chart, config={"displayModeBar": False})
    if reading.cam_peak is not None:
        x0, y0, x1, y1 = reading.cam_box
        st.markdown(f"Heatmap peak at **x {reading.cam_peak[0]}, y {reading.cam_peak[1]}**; "
                    f"box x {x0}–{x1}, y {y0}–{y1} (original pixels, x right, y down).")
    for warning in reading.warnings:
        st.warning(f"**{warning.replace('_', ' ')}**: {describe_warning(warning)}")
    st.markdown(report.confidence_words(reading.tumor_probability, reading.threshold,
                                        entry.info.get("test_metrics", {}).get("ece_tumor")))
    bins = report.reliability_rows(entry.info)
    with st.expander("How reliable are these probabilities? (reliability diagram)"):
        if bins:
            st.plotly_chart(report.reliability_figure(bins), config={"displayModeBar": False})
        else:
            st.info("This model package stores no reliability bins; retrain it or run bench/fit_ood.py to add them.")
    note = st.text_input("Note for the report (optional)", max_chars=200,
                         help="Only what you type here identifies anything in the report; the file name is not included.")
    st.download_button("Download report (PDF)", report.reading_report(reading, slice_.pixels, entry.info, cam, note),
                       file_name="mri-reading-report.pdf", mime="application/pdf")
with image_column:
    opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05)
    st.image(render.overlay(slice_.pixels, reading.heatmap, opacity, reading.cam_peak, reading.cam_box),
             caption=f"{reading.source}{f' · {plane} slice {index} of {slice_.count}' if slice_.count > 1 else ''} · "
                     f"heatmap ({report.CAM_NAMES[cam]}): evidence for the most likely tumor class", width="stretch")
st.caption(f"{NOTICE} The heatmap shows where the model looked, not the tumor's outline.")
