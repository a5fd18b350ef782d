"""What the Batch page reads, shows and offers for download: its uploads as the inputs of a stream
(`batch_inputs`: whatever Diagnose takes; DICOM files uploaded together are read as the series they
form), an overlay thumbnail per answer, the results table (a row names its file or series and its
slice, counted from 1, the verdict and warnings in words) and its CSV, a zip of the heatmaps, all
built in memory as answers stream in from `inference.stream`, and one reading-log row per answer
(`reading_log`: a hash of the files, never their names or tags). Importing it loads no TensorFlow
(the stream is imported when a batch is read), so the Batch page starts before the model does.
Never imports streamlit.
"""

from __future__ import annotations

import base64
import csv
import io as _io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
from PIL import Image

from mri_core.inference.segmentation import mask_uint8
from mri_core.io.errors import MriError, UnreadableImage
from mri_core.io.reading import CANNOT_READ, NO_TUMOR, TUMOR, UNCERTAIN, VERDICT_HEADLINE, describe_warning
from mri_core.present import render
from mri_core.present.reading_log import append_reading, image_sha256
from mri_core.present.report import percent, plural

if TYPE_CHECKING:  # the stream imports TensorFlow: only when a batch is read
    from mri_core.inference.stream import BatchItem, Upload

THUMBNAIL_SIDE = 160  # px, the longest side of a table thumbnail
THUMBNAIL_OPACITY = 0.5
# `slice_number` counts from 1, as the page and the reading log do (the CLI's `slice` counts from 0);
# `warnings` holds the codes (as the CLI prints them), `warning_words` what they mean.
CSV_COLUMNS = ("file", "slice_number", "slice_count", "verdict", "label", "tumor", "tumor_probability", "threshold",
               "area_px", "area_mm2", "diameter_px", "diameter_mm", "warnings", "warning_words", "model", "error")
# The tumor outline's measurements (the reading's lesion); empty where there is no lesion
LESION_COLUMNS = ("area_px", "area_mm2", "diameter_px", "diameter_mm")
MASKS_FOLDER = "masks"


def overlay_thumbnail(small_pixels: np.ndarray, reading) -> np.ndarray:
    """A slice already shrunk to (h, w) + its Reading -> (h, w, 3) uint8 overlay with the box."""
    if reading.heatmap is None:
        return render.grey_rgb(small_pixels)
    height, width = small_pixels.shape
    heatmap = cv2.resize(reading.heatmap, (width, height), interpolation=cv2.INTER_AREA)
    scale_x, scale_y = width / reading.heatmap.shape[1], height / reading.heatmap.shape[0]
    x0, y0, x1, y1 = reading.cam_box or (0, 0, 0, 0)
    box = (int(x0 * scale_x), int(y0 * scale_y), int(x1 * scale_x), int(y1 * scale_y)) if reading.cam_box else None
    return render.overlay(small_pixels, heatmap, THUMBNAIL_OPACITY, None, box)


# --- what the Batch page offers ---------------------------------------------------------

def row_name(item: "BatchItem") -> str:
    """Which file or series a row reads: the input's name (a zip's member as `<zip>/<path>`), or, for DICOM
    files read together, the series they form as `dicom` names it (its folder or first file, and its file count)."""
    if item.failed or item.place is None or item.place.series == Path(item.file).name:
        return item.file
    return item.place.series


def slice_words(slice_index: int | None, slice_count: int) -> str | None:
    """A volume's slice as the page counts it ("4 of 8", from 1); None for a plain image."""
    return None if slice_index is None else f"{slice_index + 1} of {slice_count}"


def warning_words(warnings: Iterable[str]) -> str:
    """A reading's warnings in plain words (`reading.describe_warning`), for the table."""
    return " ".join(describe_warning(w) for w in warnings)


def summary_row(item: "BatchItem") -> dict:
    """One row of the results table and CSV (CSV_COLUMNS, and what the page shows: `slice`, `verdict_words`,
    `probability_words` (never 0 or 100 %: `report.percent`), `warning_words`); `input` names the input it
    came from. An error row has only file and error."""
    if item.failed:
        return {"input": item.file, "file": item.file, "slice": None, "slice_number": None, "slice_count": None,
                "verdict": None, "verdict_words": None, "label": None, "tumor": None, "tumor_probability": None,
                "probability_words": None, "threshold": None, **dict.fromkeys(LESION_COLUMNS), "warnings": "",
                "warning_words": "", "model": None, "error": str(item.outcome)}
    reading = item.outcome
    number = None if reading.slice_index is None else reading.slice_index + 1
    return {"input": item.file, "file": row_name(item), "slice": slice_words(reading.slice_index, item.slice_count),
            "slice_number": number, "slice_count": None if number is None else item.slice_count,
            "verdict": reading.verdict, "verdict_words": VERDICT_HEADLINE[reading.verdict], "label": reading.label,
            "tumor": reading.tumor, "tumor_probability": round(reading.tumor_probability, 6),
            "probability_words": percent(reading.tumor_probability),
            "threshold": reading.threshold, **lesion_cells(reading.lesion), "warnings": ", ".join(reading.warnings),
            "warning_words": warning_words(reading.warnings), "model": reading.model, "error": ""}


