"""Page tests run the real app on the model a user would get: the active one.

With the empty registry every test gets (tests/conftest.py), that is the shipped default
named in assets/models/DEFAULT. Pages are opened the way a user gets them: through app.py's
navigation (`AppTest.from_file("app.py")`, then `switch_page("pages/<page>.py")` before the first run).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mri_core.io.errors import MriError
from mri_core.package import registry

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:  # the pages import `pages.common`, as under `streamlit run app.py`
    sys.path.insert(0, str(PROJECT_ROOT))


@pytest.fixture
def active_entry() -> registry.ModelEntry:
    """The active model package, or skip (fail in CI) when none is shipped yet."""
    try:
        return registry.active()
    except MriError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no usable active model: {exc}")
        pytest.skip(f"no usable active model: {exc}")
