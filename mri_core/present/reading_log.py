"""The reading log: an automatic, append-only record of every reading made on the pages, and the
clinician's own finding where they record one.

One CSV file, `$MRI_HOME/reading-log.csv`. Each row is an event:
- `reading`: time (UTC), a reading id, the model (name@version), the SHA-256 of the uploaded
  bytes (for a series, of all its files in upload order), the slice number (counted from 1, as
  pages count; empty for a plain image), the verdict, the tumor probability and the warnings;
- `finding`: time, the reading id it belongs to, and the clinician's finding, one of FINDINGS.
  A later finding for the same reading replaces an earlier one when the log is read; nothing
  is rewritten or deleted.

DESIGN.md's one exception to "nothing from an upload is written": never pixels, file names,
DICOM tags or free text go in (the columns are fixed and every value is checked). Rows are
appended under an exclusive lock and flushed to disk, so two sessions never interleave a row.
`agreement` compares the model's calls with the recorded findings, per model, with a Wilson
interval. Never imports streamlit.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import os
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

from mri_core.io.errors import SettingsInvalid
from mri_core.io.reading import CANNOT_READ, NO_TUMOR, TUMOR, UNCERTAIN, VERDICTS, Reading
from mri_core.training.audit import wilson_interval

LOG_FILE = "reading-log.csv"
COLUMNS = ("time", "event", "reading_id", "model", "image_sha256", "slice_number", "verdict",
           "tumor_probability", "warnings", "finding")
FINDINGS = {"tumor": "Tumor", "no_tumor": "No tumor", "unsure": "Unsure"}
# The agreement figure is shown once a model has at least this many readings with a finding
MIN_FINDINGS = 20
_MODEL_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}@[0-9]{1,9}$")
_WARNING = re.compile(r"^[a-z0-9_]{1,64}$")
_ID = re.compile(r"^[0-9a-f]{32}$")


def log_path(home: str | os.PathLike) -> Path:
    return Path(home) / LOG_FILE


def image_sha256(parts: Iterable[bytes]) -> str:
    """SHA-256 over the uploaded bytes (several files of a series in their upload order)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def append_reading(home: str | os.PathLike, reading: Reading, model_ref: str, sha256: str,
                   slice_number: int | None = None) -> str:
    """Append one `reading` row; returns its reading id (for `record_finding`)."""
    if not _MODEL_REF.match(model_ref):
        raise ValueError(f"Not a model reference (name@version): {model_ref!r}")
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("Expected a hex SHA-256 of the image bytes.")
    if reading.verdict not in VERDICTS:
        raise ValueError(f"Unknown verdict {reading.verdict!r}")
    warnings = [w for w in reading.warnings if _WARNING.match(w)]
    reading_id = uuid.uuid4().hex
    _append(home, {"event": "reading", "reading_id": reading_id, "model": model_ref, "image_sha256": sha256,
                   "slice_number": "" if slice_number is None else str(int(slice_number)),
                   "verdict": reading.verdict, "tumor_probability": f"{float(reading.tumor_probability):.6f}",
                   "warnings": ";".join(warnings)})
    return reading_id


def record_finding(home: str | os.PathLike, reading_id: str, finding: str) -> None:
    """Append the clinician's finding (a key of FINDINGS) for an earlier reading."""
    if finding not in FINDINGS:
        raise SettingsInvalid(f"A finding is one of {', '.join(FINDINGS)}; got {finding!r}.")
    if not _ID.match(reading_id):
        raise ValueError("Not a reading id from this log.")
    _append(home, {"event": "finding", "reading_id": reading_id, "finding": finding})


def _append(home: str | os.PathLike, row: dict) -> None:
    path = log_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **row}
    buffer = io.StringIO()
    csv.DictWriter(buffer, COLUMNS, lineterminator="\n", restval="").writerow(row)
    with open(path, "a", encoding="utf-8", newline="") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.fstat(handle.fileno()).st_size == 0:  # checked under the lock: one header
                handle.write(",".join(COLUMNS) + "\n")
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_log(home: str | os.PathLike) -> list[dict]:
    """Every row of the log, oldest first (empty when nothing was read yet)."""
    path = log_path(home)
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # a row cut short (a full disk, a killed process) or edited by hand is skipped, not fatal
    return [row for row in rows if row.get("event") in ("reading", "finding") and _ID.match(row.get("reading_id") or "")
            and (row["event"] == "reading" and row.get("verdict") in VERDICTS and row.get("model")
                 or row["event"] == "finding" and row.get("finding") in FINDINGS)]


def log_csv(home: str | os.PathLike) -> bytes:
    """The log file's bytes, for a download (the header alone when it is empty)."""
    path = log_path(home)
    return path.read_bytes() if path.exists() else (",".join(COLUMNS) + "\n").encode()


def readings_with_findings(rows: Sequence[dict]) -> list[dict]:
    """`reading` rows, each with its latest recorded `finding` ("" when none)."""
    findings = {}
    for row in rows:
        if row["event"] == "finding":
            findings[row["reading_id"]] = row["finding"]
    return [{**row, "finding": findings.get(row["reading_id"], "")} for row in rows if row["event"] == "reading"]


def agreement(rows: Sequence[dict]) -> dict[str, dict]:
    """Per model: how often its verdict agreed with the clinician's finding, over the readings where
    both made a call (model tumor / no tumor, finding tumor / no tumor). -> {model: {"agreed", "n",
    "low", "high", "findings", "deferred"}}: `findings` counts every reading with a finding,
    `deferred` those the model called uncertain or could not read; low/high is the Wilson 95%
    interval, None when n is 0."""
    table: dict[str, dict] = {}
    for row in readings_with_findings(rows):
        if not row["finding"]:
            continue
        entry = table.setdefault(row["model"], {"agreed": 0, "n": 0, "findings": 0, "deferred": 0})
        entry["findings"] += 1
        if row["verdict"] in (UNCERTAIN, CANNOT_READ):
            entry["deferred"] += 1
        elif row["finding"] in (TUMOR, NO_TUMOR):
            entry["n"] += 1
            entry["agreed"] += int(row["verdict"] == row["finding"])
    for entry in table.values():
        entry["low"], entry["high"] = wilson_interval(entry["agreed"], entry["n"]) if entry["n"] else (None, None)
    return table
