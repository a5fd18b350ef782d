"""Background model loading: one load shared with the page, a damaged package refused at once."""

from __future__ import annotations

import pytest

from mri_core.package import registry
from mri_core.io.errors import ModelInvalid
from mri_core.inference.model import load_cached
from mri_core.inference.preload import preload_model


def test_preload_and_the_pages_load_share_one_model():
    entry = registry.default_shipped()
    preload_model(str(entry.path), entry.version)  # a page run in this process may have started it
    assert not preload_model(str(entry.path), entry.version)  # started once per process
    first = load_cached(str(entry.path), entry.version)  # waits for the background load
    assert load_cached(str(entry.path), entry.version) is first
    assert first.ref == entry.ref


def test_a_package_whose_model_file_is_not_keras_is_refused_before_any_load(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"not a Keras file")
    with pytest.raises(ModelInvalid, match=str(tmp_path)):
        preload_model(str(tmp_path), 1)
