"""Uploaded training data: safe extraction of a folder-per-class zip into a temp folder.

A zip from a browser is untrusted: `extract_zip` refuses absolute paths, `..` components
and symbolic links, caps the file count and the total uncompressed size (counting the
bytes actually written, so a header that lies about its size cannot fill the disk), and
skips nested archives and operating-system clutter. It returns the data root inside the
folder (descending through a single top folder such as `brain_mri/`), ready for
`datasets.discover`. Never imports streamlit.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path, PurePosixPath
from typing import Iterator

from .datasets import FOLDER_CLASSES, IGNORED_NAMES
from .errors import DatasetInvalid

MAX_TOTAL_BYTES = 2 * 1024**3  # 2 GiB uncompressed: far above the shared data sets (~250 MB)
MAX_FILES = 50_000
CHUNK_BYTES = 1024 * 1024
NESTED_ARCHIVES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
TEMP_PREFIX = "mri-upload-"


def extract_zip(data: bytes | str | os.PathLike, target_dir: str | os.PathLike,
                max_total_bytes: int = MAX_TOTAL_BYTES, max_files: int = MAX_FILES) -> Path:
    """Zip bytes or file -> the data root (folder of class folders) extracted under target_dir."""
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    source = BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        with zipfile.ZipFile(source) as archive:
            members = _checked_members(archive, max_total_bytes, max_files)
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


def _checked_members(archive: zipfile.ZipFile, max_total_bytes: int, max_files: int) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Every file entry to extract, with its safe relative path; DatasetInvalid on any unsafe entry."""
    members, declared = [], 0
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        if _is_link(info):
            raise DatasetInvalid(f"The zip holds a symbolic link ({info.filename!r}); links are not accepted. Zip the image files themselves.")
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            raise DatasetInvalid(f"The zip holds an absolute path ({info.filename!r}); re-create it from inside the data folder so every path is relative.")
        parts = PurePosixPath(name).parts
        if ".." in parts:
            raise DatasetInvalid(f"The zip holds a path that leaves its folder ({info.filename!r}); re-create it without '..' in any path.")
        if info.is_dir() or not parts:
            continue
        if any(p.startswith(".") or p.lower() in IGNORED_NAMES for p in parts):
            continue  # __MACOSX resource forks, .DS_Store, Thumbs.db: not images
        if name.lower().endswith(NESTED_ARCHIVES):
            continue  # nested archives are never opened
        members.append((info, PurePosixPath(*parts)))
        declared += info.file_size
        if len(members) > max_files:
            raise DatasetInvalid(f"The zip holds more than {max_files:,} files; upload at most {max_files:,} images (split the data into several zips or use a server folder).")
        if declared > max_total_bytes:
            raise DatasetInvalid(f"The zip unpacks to more than {_megabytes(max_total_bytes)}; upload a smaller data set or use a server folder.")
    return members


def _is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16  # Unix mode bits, set by zip tools on Unix
    return stat.S_ISLNK(mode)


def _extract_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path,
                    written: int, max_total_bytes: int) -> int:
    """Stream one member to destination; returns the running byte total (raises past the cap)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as source, open(destination, "wb") as sink:
        while chunk := source.read(CHUNK_BYTES):
            written += len(chunk)
            if written > max_total_bytes:
                raise DatasetInvalid(f"The zip unpacks to more than {_megabytes(max_total_bytes)}; upload a smaller data set or use a server folder.")
            sink.write(chunk)
    return written


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1024**2:,.0f} MB"


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


def read_zip_files(data: bytes, max_total_bytes: int = MAX_TOTAL_BYTES,
                   max_files: int = MAX_FILES) -> Iterator[tuple[str, bytes]]:
    """Zip bytes -> (path inside the zip, file bytes) per file, in memory, in zip order.

    The same checks as `extract_zip` (no links, absolute or `..` paths, nested archives or
    clutter; caps on count and on the bytes really read), without writing to disk.
    Read lazily: one member's bytes at a time.
    """
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            members = _checked_members(archive, max_total_bytes, max_files)
            read = 0
            for info, relative in members:
                with archive.open(info) as source:
                    content = source.read(max_total_bytes - read + 1)
                read += len(content)
                if read > max_total_bytes:
                    raise DatasetInvalid(f"The zip unpacks to more than {_megabytes(max_total_bytes)}; upload a smaller set of files.")
                yield str(relative), content
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DatasetInvalid(f"The upload is not a readable zip file ({exc}); zip the files again and re-upload it.") from exc
    except (NotImplementedError, RuntimeError) as exc:  # unsupported compression, encryption
        raise DatasetInvalid(f"The zip cannot be read ({exc}); re-create it unencrypted with standard (deflate) compression.") from exc


def count_zip_files(data: bytes, max_total_bytes: int = MAX_TOTAL_BYTES, max_files: int = MAX_FILES) -> int:
    """How many files `read_zip_files` will yield (reads only the zip's directory)."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            return len(_checked_members(archive, max_total_bytes, max_files))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DatasetInvalid(f"The upload is not a readable zip file ({exc}); zip the files again and re-upload it.") from exc