def lesion_cells(lesion: dict | None) -> dict:
    """A reading's lesion -> its LESION_COLUMNS (mm figures None without pixel spacing; all None without a lesion)."""
    if lesion is None:
        return dict.fromkeys(LESION_COLUMNS)

    def measured(key):
        return None if lesion.get(key) is None else round(float(lesion[key]), 6)

    return {"area_px": int(lesion["area_px"]), "area_mm2": measured("area_mm2"),
            "diameter_px": measured("diameter_px"), "diameter_mm": measured("diameter_mm")}


def display_row(row: dict, columns: Iterable[str]) -> dict:
    """A summary row as the Batch table shows it: the given columns, and no tumor type where the
    image cannot be read (the CSV keeps every field, as the CLI does)."""
    shown = {key: row.get(key) for key in columns}
    if row.get("verdict") == CANNOT_READ and "label" in shown:
        shown["label"] = None
    return shown


def verdict_counts(rows: Iterable[dict]) -> dict[str, int]:
    """How many rows end in each verdict (rows of unreadable files have none)."""
    counts: dict[str, int] = {}
    for row in rows:
        if row.get("verdict"):
            counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    return counts


# How the line above the table counts each verdict
VERDICT_COUNT_WORDS = {TUMOR: "tumor", NO_TUMOR: "no tumor", UNCERTAIN: "uncertain (refer to a reader)",
                       CANNOT_READ: "refused as not a brain MRI slice"}


def summary_words(rows: Sequence[dict], failed: int) -> str:
    """The line above the table (Markdown): slices read, how many of each verdict, inputs that failed."""
    counts = verdict_counts(rows)
    line = f"**{plural(len(rows) - failed, 'slice')} read**: " + ", ".join(
        f"**{counts.get(verdict, 0):,}** {words}" for verdict, words in VERDICT_COUNT_WORDS.items())
    if failed:
        line += f"; **{plural(failed, 'file or series', 'files or series')}** could not be read"
    return line + "."


def rows_to_csv(rows: Iterable[dict]) -> bytes:
    """Table rows -> UTF-8 CSV bytes with a header (CSV_COLUMNS; empty cells for None)."""
    text = _io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row[key] for key in CSV_COLUMNS})
    return text.getvalue().encode("utf-8")


def png_data_url(rgb: np.ndarray) -> str:
    """(h, w, 3) uint8 -> a `data:image/png;base64,...` URL (for table image columns)."""
    return "data:image/png;base64," + base64.b64encode(render.to_png(rgb)).decode("ascii")


def _stem(name: str) -> str:
    """A row's file or series -> the stem of its files in the zip: `IM0003 (5 files)` -> `IM0003`
    (a series named by `dicom`), `exam.zip/brain.nii.gz` -> `brain`, `scan.png` -> `scan`."""
    base = re.sub(r" \(\d+ files\)$", "", Path(name).name)
    return base[:-len(".nii.gz")] if base.lower().endswith(".nii.gz") else Path(base).stem


class HeatmapArchive:
    """A zip built in memory as answers arrive: one 8-bit PNG heatmap per slice, and its tumor mask.

    `<stem>.png` (the row's file or series; `_s<slice>` for a volume's slice, counted from 1 as the page
    counts; numbered when two share a name) is
    the heatmap at the original image's size, grey level = heatmap value x 255; `masks/<stem>.png`,
    the same name, is the mask of a segmenting model (`segmentation.mask_uint8`: 255 = tumor, all 0
    unless the verdict is tumor or uncertain). Failed inputs add nothing, `--cam none` answers no heatmap.
    """

    def __init__(self):
        self._buffer = _io.BytesIO()
        self._zip = zipfile.ZipFile(self._buffer, "w", zipfile.ZIP_DEFLATED)
        self._used: set[str] = set()

    def add(self, item: "BatchItem") -> str | None:
        """Add one answer's heatmap and mask; returns their file name (`<stem>.png`; None when it has neither)."""
        if item.failed or (item.outcome.heatmap is None and item.outcome.mask is None):
            return None
        stem = _stem(row_name(item))
        if item.outcome.slice_index is not None:
            stem = f"{stem}_s{item.outcome.slice_index + 1}"
        name, n = stem, 0
        while name in self._used:
            n += 1
            name = f"{stem}_{n}"
        self._used.add(name)
        if item.outcome.heatmap is not None:
            self._write_png(f"{name}.png", np.round(np.clip(item.outcome.heatmap, 0.0, 1.0) * 255.0).astype(np.uint8))
        if item.outcome.mask is not None:
            self._write_png(f"{MASKS_FOLDER}/{name}.png", mask_uint8(item.outcome.mask))
        return f"{name}.png"

    def _write_png(self, name: str, levels: np.ndarray) -> None:
        buffer = _io.BytesIO()
        Image.fromarray(levels).save(buffer, format="PNG")
        self._zip.writestr(name, buffer.getvalue(), compress_type=zipfile.ZIP_STORED)

    def to_bytes(self) -> bytes:
        """Finish the zip and return its bytes; add nothing after this."""
        if self._zip.fp is not None:
            self._zip.close()
        return self._buffer.getvalue()


