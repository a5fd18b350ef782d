"""Zips from a browser or a disk: the one place their members are checked and read.

Three kinds of upload arrive as zips: a scan (a DICOM series, `slices.read_volumes`), a batch
of slices (`read_zip_files`, the Batch page) and a training data set (`training.uploads`).
All three open it with `open_zip`, which is untrusted input handled once:

- members are checked before anything is unpacked: no symbolic links, no absolute paths,
  no `..` components (a path must stay inside the zip's folder);
- operating-system clutter (`__MACOSX/`, `.DS_Store`, `Thumbs.db`, hidden files) is
  skipped; nested archives are never opened (a zip bomb nested in a zip, or a zip that
  holds itself, would never end), whether named like one or only starting like one;
- one set of limits, `MAX_FILES` files and `MAX_TOTAL_BYTES` unpacked, checked on the
  declared sizes first and then on the bytes really unpacked (headers can lie).

Each caller keeps its own error types and advice (`ZipErrors`): a scan upload raises
UnsupportedFormat / UnreadableImage / ImageTooLarge, a training zip DatasetInvalid; every
message names the zip and says what to do. Never imports streamlit.
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import PurePosixPath
from typing import Iterator

from mri_core.io.errors import DatasetInvalid, MriError

# One set of limits for every zip. 1 GiB unpacked: Streamlit refuses uploads above 200 MB,
# images do not compress (a 200 MB zip of PNG/JPEG unpacks to about 200 MB) and DICOM about
# 2-3 times, so a real upload stays below it, and a scan zip read in memory cannot take more.
# 20,000 files: all six shared data sets in one zip are 15,867 files (231 MB); a whole MRI
# exam, diffusion and fMRI series included, is a few thousand.
MAX_TOTAL_BYTES = 1024**3
MAX_FILES = 20_000
CHUNK_BYTES = 1024 * 1024
ZIP_SIGNATURE = b"PK\x03\x04"
EMPTY_ZIP_SIGNATURE = b"PK\x05\x06"  # an empty zip is only its end-of-directory record
NESTED_ARCHIVES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
# Operating-system clutter in zips and folders: never an image (hidden files are skipped too).
IGNORED_NAMES = {"thumbs.db", "desktop.ini", "__macosx"}
_ZIP_FAILURES = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class ZipErrors:
    """How one kind of upload words a refused zip: the error class of each problem, and advice."""

    unsafe: type[MriError]  # a link, or a path that leaves the zip's folder
    unreadable: type[MriError]  # not a zip, damaged, encrypted, an unknown compression
    too_large: type[MriError]  # past MAX_FILES or MAX_TOTAL_BYTES
    contents: str  # what to zip again, e.g. "the series folder"
    smaller: str  # what to do past a limit, e.g. "zip one series at a time"


# The Batch page's zips of slices (`read_zip_files`); scan and training uploads define theirs.
BATCH_ZIP = ZipErrors(DatasetInvalid, DatasetInvalid, DatasetInvalid, contents="the folder of slices",
                      smaller="upload fewer files at a time, or several smaller zips")


def is_zip(data: bytes) -> bool:
    """Whether the bytes start like a zip (an empty zip included)."""
    return data.startswith((ZIP_SIGNATURE, EMPTY_ZIP_SIGNATURE))


def is_clutter(parts: tuple[str, ...] | list[str]) -> bool:
    """Whether a path (its parts) is operating-system clutter: hidden, __MACOSX, Thumbs.db ..."""
    return any(p.startswith(".") or p.lower() in IGNORED_NAMES for p in parts)


def megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1024**2:,.0f} MB"


@dataclass
class CheckedZip:
    """An open zip whose members passed the checks; read them with `files` or `chunks`, inside
    `with` (which closes the zip)."""

    archive: zipfile.ZipFile
    members: list[tuple[zipfile.ZipInfo, PurePosixPath]]  # the files to read, with safe relative paths
    errors: ZipErrors
    name: str | None  # the zip's file name, for messages
    max_total_bytes: int
    nested: list[str] = field(default_factory=list)  # archives inside it, skipped (never opened)
    unpacked: int = 0  # bytes really unpacked so far

    def __enter__(self) -> CheckedZip:
        return self

    def __exit__(self, *exc_info) -> None:
        self.archive.close()

    def chunks(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        """One member's bytes, CHUNK_BYTES at a time, counted against the limit as they are unpacked."""
        try:
            with self.archive.open(info) as stream:
                while chunk := stream.read(CHUNK_BYTES):
                    self.unpacked += len(chunk)
                    if self.unpacked > self.max_total_bytes:
                        raise too_large(self.errors, self.name, self.max_total_bytes)
                    yield chunk
        except _ZIP_FAILURES as exc:
            raise unreadable(self.errors, self.name, exc) from None

    def files(self) -> Iterator[tuple[str, bytes]]:
        """(path inside the zip, bytes) of each member, in zip order, one at a time in memory;
        a member that is itself a zip (whatever its name) is skipped and listed in `nested`."""
        for info, relative in self.members:
            chunks = self.chunks(info)
            first = next(chunks, b"")
            if is_zip(first):
                chunks.close()
                self.nested.append(relative.name)
                continue
            yield str(relative), first + b"".join(chunks)


