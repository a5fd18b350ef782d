"""Uploaded training data: safe extraction of a folder-per-class zip into a temp folder.

The zip is opened and its members checked by `io.zips` (links, absolute or `..` paths,
clutter, nested archives, one set of limits), in a data set's words (DatasetInvalid).
Extraction streams each member to disk, counting the bytes really written against the
limit, so a header that lies about its size cannot fill the disk. `extract_zip` returns the
data root inside the folder (descending through a single top folder such as `brain_mri/`),
ready for `data.discover`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mri_core.io.errors import DatasetInvalid
from mri_core.io.zips import IGNORED_NAMES, MAX_FILES, MAX_TOTAL_BYTES, ZipErrors, is_zip, open_zip
from mri_core.training.data import FOLDER_CLASSES

TEMP_PREFIX = "mri-upload-"
# A training zip's problems, in a data set's words.
DATASET_ZIP = ZipErrors(DatasetInvalid, DatasetInvalid, DatasetInvalid, contents="the data folder",
                        smaller="upload a smaller data set (or split it into several zips) or use a server folder")


def extract_zip(data: bytes | str | os.PathLike, target_dir: str | os.PathLike,
                max_total_bytes: int = MAX_TOTAL_BYTES, max_files: int = MAX_FILES) -> Path:
    """Zip bytes or file -> the data root (folder of class folders) extracted under target_dir.

    Nothing is written before every member passed the checks; members that are themselves
    zips are skipped."""
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    with open_zip(data, DATASET_ZIP, max_total_bytes=max_total_bytes, max_files=max_files) as checked:
        for info, relative in checked.members:
            _extract_member(checked.chunks(info), target / relative)
    return find_data_root(target)


def _extract_member(chunks: Iterator[bytes], destination: Path) -> None:
    """Stream one member's chunks to destination (none when the member is itself a zip)."""
    first = next(chunks, b"")
    if is_zip(first):
        chunks.close()
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    with open(destination, "wb") as sink:
        sink.write(first)
        for chunk in chunks:
            sink.write(chunk)


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