# --- uploads -> inputs ------------------------------------------------------------------

def _upload(name: str, files: Sequence[tuple[str, bytes]] = (), error: MriError | None = None) -> "Upload":
    from mri_core.inference.stream import Upload  # imports TensorFlow: only when a batch is read

    return Upload(name, tuple(files), error)


def _together(name: str, files: list[tuple[str, bytes]]) -> "Upload":
    """DICOM files read as one input (their series join, as on Diagnose); one file is read as itself."""
    if len(files) == 1:
        return _upload(files[0][0], files)
    return _upload(f"{name}: {plural(len(files), 'DICOM file')}", files)


def batch_inputs(uploads: Sequence[tuple[str, bytes]]) -> Iterator["Upload"]:
    """Uploads (name, bytes) -> the inputs of a batch, in upload order, lazily (`stream.Upload`).

    The bytes decide, as on Diagnose: a plain image or a NIfTI volume is one input; the DICOM files
    uploaded together are one input, read together so that the files of a series form one series
    (where the first of them was uploaded); a zip is opened in memory one member at a time
    (`zips.read_zip_files`): each image or volume in it is an input named `<zip>/<path>`, and its
    DICOM files are one more input after them. Members of no scan or image format (notes, a
    DICOMDIR's neighbours) are skipped inside zips, as Diagnose skips them. A zip that cannot be
    opened is an input that answers its error.
    """
    from mri_core.io.slices import sniff_format

    kinds = [sniff_format(data) for _, data in uploads]
    loose_dicom = [file for file, kind in zip(uploads, kinds) if kind == "DICOM"]
    for upload, kind in zip(uploads, kinds):
        if kind == "ZIP":
            yield from _zip_inputs(*upload)
        elif kind != "DICOM":
            yield _upload(upload[0], [upload])
        elif upload is loose_dicom[0]:
            yield _together(upload[0], loose_dicom)


def _zip_inputs(name: str, data: bytes) -> Iterator["Upload"]:
    from mri_core.io.slices import sniff_format
    from mri_core.io.zips import read_zip_files

    dicom_files, any_member = [], False
    try:
        for inner, content in read_zip_files(data):
            member, kind = f"{name}/{inner}", sniff_format(content)
            any_member = True
            if kind == "DICOM":
                dicom_files.append((member, content))
            elif kind is not None:
                yield _upload(member, [(member, content)])
    except MriError as exc:
        yield _upload(name, error=exc)
        return
    if dicom_files:
        yield _together(name, dicom_files)
    elif not any_member:  # empty, or only nested zips: the scan reader says so in its words
        yield _upload(name, [(name, data)])


def count_uploads(uploads: Sequence[tuple[str, bytes]]) -> int:
    """How many files the uploads hold (zips: from their directory only), for the progress bar."""
    from mri_core.io.zips import count_zip_files, is_zip

    total = 0
    for _, data in uploads:
        try:
            total += count_zip_files(data) if is_zip(data) else 1
        except MriError:
            total += 1  # a zip that cannot be opened answers one error
    return total


def file_for_diagnose(uploads: Sequence[tuple[str, bytes]], input_name: str) -> tuple[str, bytes]:
    """The input named `input_name` (a row's `input`) as the one file the Diagnose page is handed: the
    file itself, or the DICOM files read together zipped in memory (Diagnose reads a zip as a series)."""
    for upload in batch_inputs(uploads):
        if upload.name != input_name or upload.error is not None:
            continue
        if len(upload.files) == 1:
            file, data = upload.files[0]
            return Path(file).name, data
        return f"{Path(upload.files[0][0]).stem}-series.zip", _zip_of(upload.files)
    raise UnreadableImage(f"{input_name}: not among the uploaded files any more; upload it again.")


