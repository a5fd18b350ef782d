"""The CLI still answers 60 real inputs as it did before the restructure (issue 18).

The recording was made with `python -m mri_core predict ... --model default-4class@4 --json`
at the commit before the layered `mri_core`; see inputs.py for how the inputs are chosen
and written. Every field recorded then must come back with the same value (numbers within
1e-5); fields added since are checked against what they must say of those answers (issue 21:
`verdict` and `lesion`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from golden.inputs import write_inputs

RECORDING = Path(__file__).with_name("cli_default_4class.jsonl")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5


def _same(recorded, now, where: str) -> None:
    if isinstance(recorded, dict):
        assert isinstance(now, dict) and set(recorded) <= set(now), f"{where}: fields {set(recorded) - set(now or {})} missing"
        for key, value in recorded.items():
            _same(value, now[key], f"{where}.{key}")
    elif isinstance(recorded, list):
        assert isinstance(now, list) and len(now) == len(recorded), f"{where}: {now} != {recorded}"
        for i, (a, b) in enumerate(zip(recorded, now)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(recorded, float) and not isinstance(recorded, bool):
        assert now == pytest.approx(recorded, abs=TOLERANCE), f"{where}: {now} != {recorded}"
    else:
        assert now == recorded, f"{where}: {now!r} != {recorded!r}"


def test_cli_gives_the_recorded_answers_for_60_real_inputs(data_root, tmp_path):
    paths = write_inputs(data_root, tmp_path / "inputs")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-m", "mri_core", "predict", *map(str, paths),
                           "--model", "default-4class@4", "--json"],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    now = [json.loads(line) for line in done.stdout.splitlines()]
    recorded = [json.loads(line) for line in RECORDING.read_text().splitlines()]
    assert len(now) == len(recorded) == 60
    for old, new in zip(recorded, now):
        new = {**new, "file": Path(new["file"]).name}
        _same(old, new, old["file"])
    # Issue 21's fields: the recorded model does not segment, so no lesion; it has no uncertainty
    # band, so the verdict of a brain MRI input is its tumor flag at the threshold; the shipped
    # brain-MRI check refuses the head CTs, whatever the model says of them.
    is_mri = [p.resolve().parent.name != "head-ct" for p in paths]
    assert sum(is_mri) == 55
    for line, mri in zip(now, is_mri):
        assert line["lesion"] is None, line["file"]
        assert line["verdict"] == (("tumor" if line["tumor"] else "no_tumor") if mri else "cannot_read"), line["file"]
