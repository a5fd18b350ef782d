"""What the bench scripts share: the project folder, the default data folder and a stderr log.

DEFAULT_DATA is $MRI_DATA when set, else ../shared/data next to the project (as in tests/conftest.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("MRI_DATA", PROJECT.parent / "shared" / "data"))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
