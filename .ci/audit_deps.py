"""`make audit`: pip-audit over the pinned runtime requirements, failing only on a fixable advisory.

Audits exactly the versions pinned in requirements.txt (no resolution: `--no-deps --disable-pip`)
against the PyPI advisory data. Exit 1 when a pinned package has a known vulnerability with a
fixed version to move to; 0 when none, when an advisory has no fix yet (printed), or when the
advisory database cannot be reached (offline: printed, nothing checked). `--report-only` always
exits 0: CI prints the report without a newly published advisory turning the test run red.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements.txt"
PROBE_URL = "https://pypi.org/pypi/pip/json"  # the advisory data pip-audit reads by default
TIMEOUT_S = 300


def database_reachable() -> bool:
    try:
        with urllib.request.urlopen(PROBE_URL, timeout=15) as response:
            return response.status == 200
    except OSError:
        return False


def run_pip_audit() -> dict | None:
    """pip-audit's JSON report over requirements.txt, or None (printing why) when it could not run."""
    command = [sys.executable, "-m", "pip_audit", "-r", str(REQUIREMENTS), "--no-deps", "--disable-pip",
               "--format", "json", "--progress-spinner", "off"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"audit: pip-audit took longer than {TIMEOUT_S} s; nothing was checked.")
        return None
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        print(f"audit: pip-audit did not produce a report (exit {done.returncode}):\n{done.stderr.strip()[-2000:]}")
        return None


def main(argv: list[str]) -> int:
    report_only = "--report-only" in argv
    try:
        import pip_audit  # noqa: F401
    except ImportError:
        print("audit: pip-audit is not installed; `pip install -r requirements-dev.txt` (make audit does it).")
        return 0 if report_only else 2
    if not database_reachable():
        print("audit: the vulnerability database (PyPI) cannot be reached from here (offline?); "
              "nothing was checked. Run `make audit` on a machine with internet access.")
        return 0
    report = run_pip_audit()
    if report is None:
        return 0
    fixable, unfixed, skipped = [], [], []
    for dependency in report.get("dependencies", []):
        if "skip_reason" in dependency:
            skipped.append(f"{dependency['name']}: {dependency['skip_reason']}")
        for vuln in dependency.get("vulns", []):
            line = (f"{dependency['name']}=={dependency['version']}: {vuln['id']}"
                    f" (fixed in {', '.join(vuln['fix_versions']) or 'no release yet'})")
            (fixable if vuln["fix_versions"] else unfixed).append(line)
    print(f"audit: {len(report.get('dependencies', []))} pinned packages of {REQUIREMENTS.name} checked; "
          f"{len(fixable)} advisories with a fix, {len(unfixed)} without one, {len(skipped)} not checked.")
    for title, lines in (("fix available (upgrade the pin)", fixable), ("no fix released yet", unfixed),
                         ("not checked", skipped)):
        if lines:
            print(f"  {title}:\n    " + "\n    ".join(lines))
    return 1 if fixable and not report_only else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
