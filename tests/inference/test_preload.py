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


def test_the_background_load_warms_the_shipped_brain_check_too(tmp_path, monkeypatch):
    """Every reading asks the brain-MRI check: the preload thread loads it (and builds its predict),
    even when the model itself fails there (the page's own load says why)."""
    import threading
    import zipfile

    from mri_core.inference import brain_check

    monkeypatch.setattr(brain_check, "_CACHE", {})
    with zipfile.ZipFile(tmp_path / "model.keras", "w") as archive:
        archive.writestr("config.json", "{}")  # passes the cheap check; the load itself fails (no model.json)
    assert preload_model(str(tmp_path), 1)
    for thread in threading.enumerate():
        if thread.name == "mri-model-preload":
            thread.join(120)
    assert str(brain_check.CHECK_DIR.resolve()) in brain_check._CACHE
