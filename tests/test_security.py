"""Security and privacy settings a deployment relies on: server config, no traces of a DICOM, the audit."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_streamlit_config_limits_uploads_protects_forms_sends_no_stats_and_binds_to_localhost():
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    server = config["server"]
    assert 0 < server["maxUploadSize"] <= 200  # megabytes, refused by Streamlit before our code
    assert server["enableXsrfProtection"] is True
    assert server["address"] in ("127.0.0.1", "localhost")
    assert config["browser"]["gatherUsageStats"] is False


def test_cli_on_a_dicom_with_patient_tags_writes_and_prints_nothing_identifying(kaggle_dir, tmp_path):
    from scans import SECRET_TAGS, dicom_bytes, grey_uint8

    scan = tmp_path / "in" / "IM0001"
    scan.parent.mkdir()
    scan.write_bytes(dicom_bytes(grey_uint8(sorted((kaggle_dir / "yes").iterdir())[0]), **SECRET_TAGS))
    private_tmp, home = tmp_path / "tmp", tmp_path / "home"
    private_tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TMPDIR": str(private_tmp), "MRI_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "mri_core", "predict", str(scan), "--json"], capture_output=True,
                          text=True, timeout=300, cwd=PROJECT_ROOT, env=env)
    assert done.returncode == 0, done.stderr
    assert list(private_tmp.rglob("*")) == [], "the CLI left files in the temp folder"
    assert not home.exists() or list(home.rglob("*")) == [], "the CLI wrote into the registry"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["IM0001", "home", "in", "tmp"] or \
        sorted(p.name for p in tmp_path.rglob("*")) == ["IM0001", "in", "tmp"]
    for value in SECRET_TAGS.values():
        for part in value.split("^"):
            assert part not in done.stdout + done.stderr, f"{part!r} was printed"


def test_audit_offline_says_nothing_was_checked_and_passes():
    unreachable = "http://127.0.0.1:9"  # the discard port: every request fails at once, as offline
    env = {**os.environ, "HTTPS_PROXY": unreachable, "https_proxy": unreachable}
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / ".ci" / "audit_deps.py")], capture_output=True,
                          text=True, timeout=120, cwd=PROJECT_ROOT, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing was checked" in done.stdout


def test_make_audit_runs_the_audit_over_the_pinned_requirements():
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "\naudit: $(STAMP)\n\t$(BIN)/python .ci/audit_deps.py\n" in makefile
    assert "make audit-report || true" in (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    pins = [line for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert pins and all("==" in line for line in pins), "every runtime dependency is pinned exactly"