def _zip_of(files: Sequence[tuple[str, bytes]]) -> bytes:
    buffer = _io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for number, (name, data) in enumerate(files):  # numbered: two uploads may share a name
            archive.writestr(f"series/{number:05d}_{Path(name).name}", data)
    return buffer.getvalue()


def input_sha256(item) -> str:
    """The reading log's image hash of an input: SHA-256 over the bytes of its files, in upload order
    (one file: its own bytes, also when it came in a zip; an Upload: all of its files)."""
    from mri_core.inference.stream import Upload

    if isinstance(item, Upload):
        return image_sha256(data for _, data in item.files)
    if isinstance(item, tuple):
        return image_sha256([item[1]])
    return image_sha256([Path(item).read_bytes()])


@dataclass(frozen=True)
class BatchReport:
    """What the Batch page shows and offers for download."""

    rows: list  # summary_row dicts in input order, each with a "thumbnail" data URL (None on errors)
    csv: bytes
    heatmaps_zip: bytes
    failed: int  # inputs that could not be read
    log_problem: str | None = None  # why the reading log could not be written (the batch still ran)


def read_batch(scan_model, inputs: Iterable, on_progress: Callable[[int, int], None] | None = None,
               batch_size: int | None = None, thumbnail_side: int = THUMBNAIL_SIDE, every_slice: bool = False,
               log_home: str | Path | None = None) -> BatchReport:
    """Inputs -> BatchReport, streaming; `on_progress(answers, files_read)` after every answer.

    `every_slice`: every slice of each DICOM series and NIfTI volume, else its middle slice (where
    Diagnose starts). `log_home`: append each answer to the reading log there (`reading_log`: the
    model; the SHA-256 of the files its scan was read from, in upload order (one file's own bytes, also
    from a zip; a DICOM series' files, so each series of DICOM files uploaded together has its own);
    the slice number counted from 1; verdict, probability and warning codes; a failed input logs nothing). A log that cannot be written stops logging and is
    reported in `log_problem`; the readings go on. `batch_size`: slices per model call (None: the
    stream's default).
    """
    from mri_core.inference.stream import (DEFAULT_BATCH_SIZE, Upload, decode_input, placed_volumes, stream_readings,
                                           upload_scans)

    choice = "all" if every_slice else None
    # position -> [how many files, the input, its SHA-256s], noted as the stream pulls each input (in its
    # decoding thread, in order) and dropped once answered: a few entries however long the batch
    pending: dict[int, list] = {}
    scan_digests: dict[int, list[str]] = {}  # id(Upload) -> the SHA-256 of each of its scans' files

    def noted(items):
        for position, item in enumerate(items):
            pending[position] = [max(1, len(item.files)) if isinstance(item, Upload) else 1, item, None]
            yield item

    def decode(item):
        if log_home is None or not isinstance(item, Upload):
            return decode_input(item, choice)
        scans = upload_scans(item)  # DICOM files read together may form several series: a hash for each
        scan_digests[id(item)] = [image_sha256(item.files[i][1] for i in scan.uploads) for scan in scans]
        return placed_volumes([scan.volume for scan in scans], choice)

    def digest(item: "BatchItem") -> str:
        entry = pending[item.position]
        if entry[2] is None:
            entry[2] = scan_digests.pop(id(entry[1]), None) or [input_sha256(entry[1])]
        return entry[2][item.place.number if len(entry[2]) > 1 else 0]

    rows, archive, failed, log_problem = [], HeatmapArchive(), 0, None
    files_read, unanswered = 0, 0  # files of the inputs answered; the first input not known to be
    for done, item in enumerate(stream_readings(scan_model, noted(inputs), batch_size=batch_size or DEFAULT_BATCH_SIZE,
                                                decode=decode, thumbnail_side=thumbnail_side), start=1):
        while unanswered < item.position:  # answers come in input order: the inputs before this one are done
            files_read += pending.pop(unanswered)[0]
            unanswered += 1
        row = summary_row(item)
        row["thumbnail"] = None if item.thumbnail is None else png_data_url(overlay_thumbnail(item.thumbnail, item.outcome))
        rows.append(row)
        archive.add(item)
        failed += item.failed
        if log_home is not None and not item.failed and log_problem is None:
            log_problem = _log(log_home, item.outcome, digest(item))
        if on_progress:
            on_progress(done, files_read)
    return BatchReport(rows, rows_to_csv(rows), archive.to_bytes(), failed, log_problem)


def _log(home: str | Path, reading, sha256: str) -> str | None:
    """Append one reading to the log; None, or why it could not be written."""
    number = None if reading.slice_index is None else reading.slice_index + 1
    try:
        append_reading(home, reading, reading.model, sha256, number)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return (f"The reading log in {home} could not be written ({reason}), so the readings of this batch from "
                f"here on are not recorded there; ask whoever runs the app to make that folder writable.")
    return None
