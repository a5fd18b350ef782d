"""Load a model package in a background thread, so a page is served before TensorFlow is imported.

`preload_model` starts (once per package version and process) a thread that imports
TensorFlow, loads the package through `model.load_cached` and traces Grad-CAM once on a
blank batch, then loads the shipped brain-MRI check (`brain_check.load_brain_check`, which
builds its predict function) that every reading asks; the page's own `load_cached` call then
returns at once, or waits for that load instead of starting a second one (so does the first
reading's load of the check). Before that it checks, cheaply, that `model.keras`
is a Keras archive at all (ModelInvalid at once, so a page can say so before any upload);
any other load failure is silent here and raised by the page's own call, where the page
can show it. Never imports streamlit; this module itself imports nothing heavy.
"""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

from mri_core.io.errors import ModelInvalid
from mri_core.package.registry import MODEL_FILE

_started: set[tuple[str, int]] = set()
_lock = threading.Lock()


def preload_model(package_path: str, version: int) -> bool:
    """Start loading the package in the background; False when it was already started.

    ModelInvalid now when the package's model file is missing or not a Keras archive.
    """
    check_model_file(package_path)
    key = (str(package_path), int(version))
    with _lock:
        if key in _started:
            return False
        _started.add(key)
    threading.Thread(target=_load, args=key, daemon=True, name="mri-model-preload").start()
    return True


def check_model_file(package_path: str | Path) -> None:
    """ModelInvalid unless `model.keras` is a zip holding a Keras config (no TensorFlow needed)."""
    model_file = Path(package_path) / MODEL_FILE
    try:
        with zipfile.ZipFile(model_file) as archive:
            if "config.json" not in archive.namelist():
                raise zipfile.BadZipFile("no config.json inside")
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelInvalid(f"{model_file} could not be loaded safely (not a Keras model file: {exc}). "
                           "Retrain the model with this app or restore the package from a backup.") from None


def _load(package_path: str, version: int) -> None:
    try:
        import numpy as np

        from mri_core.inference.model import load_cached

        scan_model = load_cached(package_path, version)
        size = scan_model.image_size
        scan_model.gradcam(np.zeros((1, size, size, 1), np.float32))  # the one trace, done early
    except Exception:  # noqa: BLE001 - the page's own load raises it where it can be shown
        pass
    try:
        from mri_core.inference.brain_check import load_brain_check

        load_brain_check()  # the shipped brain-MRI check every reading asks: loaded and its predict built
    except Exception:  # noqa: BLE001 - the first reading raises it where it can be shown
        pass
