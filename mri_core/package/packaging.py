"""A model package as one zip file, built in memory, for the Models page's download button.

The zip holds one folder, `<name>-v<version>/`, with every file of the package folder
(`model.keras`, `model.json`, `MODEL_CARD.md`, `ood.npz` and whatever else the reading needs;
subfolders too): a package is written whole and never changed after, so all it holds is part
of it, and unzipped, that folder loads and reads exactly as the original. Links are left out
(a package written by this app has none; a link could point outside it). Nothing is written
to disk. Never imports streamlit or tensorflow.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from mri_core.io.errors import ModelInvalid
from mri_core.package.registry import ModelEntry, read_info, resolve

# already compressed archives (model.keras and .npz are zips): deflating them again costs time and saves nothing
STORED_SUFFIXES = {".keras", ".npz", ".zip"}


def package_folder_name(entry: ModelEntry) -> str:
    """`<name>-v<version>`: the folder inside the zip, and the zip's stem."""
    return f"{entry.name}-v{entry.version}"


def zip_file_name(entry: ModelEntry) -> str:
    return f"{package_folder_name(entry)}.zip"


def package_files(folder: str | os.PathLike) -> list[Path]:
    """Every regular file in a package folder and its subfolders (links not followed), relative to it, sorted."""
    folder = Path(folder)
    found = []
    for parent, _, names in os.walk(folder):  # does not descend into linked folders
        found += [Path(parent, name).relative_to(folder) for name in names
                  if Path(parent, name).is_file() and not Path(parent, name).is_symlink()]
    return sorted(found)


def zip_package(ref: str | os.PathLike | ModelEntry) -> bytes:
    """A package (entry, folder, `name` or `name@version`) -> the bytes of its zip file."""
    entry = ref if isinstance(ref, ModelEntry) else resolve(ref)
    read_info(entry.path)  # ModelInvalid now, not a half zip, when model.json or model.keras is missing
    folder = package_folder_name(entry)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for relative in package_files(entry.path):
            source = Path(entry.path) / relative
            compression = zipfile.ZIP_STORED if source.suffix in STORED_SUFFIXES else zipfile.ZIP_DEFLATED
            try:
                archive.write(source, f"{folder}/{relative.as_posix()}", compress_type=compression)
            except OSError as exc:
                raise ModelInvalid(f"{source} cannot be read ({exc}); check the file's permissions or restore the package.") from exc
    return buffer.getvalue()