def open_zip(source, errors: ZipErrors, name: str | None = None, max_total_bytes: int = MAX_TOTAL_BYTES,
             max_files: int = MAX_FILES) -> CheckedZip:
    """Zip bytes, a path or a file object -> CheckedZip; errors.* with an actionable message when
    the zip cannot be read, holds an unsafe member, or declares more than the limits.
    Use it as `with open_zip(...) as checked:`."""
    try:
        archive = zipfile.ZipFile(BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except _ZIP_FAILURES as exc:
        raise unreadable(errors, name, exc) from None
    try:
        members, nested = _checked_members(archive, errors, name, max_total_bytes, max_files)
    except BaseException:
        archive.close()
        raise
    return CheckedZip(archive, members, errors, name, max_total_bytes, nested)


def _checked_members(archive: zipfile.ZipFile, errors: ZipErrors, name: str | None, max_total_bytes: int,
                     max_files: int) -> tuple[list[tuple[zipfile.ZipInfo, PurePosixPath]], list[str]]:
    """Every file entry to read, with its safe relative path, and the nested archives skipped."""
    where = _where(name)
    members, nested, declared = [], [], 0
    for info in archive.infolist():
        path = info.filename.replace("\\", "/")
        if stat.S_ISLNK(info.external_attr >> 16):  # Unix mode bits, set by zip tools on Unix
            raise errors.unsafe(f"{where} holds a symbolic link ({info.filename!r}); links are not followed. "
                                f"Zip the files themselves.")
        if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
            raise errors.unsafe(f"{where} holds an absolute path ({info.filename!r}); zip {errors.contents} "
                                f"again from inside it, so that every path is relative.")
        parts = PurePosixPath(path).parts
        if ".." in parts:
            raise errors.unsafe(f"{where} holds a path that leaves its folder ({info.filename!r}); zip "
                                f"{errors.contents} again from inside it, without '..' in any path.")
        if info.is_dir() or not parts or is_clutter(parts):
            continue
        if path.lower().endswith(NESTED_ARCHIVES):
            nested.append(parts[-1])
            continue
        members.append((info, PurePosixPath(*parts)))
        declared += info.file_size
        if len(members) > max_files:
            raise errors.too_large(f"{where} holds more than {max_files:,} files; {errors.smaller}.")
        if declared > max_total_bytes:
            raise too_large(errors, name, max_total_bytes)
    return members, nested


def _where(name: str | None) -> str:
    return f"{name}: the zip" if name else "The zip"


def too_large(errors: ZipErrors, name: str | None, max_total_bytes: int) -> MriError:
    return errors.too_large(f"{_where(name)} unpacks to more than {megabytes(max_total_bytes)}; {errors.smaller}.")


def unreadable(errors: ZipErrors, name: str | None, exc: BaseException) -> MriError:
    """The zip (or a member) cannot be read -> errors.unreadable saying why and what to do."""
    where = _where(name)
    if isinstance(exc, NotImplementedError):
        return errors.unreadable(f"{where} cannot be opened: it uses a compression this app cannot read ({exc}); "
                                 f"zip {errors.contents} again with standard (deflate) compression.")
    if isinstance(exc, RuntimeError):  # zipfile's word for an encrypted member
        return errors.unreadable(f"{where} cannot be opened: it is encrypted (password-protected); zip "
                                 f"{errors.contents} again without a password.")
    return errors.unreadable(f"{where} cannot be opened: it is not a readable zip file ({exc}); zip "
                             f"{errors.contents} again and upload the new zip.")


def read_zip_files(data: bytes, max_total_bytes: int = MAX_TOTAL_BYTES,
                   max_files: int = MAX_FILES) -> Iterator[tuple[str, bytes]]:
    """Zip bytes -> (path inside the zip, file bytes) per file, in memory, in zip order (the
    Batch page). Every check of `open_zip`; read lazily, one member's bytes at a time."""
    with open_zip(data, BATCH_ZIP, max_total_bytes=max_total_bytes, max_files=max_files) as checked:
        yield from checked.files()


def count_zip_files(data: bytes, max_total_bytes: int = MAX_TOTAL_BYTES, max_files: int = MAX_FILES) -> int:
    """How many files `read_zip_files` will yield at most (reads only the zip's directory; a
    member that turns out to be a zip without a zip's name is skipped when read)."""
    with open_zip(data, BATCH_ZIP, max_total_bytes=max_total_bytes, max_files=max_files) as checked:
        return len(checked.members)
