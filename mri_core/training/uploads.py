"""Uploaded training data: safe extraction of a folder-per-class zip into a temp folder.

The members are checked by `io.zips.checked_members` (links, absolute or `..` paths, caps);
extraction counts the bytes actually written, so a header that lies about its size cannot
fill the disk. `extract_zip` returns the data root inside the folder (descending through a
single top folder such as `brain_mri/`), ready for `data.discover`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Iterator

from mri_core.io.errors import DatasetInvalid
from mri_core.io.zips import CHUNK_BYTES, IGNORED_NAMES, MAX_FILES, MAX_TOTAL_BYTES, checked_members, megabytes
from mri_core.training.data import FOLDER_CLASSES

TEMP_PREFIX = "mri-upload-"


def extract_zip(data: bytes | str | os.PathLike, target_dir: str | os.PathLike,
                max_total_bytes: int = MAX_TOTAL_BYTES, max_files: int = MAX_FILES) -> Path:
    """Zip bytes or file -> the data root (folder of class folders) extracted under target_dir."""
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    source = BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        with zipfile.ZipFile(source) as archive:
            members = checked_members(archive, max_total_bytes, max_files)
            written = 0
            for info, relative in members:
                written = _extract_member(archive, info, target / relative, written, max_total_bytes)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DatasetInvalid(f"The upload is not a readable zip file ({exc}); zip the data folder again and re-upload it.") from exc
    except NotImplementedError as exc:  # e.g. an unsupported compression method
        raise DatasetInvalid(f"The zip uses a compression this app cannot read ({exc}); re-create it with standard (deflate) compression.") from exc
    except RuntimeError as exc:  # encrypted members
        raise DatasetInvalid(f"The zip cannot be extracted ({exc}); upload an unencrypted zip.") from exc
    return find_data_root(target)


def _extract_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path,
                    written: int, max_total_bytes: int) -> int:
    """Stream one member to destination; returns the running byte total (raises past the cap)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as source, open(destination, "wb") as sink:
        while chunk := source.read(CHUNK_BYTES):
            written += len(chunk)
            if written > max_total_bytes:
                raise DatasetInvalid(f"The zip unpacks to more than {megabytes(max_total_bytes)}; upload a smaller data set or use a server folder.")
            sink.write(chunk)
    return written


def find_data_root(folder: str | os.PathLike) -> Path:
    """The folder holding the class folders: `folder` itself, or its single top folder (repeatedly)."""
    root = Path(folder)
    while True:
        entries = [p for p in root.iterdir() if not (p.name.startswith(".") or p.name.lower() in IGNORED_NAMES)]
        if (len(entries) == 1 and entries[0].is_dir() and entries[0].name.lower() not in FOLDER_CLASSES):
            root = entries[0]
            continue
        if not entries:
            raise DatasetInvalid("The zip holds no images; zip a folder that holds one folder per class (for example no/ and yes/).")
        return root


@contextmanager
def extracted_zip(data: bytes | str | os.PathLike, max_total_bytes: int = MAX_TOTAL_BYTES,
                  max_files: int = MAX_FILES) -> Iterator[Path]:
    """Extract into a fresh temp folder, yield the data root, remove the folder afterwards."""
    folder = make_temp_folder()
    try:
        yield extract_zip(data, folder, max_total_bytes, max_files)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def make_temp_folder() -> Path:
    """A fresh private temp folder for one upload (the caller removes it); named with this
    process's id, so that `remove_orphaned_uploads` can tell when its owner is gone."""
    return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))


def remove_orphaned_uploads() -> list[Path]:
    """Remove upload temp folders whose process no longer runs (a server killed mid-training,
    before its job could clean up) -> the folders removed."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        owner = folder.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if not folder.is_dir() or not owner.isdigit() or _process_alive(int(owner)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


