"""What the Batch page shows and offers for download: an overlay thumbnail per answer, the
results table and its CSV, and a zip of the heatmaps, built in memory as answers stream in
from `inference.stream`. Importing it loads no TensorFlow (the stream is imported when a batch
is read), so the Batch page starts before the model does. Never imports streamlit.
"""

from __future__ import annotations

import base64
import csv
import io as _io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
from PIL import Image

from mri_core.inference.segmentation import mask_uint8
from mri_core.io.errors import UnreadableImage
from mri_core.io.reading import CANNOT_READ, VERDICT_HEADLINE
from mri_core.present import render

if TYPE_CHECKING:  # the stream imports TensorFlow: only when a batch is read
    from mri_core.inference.stream import BatchItem

THUMBNAIL_SIDE = 96
THUMBNAIL_OPACITY = 0.5
CSV_COLUMNS = ("file", "slice", "verdict", "label", "tumor", "tumor_probability", "threshold", "area_px", "area_mm2",
               "diameter_px", "diameter_mm", "warnings", "model", "error")
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

def summary_row(item: "BatchItem") -> dict:
    """One row of the results table and CSV (CSV_COLUMNS); an error row has only file and error."""
    if item.failed:
        return {"file": item.file, "slice": None, "verdict": None, "verdict_words": None, "label": None, "tumor": None,
                "tumor_probability": None, "threshold": None, **dict.fromkeys(LESION_COLUMNS), "warnings": "",
                "model": None, "error": str(item.outcome)}
    reading = item.outcome
    return {"file": item.file, "slice": reading.slice_index, "verdict": reading.verdict,
            "verdict_words": VERDICT_HEADLINE[reading.verdict], "label": reading.label,
            "tumor": reading.tumor, "tumor_probability": round(reading.tumor_probability, 6),
            "threshold": reading.threshold, **lesion_cells(reading.lesion), "warnings": ", ".join(reading.warnings),
            "model": reading.model, "error": ""}


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


class HeatmapArchive:
    """A zip built in memory as answers arrive: one 8-bit PNG heatmap per slice, and its tumor mask.

    `<stem>.png` (numbered when two inputs share a stem, `_s<slice>` for volume slices) is
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
        stem = Path(item.file).stem
        if item.outcome.slice_index is not None:
            stem = f"{stem}_s{item.outcome.slice_index}"
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


def _is_zip(name: str, data: bytes) -> bool:
    return name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04"


def expand_uploads(uploads: Sequence[tuple[str, bytes]]) -> Iterator[tuple[str, bytes]]:
    """Uploads (name, bytes) -> inputs (name, bytes), a zip replaced by its files as
    `<zip name>/<path inside>`, read in memory one at a time (`archive.read_zip_files`)."""
    from mri_core.io.zips import read_zip_files

    for name, data in uploads:
        if _is_zip(name, data):
            for inner, content in read_zip_files(data):
                yield f"{name}/{inner}", content
        else:
            yield name, data


def count_uploads(uploads: Sequence[tuple[str, bytes]]) -> int:
    """How many inputs `expand_uploads` gives (zips: from their directory only)."""
    from mri_core.io.zips import count_zip_files

    return sum(count_zip_files(data) if _is_zip(name, data) else 1 for name, data in uploads)


def find_upload(uploads: Sequence[tuple[str, bytes]], file: str) -> bytes:
    """The bytes of the input named `file` among the expanded uploads (to open one on Diagnose)."""
    for name, data in expand_uploads(uploads):
        if name == file:
            return data
    raise UnreadableImage(f"{file}: not among the uploaded files any more; upload it again.")


@dataclass(frozen=True)
class BatchReport:
    """What the Batch page shows and offers for download."""

    rows: list  # summary_row dicts in input order, each with a "thumbnail" data URL (None on errors)
    csv: bytes
    heatmaps_zip: bytes
    failed: int  # inputs that could not be read


def read_batch(scan_model, inputs: Iterable, total: int | None = None,
               on_progress: Callable[[int, int | None], None] | None = None,
               batch_size: int | None = None, thumbnail_side: int = THUMBNAIL_SIDE) -> BatchReport:
    """Inputs -> BatchReport, streaming; `on_progress(done, total)` after every answer.
    `batch_size`: slices per model call (None: the stream's default)."""
    from mri_core.inference.stream import DEFAULT_BATCH_SIZE, stream_readings

    batch_size = batch_size or DEFAULT_BATCH_SIZE
    rows, archive, failed = [], HeatmapArchive(), 0
    for done, item in enumerate(stream_readings(scan_model, inputs, batch_size=batch_size,
                                                thumbnail_side=thumbnail_side), start=1):
        row = summary_row(item)
        row["thumbnail"] = None if item.thumbnail is None else png_data_url(overlay_thumbnail(item.thumbnail, item.outcome))
        rows.append(row)
        archive.add(item)
        failed += item.failed
        if on_progress:
            on_progress(done, total)
    return BatchReport(rows, rows_to_csv(rows), archive.to_bytes(), failed)
