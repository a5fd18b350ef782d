"""A model package as one zip file, built in memory, for the Models page's download button.

The zip holds one folder, `<name>-v<version>/`, with exactly the package files
(`model.keras`, `model.json`, and `MODEL_CARD.md` when the package has one): unzipped, that
folder loads with `mri_core.inference.model.load_model`. Nothing is written to disk. Never imports
streamlit or tensorflow.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from mri_core.io.errors import ModelInvalid
from mri_core.package.registry import CARD_FILE, INFO_FILE, MODEL_FILE, ModelEntry, read_info, resolve

PACKAGE_FILES = (MODEL_FILE, INFO_FILE, CARD_FILE)
# model.keras is itself a zip archive: deflating it again costs time and saves nothing
STORED_FILES = {MODEL_FILE}


def package_folder_name(entry: ModelEntry) -> str:
    """`<name>-v<version>`: the folder inside the zip, and the zip's stem."""
    return f"{entry.name}-v{entry.version}"


def zip_file_name(entry: ModelEntry) -> str:
    return f"{package_folder_name(entry)}.zip"


def zip_package(ref: str | os.PathLike | ModelEntry) -> bytes:
    """A package (entry, folder, `name` or `name@version`) -> the bytes of its zip file."""
    entry = ref if isinstance(ref, ModelEntry) else resolve(ref)
    read_info(entry.path)  # ModelInvalid now, not a half zip, when a file is missing
    folder = package_folder_name(entry)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file_name in PACKAGE_FILES:
            source = Path(entry.path) / file_name
            if not source.is_file():
                continue  # only MODEL_CARD.md is optional; read_info checked the others
            compression = zipfile.ZIP_STORED if file_name in STORED_FILES else zipfile.ZIP_DEFLATED
            try:
                archive.write(source, f"{folder}/{file_name}", compress_type=compression)
            except OSError as exc:
                raise ModelInvalid(f"{source} cannot be read ({exc}); check the file's permissions or restore the package.") from exc
    return buffer.getvalue()
