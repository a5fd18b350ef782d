"""Batch: read many scans at once (slices, DICOM files and series, NIfTI volumes, zips of them); a
sortable table, downloads, open one on Diagnose.

A thin script: widgets, one call into `mri_core.present.batch` (which streams through
`mri_core.inference.stream` and appends each reading to the reading log), rendering. Uploads stay
in memory.
"""

from __future__ import annotations

import streamlit as st

from mri_core.io.reading import describe_warning
from mri_core.package import registry
from mri_core.present import batch
from pages.common import NOTICE, load_scan_model, open_on_diagnose, or_stop, reading_page_header

UPLOAD_TYPES = None  # any name, as on Diagnose: DICOM files from a PACS often have no extension; the bytes decide
ROW_HEIGHT = batch.THUMBNAIL_SIDE + 8  # px: a thumbnail at its full size
COLUMNS = {
    "thumbnail": st.column_config.ImageColumn("Heatmap", width=ROW_HEIGHT),
    "file": st.column_config.TextColumn("File or series"),
    "slice": st.column_config.TextColumn("Slice"),
    "verdict_words": st.column_config.TextColumn("Verdict"),
    "warning_words": st.column_config.TextColumn("Warnings", width="medium"),
    "label": st.column_config.TextColumn("Label"),
    "probability_words": st.column_config.TextColumn("Tumor probability"),
    "area_mm2": st.column_config.NumberColumn("Tumor area (mm²)", format="%.1f"),
    "area_px": st.column_config.NumberColumn("Tumor area (px)", format="%d"),
    "diameter_mm": st.column_config.NumberColumn("Diameter (mm)", format="%.1f"),
    "diameter_px": st.column_config.NumberColumn("Diameter (px)", format="%.1f"),
    "error": st.column_config.TextColumn("Error"),
}


def read_all(entry, uploads: list[tuple[str, bytes]], every_slice: bool) -> batch.BatchReport:
    """Every upload read with the active model, a progress bar meanwhile; each reading logged."""
    total = batch.count_uploads(uploads)
    progress = st.progress(0.0, text=f"Reading {batch.plural(total, 'file')} ...")
    scan_model = load_scan_model(str(entry.path), entry.version)

    def show(answers: int, files_read: int) -> None:
        progress.progress(min(files_read / max(total, 1), 1.0),
                          text=f"{batch.plural(answers, 'slice')} read, {files_read:,} of {batch.plural(total, 'file')}")

    report = batch.read_batch(scan_model, batch.batch_inputs(uploads), show, every_slice=every_slice,
                              log_home=registry.mri_home())
    progress.empty()
    return report


entry = reading_page_header("Batch")

files = st.file_uploader("Brain MRI: slices (PNG, JPEG, BMP, TIFF), DICOM files or series, NIfTI volumes "
                         "(.nii, .nii.gz), or zips of them", type=UPLOAD_TYPES, accept_multiple_files=True)
every_slice = st.checkbox("Read every slice of volumes and series", key="batch_every_slice",
                          help="Off: the middle slice of each DICOM series and NIfTI volume, where Diagnose starts. "
                               "On: every slice, one row each (slower).")
if not files:
    st.info("Upload several slices, DICOM series or NIfTI volumes (or zips of them) to read them all with the "
            "active model. DICOM files uploaded together are read as the series they form.")
    st.stop()
uploads = [(f.name, f.getvalue()) for f in files]
batch_key = (entry.ref, every_slice, tuple((f.name, f.size, f.file_id) for f in files))
if st.session_state.get("batch_key") != batch_key:
    st.session_state.update(batch_key=batch_key, batch_report=or_stop(read_all, entry, uploads, every_slice))
report = st.session_state["batch_report"]
if report.log_problem:
    st.warning(report.log_problem)

st.markdown(f"{batch.summary_words(report.rows, report.failed)} "
            + ("Every slice of each volume and series." if every_slice else
               "The middle slice of each volume and series (tick the box above for every slice)."))
table = st.dataframe([batch.display_row(row, COLUMNS) for row in report.rows], column_config=COLUMNS,
                     hide_index=True, placeholder="", row_height=ROW_HEIGHT, height=min(40 + ROW_HEIGHT * len(report.rows), 900),
                     on_select="rerun", selection_mode="single-row", key="batch_table")
selected = table.selection.rows[0] if table.selection.rows else 0
labels = [row["file"] + (f", slice {row['slice']}" if row["slice"] else "") for row in report.rows]
open_column, csv_column, zip_column = st.columns([3, 1, 1], vertical_alignment="bottom")
chosen = open_column.selectbox("Open on the Diagnose page (or click a row)", range(len(labels)), index=selected,
                               format_func=labels.__getitem__)
for warning in report.rows[chosen]["warnings"].split(", ") if report.rows[chosen]["warnings"] else []:
    st.caption(f"⚠ {labels[chosen]}: {describe_warning(warning)}")
if open_column.button("Open on Diagnose", type="primary"):
    open_on_diagnose(*or_stop(batch.file_for_diagnose, uploads, report.rows[chosen]["input"]))
csv_column.download_button("Table (CSV)", report.csv, "batch_readings.csv", "text/csv")
zip_column.download_button("Heatmaps (zip)", report.heatmaps_zip, "batch_heatmaps.zip", "application/zip")
st.caption(f"{NOTICE} Slices count from 1. Tumor area and diameter measure the model's outline (mm only where the "
           "file gives the pixel spacing). Heatmaps in the zip: one grey PNG per slice at its original size, 255 = the "
           "map's peak, named after its file or series (`_s<slice>` for a volume's slice); a model that outlines "
           "tumors adds each slice's mask under masks/, named like its heatmap (255 = tumor). Each reading is added to "
           "the reading log (model, a SHA-256 of the file's bytes, slice, verdict, probability, warnings; no image, "
           "name or tag).")
