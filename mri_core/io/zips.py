"""Zips from a browser or a disk: the one place their members are checked and read.

A zip is untrusted: `checked_members` refuses absolute paths, `..` components
and symbolic links, caps the file count and the total uncompressed size (counting the
bytes actually written, so a header that lies about its size cannot fill the disk), and
skips nested archives and operating-system clutter. It returns the data root inside the
folder (descending through a single top folder such as `brain_mri/`), ready for
`datasets.discover`. Never imports streamlit.
"""

from __future__ import annotations

import stat
import zipfile
from io import BytesIO
from pathlib import PurePosixPath
from typing import Iterator

from mri_core.io.errors import DatasetInvalid

MAX_TOTAL_BYTES = 2 * 1024**3  # 2 GiB uncompressed: far above the shared data sets (~250 MB)
MAX_FILES = 50_000
CHUNK_BYTES = 1024 * 1024
NESTED_ARCHIVES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
# Operating-system clutter in zips and folders: never an image.
IGNORED_NAMES = {"thumbs.db", "desktop.ini", "__macosx"}


def checked_members(archive: zipfile.ZipFile, max_total_bytes: int, max_files: int) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
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
            raise DatasetInvalid(f"The zip unpacks to more than {megabytes(max_total_bytes)}; upload a smaller data set or use a server folder.")
    return members


def _is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16  # Unix mode bits, set by zip tools on Unix
    return stat.S_ISLNK(mode)


def megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1024**2:,.0f} MB"


def read_zip_files(data: bytes, max_total_bytes: int = MAX_TOTAL_BYTES,
                   max_files: int = MAX_FILES) -> Iterator[tuple[str, bytes]]:
    """Zip bytes -> (path inside the zip, file bytes) per file, in memory, in zip order.

    The same checks as `extract_zip` (no links, absolute or `..` paths, nested archives or
    clutter; caps on count and on the bytes really read), without writing to disk.
    Read lazily: one member's bytes at a time.
    """
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            members = checked_members(archive, max_total_bytes, max_files)
            read = 0
            for info, relative in members:
                with archive.open(info) as source:
                    content = source.read(max_total_bytes - read + 1)
                read += len(content)
                if read > max_total_bytes:
                    raise DatasetInvalid(f"The zip unpacks to more than {megabytes(max_total_bytes)}; upload a smaller set of files.")
                yield str(relative), content
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DatasetInvalid(f"The upload is not a readable zip file ({exc}); zip the files again and re-upload it.") from exc
    except (NotImplementedError, RuntimeError) as exc:  # unsupported compression, encryption
        raise DatasetInvalid(f"The zip cannot be read ({exc}); re-create it unencrypted with standard (deflate) compression.") from exc


def count_zip_files(data: bytes, max_total_bytes: int = MAX_TOTAL_BYTES, max_files: int = MAX_FILES) -> int:
    """How many files `read_zip_files` will yield (reads only the zip's directory)."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            return len(checked_members(archive, max_total_bytes, max_files))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DatasetInvalid(f"The upload is not a readable zip file ({exc}); zip the files again and re-upload it.") from exc
