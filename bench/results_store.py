"""One place for benchmark figures: each benchmark updates its own section of bench/results.json."""

from __future__ import annotations

import json
import platform
import os
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "processor": platform.processor() or platform.machine()}


def update_results(section: str, figures: dict, path: Path = RESULTS) -> dict:
    """Replace `section` in results.json with `figures` (plus date and machine), keep the rest."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results[section] = {**figures, "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "machine": machine()}
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results[section]
