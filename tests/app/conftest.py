"""Page tests run the real app script on the model a user would get: the active one.

With the empty registry every test gets (tests/conftest.py), that is the shipped default
named in assets/models/DEFAULT.
"""

from __future__ import annotations

import os

import pytest

from mri_core.package import registry
from mri_core.io.errors import MriError


@pytest.fixture
def active_entry() -> registry.ModelEntry:
    """The active model package, or skip (fail in CI) when none is shipped yet."""
    try:
        return registry.active()
    except MriError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no usable active model: {exc}")
        pytest.skip(f"no usable active model: {exc}")
