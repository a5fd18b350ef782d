"""The reading log: what a row holds (and never holds), findings that replace earlier ones, and the
agreement figure with its interval, counted by hand here."""

from __future__ import annotations

import csv
import hashlib
import multiprocessing

import numpy as np
import pytest

from mri_core.io.errors import SettingsInvalid
from mri_core.io.reading import Reading
from mri_core.present import reading_log as log


def reading(verdict: str, probability: float = 0.5, warnings=()) -> Reading:
    return Reading(source="Secret Patient 1234.dcm", label="glioma", tumor=verdict == "tumor",
                   tumor_probability=probability, threshold=0.1, probabilities={"glioma": probability},
                   heatmap=None, cam_peak=None, cam_box=None, warnings=tuple(warnings), model="m@1", verdict=verdict)


def test_a_reading_row_holds_the_hash_verdict_and_warnings_and_never_the_file_name(tmp_path):
    data = b"\x89PNG... the uploaded bytes"
    sha = log.image_sha256([data])
    assert sha == hashlib.sha256(data).hexdigest()
    reading_id = log.append_reading(tmp_path, reading("tumor", 0.91234567, ("out_of_distribution",)), "default-4class-seg@1",
                                    sha, slice_number=3)
    text = log.log_path(tmp_path).read_text()
    assert "Secret" not in text and ".dcm" not in text
    [row] = list(csv.DictReader(log.log_path(tmp_path).open()))
    assert row == {"time": row["time"], "event": "reading", "reading_id": reading_id, "model": "default-4class-seg@1",
                   "image_sha256": sha, "slice_number": "3", "verdict": "tumor", "tumor_probability": "0.912346",
                   "warnings": "out_of_distribution", "finding": ""}
    assert row["time"].endswith("+00:00")


def test_findings_are_appended_and_the_latest_one_counts(tmp_path):
    first = log.append_reading(tmp_path, reading("tumor"), "m@1", "0" * 64)
    log.record_finding(tmp_path, first, "no_tumor")
    log.record_finding(tmp_path, first, "tumor")  # the clinician changed their mind
    rows = log.read_log(tmp_path)
    assert [r["event"] for r in rows] == ["reading", "finding", "finding"]  # nothing rewritten
    [joined] = log.readings_with_findings(rows)
    assert joined["finding"] == "tumor"
    with pytest.raises(SettingsInvalid, match="one of tumor, no_tumor, unsure"):
        log.record_finding(tmp_path, first, "looks fine to me")  # no free text
    with pytest.raises(ValueError):
        log.append_reading(tmp_path, reading("tumor"), "not a model; rm -rf", "0" * 64)


def test_agreement_per_model_counts_only_readings_where_both_made_a_call(tmp_path):
    # model a@1: 18 agreeing calls, 4 disagreeing, 2 deferred, 1 unsure finding, 1 without a finding
    cases = ([("tumor", "tumor")] * 10 + [("no_tumor", "no_tumor")] * 8 + [("tumor", "no_tumor")] * 3
             + [("no_tumor", "tumor")] + [("uncertain", "tumor"), ("cannot_read", "no_tumor"), ("tumor", "unsure")])
    for verdict, finding in cases:
        log.record_finding(tmp_path, log.append_reading(tmp_path, reading(verdict), "a@1", "1" * 64), finding)
    log.append_reading(tmp_path, reading("tumor"), "a@1", "1" * 64)
    log.record_finding(tmp_path, log.append_reading(tmp_path, reading("no_tumor"), "b@2", "2" * 64), "no_tumor")
    table = log.agreement(log.read_log(tmp_path))
    a = table["a@1"]
    assert (a["agreed"], a["n"], a["findings"], a["deferred"]) == (18, 22, 25, 2)
    # Wilson 95%: p = 18/22, z = 1.959964
    z, n, p = 1.959964, 22, 18 / 22
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert a["low"] == pytest.approx(centre - half, abs=1e-5) and a["high"] == pytest.approx(centre + half, abs=1e-5)
    assert table["b@2"]["agreed"] == 1 and table["b@2"]["n"] == 1


def test_an_empty_log_downloads_as_its_header(tmp_path):
    assert log.read_log(tmp_path) == [] and log.agreement([]) == {}
    assert log.log_csv(tmp_path).decode().strip() == ",".join(log.COLUMNS)


def _append_many(home: str, worker: int) -> None:
    for _ in range(50):
        log.append_reading(home, reading("no_tumor", 0.01 * worker), "m@1", f"{worker:x}" * 64)


def test_two_processes_appending_at_once_leave_whole_rows(tmp_path):
    processes = [multiprocessing.get_context("fork").Process(target=_append_many, args=(str(tmp_path), w))
                 for w in (1, 2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    rows = log.read_log(tmp_path)
    assert len(rows) == 100 and all(len(r["image_sha256"]) == 64 for r in rows)
    assert log.log_path(tmp_path).read_text().count("time,event") == 1  # one header


def test_a_damaged_row_is_skipped_not_fatal(tmp_path):
    kept = log.append_reading(tmp_path, reading("tumor"), "m@1", "0" * 64)
    with log.log_path(tmp_path).open("a") as handle:
        handle.write("2026-12-01T00:00:00+00:00,reading,abc\n")  # cut short
        handle.write("2026-12-01T00:00:00+00:00,finding," + kept + ",,,,,,,maybe\n")  # not a finding
    assert [r["reading_id"] for r in log.read_log(tmp_path)] == [kept]
