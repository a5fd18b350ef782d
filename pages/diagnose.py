"""Diagnose: upload a brain MRI slice, DICOM series or NIfTI volume, get the verdict (tumor / no tumor /
uncertain / cannot read) first, then its probability, the tumor's outline where the model segments, and a
heatmap; record your own finding in the reading log.

A thin script: widgets, calls into `mri_core`, rendering; the widget groups are in pages/diagnose_parts.py,
the figures, overlay and words come from `mri_core.present`. The newest upload is the one read; several
uploads are listed to choose from. TensorFlow loads in the background and on the first reading.
"""

from __future__ import annotations

import streamlit as st

from mri_core.io.volume import available_planes, middle_index
from mri_core.present import render, report
from pages import diagnose_parts as parts
from pages.common import NOTICE, reading_page_header, scans_to_read

UPLOAD_TYPES = None  # any name: DICOM files from a PACS often have no extension; the bytes decide

entry = reading_page_header("Diagnose")
uploads = st.file_uploader("Brain MRI: a slice (PNG, JPEG, BMP, TIFF), DICOM files or a zip of a series, "
                           "or a NIfTI volume (.nii, .nii.gz)", type=UPLOAD_TYPES, accept_multiple_files=True)
cam = st.selectbox("Heatmap method", list(report.CAM_NAMES), format_func=report.CAM_NAMES.get,
                   help="Grad-CAM is fast and as good as the others here (bench/cams.py); Score-CAM takes seconds.")
chosen = scans_to_read(uploads)
if chosen is None:
    st.info("Upload one axial brain MRI slice to read it, or the files of a DICOM series (several files or a "
            "zip) or a NIfTI volume to pick a slice.")
    st.stop()
scans, files, uploads_key = chosen
number = parts.choose_scan(scans, uploads_key)
scan = scans[number]
volume = scan.volume
planes = available_planes(volume)
plane = st.radio("Plane", planes, horizontal=True) if len(planes) > 1 else planes[0]
if words := report.volume_words(volume, plane):
    st.caption(words)
scan_key = (uploads_key, number, plane)
index = parts.choose_slice(entry, scan_key, volume, plane, middle_index(volume, plane))
slice_, reading = parts.read_or_stop(entry, scan_key, volume, index, plane, cam)
reading_id = parts.log_reading(entry, files, uploads_key, scan, plane, index, reading)  # once per upload and slice

parts.show_verdict(entry, reading)
image_column, result_column = st.columns(2, gap="large")
with image_column:
    layers, opacity = parts.choose_layers(reading, cam)
    st.image(render.reading_overlay(slice_.pixels, reading, layers, opacity),
             caption=report.image_caption(slice_, cam, plane, reading, opacity, layers), width="stretch")
with result_column:
    if reading_id is not None:
        parts.ask_finding(reading_id)
    parts.show_details(entry, reading)
    scanned = st.session_state.scanned.get(scan_key)
    parts.offer_report(entry, slice_, reading, cam, volume, plane, scanned.get("summary") if isinstance(scanned, dict) else None)
    parts.offer_segmentation(entry, files, volume, plane, index, reading.mask, every_slice=isinstance(scanned, dict))
st.caption(NOTICE)
