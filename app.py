"""Diagnose: upload one brain MRI slice, get tumor / no tumor with its probability and a heatmap.

The Streamlit entry page. A thin script: widgets, one call into `mri_core`, rendering.
No image math, no TensorFlow, no file formats here (TensorFlow loads lazily on first read).
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from mri_core import io, registry, render
from mri_core.preload import preload_model
from mri_core.errors import MriError

UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "tif", "tiff"]
NOTICE = "Decision support, not a diagnosis: a radiologist must review every scan."


@st.cache_resource(show_spinner="Loading the model ...", max_entries=2)
def load_scan_model(package_path: str, version: int):
    """The model package at `package_path`; shared by every session, never mutated."""
    from mri_core.model import load_cached  # imports TensorFlow: only when first needed

    return load_cached(package_path, version)


@st.cache_data(show_spinner="Reading the scan ...", max_entries=8, ttl=3600)
def read_scan(package_path: str, version: int, data: bytes, name: str):
    """Uploaded bytes -> (Slice, Reading) with a Grad-CAM heatmap; MriError for a bad file."""
    from mri_core import pipeline

    slice_ = io.decode_image(data, name)
    return slice_, pipeline.read_slices(load_scan_model(package_path, version), [slice_], cam="gradcam")[0]


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

upload = st.file_uploader("Brain MRI slice (PNG, JPEG, BMP or TIFF)", type=UPLOAD_TYPES)
if upload is not None:
    st.session_state.pop("diagnose_input", None)  # a new upload replaces a file opened from Batch
    name, data = upload.name, upload.getvalue()
elif "diagnose_input" in st.session_state:  # (name, bytes) opened from the Batch page
    name, data = st.session_state["diagnose_input"]
else:
    st.info("Upload one axial brain MRI slice to read it.")
    st.stop()
try:
    slice_, reading = read_scan(str(entry.path), entry.version, data, name)
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
        st.warning(f"Note: {warning.replace('_', ' ')}.")
with image_column:
    opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05)
    st.image(render.overlay(slice_.pixels, reading.heatmap, opacity, reading.cam_peak, reading.cam_box),
             caption=f"{reading.source} · heatmap: evidence for the most likely tumor class", width="stretch")
st.caption(f"{NOTICE} The heatmap shows where the model looked, not the tumor's outline.")
