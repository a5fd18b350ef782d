"""Batch: read many slices (or a zip of them) at once; a sortable table, downloads, open one on Diagnose.

A thin script: widgets, one call into `mri_core.present.batch` (which streams through
`mri_core.inference.stream`), rendering. Uploads stay in memory.
"""

from __future__ import annotations

import streamlit as st

from mri_core.present import batch
from pages.common import NOTICE, load_scan_model, open_on_diagnose, or_stop, reading_page_header

UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "zip"]
COLUMNS = {
    "thumbnail": st.column_config.ImageColumn("Heatmap", width="small"),
    "file": st.column_config.TextColumn("File"),
    "verdict_words": st.column_config.TextColumn("Verdict"),
    "label": st.column_config.TextColumn("Label"),
    "tumor_probability": st.column_config.NumberColumn("Tumor probability", format="%.3f"),
    "area_mm2": st.column_config.NumberColumn("Tumor area (mm²)", format="%.1f"),
    "area_px": st.column_config.NumberColumn("Tumor area (px)", format="%d"),
    "diameter_mm": st.column_config.NumberColumn("Diameter (mm)", format="%.1f"),
    "diameter_px": st.column_config.NumberColumn("Diameter (px)", format="%.1f"),
    "warnings": st.column_config.TextColumn("Warnings"),
    "error": st.column_config.TextColumn("Error"),
}


def read_all(entry, uploads: list[tuple[str, bytes]]) -> batch.BatchReport:
    """Every upload read with the active model, a progress bar meanwhile."""
    total = batch.count_uploads(uploads)
    progress = st.progress(0.0, text=f"Reading {total} files ...")
    scan_model = load_scan_model(str(entry.path), entry.version)
    report = batch.read_batch(scan_model, batch.expand_uploads(uploads), total,
                              lambda done, n: progress.progress(done / max(n, 1), text=f"Read {done} of {n}"))
    progress.empty()
    return report


entry = reading_page_header("Batch")

files = st.file_uploader("Slices (PNG, JPEG, BMP, TIFF) or a zip of them", type=UPLOAD_TYPES,
                         accept_multiple_files=True)
if not files:
    st.info("Upload several slices, or one zip of them, to read them all with the active model.")
    st.stop()
uploads = [(f.name, f.getvalue()) for f in files]
batch_key = (entry.ref, tuple((f.name, f.size, f.file_id) for f in files))
if st.session_state.get("batch_key") != batch_key:
    st.session_state.update(batch_key=batch_key, batch_report=or_stop(read_all, entry, uploads))
report = st.session_state["batch_report"]

counts = batch.verdict_counts(report.rows)
st.markdown(f"**{len(report.rows)}** answers: **{counts.get('tumor', 0)}** tumor, **{counts.get('uncertain', 0)}** "
            f"uncertain, **{counts.get('cannot_read', 0)}** refused as not a brain MRI slice"
            + (f", **{report.failed}** files could not be read" if report.failed else ""))
table = st.dataframe([batch.display_row(row, COLUMNS) for row in report.rows], column_config=COLUMNS,
                     hide_index=True, row_height=72, height=min(40 + 72 * len(report.rows), 760),
                     on_select="rerun", selection_mode="single-row", key="batch_table")
selected = table.selection.rows[0] if table.selection.rows else 0
names = [row["file"] for row in report.rows]
open_column, csv_column, zip_column = st.columns([3, 1, 1], vertical_alignment="bottom")
chosen = open_column.selectbox("Open on the Diagnose page (or click a row)", names, index=selected)
if open_column.button("Open on Diagnose", type="primary"):
    open_on_diagnose(chosen.rsplit("/", 1)[-1], or_stop(batch.find_upload, uploads, chosen))
csv_column.download_button("Table (CSV)", report.csv, "batch_readings.csv", "text/csv")
zip_column.download_button("Heatmaps (zip)", report.heatmaps_zip, "batch_heatmaps.zip", "application/zip")
st.caption(f"{NOTICE} Tumor area and diameter measure the model's outline (mm only where the file gives the pixel "
           "spacing). Heatmaps in the zip: one grey PNG per slice at its original size, 255 = the map's peak; a model "
           "that outlines tumors adds each slice's mask under masks/, named like its heatmap (255 = tumor).")
