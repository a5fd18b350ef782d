"""mri_core.io.zips: the one zip reader. Its checks and its one set of limits hold for every zip a
user can upload (a scan, a batch of slices, a training data set), each caller raising its own
error types with a message that names the problem and what to do. Real zips of real Kaggle slices;
what a training zip writes to disk is in tests/training/test_uploads.py."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from mri_core.io.errors import DatasetInvalid, ImageTooLarge, UnreadableImage, UnsupportedFormat
from mri_core.io.slices import SCAN_ZIP, read_volumes
from mri_core.io.zips import (BATCH_ZIP, MAX_FILES, MAX_TOTAL_BYTES, count_zip_files, open_zip,
                              read_zip_files)
from mri_core.training.uploads import DATASET_ZIP, extract_zip


def zip_of(members: list[tuple[str, bytes]], modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if modes and name in modes:
                info.external_attr = modes[name] << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def patched(data: bytes, local_offset: int, central_offset: int, value: bytes) -> bytes:
    """The zip with `value` written at the given offsets of its (first) local and central headers."""
    raw = bytearray(data)
    local, central = raw.find(b"PK\x03\x04"), raw.rfind(b"PK\x01\x02")
    raw[local + local_offset:local + local_offset + len(value)] = value
    raw[central + central_offset:central + central_offset + len(value)] = value
    return bytes(raw)


def declaring(size: int) -> bytes:
    """A one-member zip whose headers declare `size` bytes uncompressed around 1 real byte."""
    return patched(zip_of([("IM0001", b"x")]), 22, 24, struct.pack("<I", size))


@pytest.fixture(scope="module")
def images(kaggle_dir: Path) -> list[tuple[str, bytes]]:
    """Two real slices of each Kaggle class, as (path inside a zip, bytes)."""
    return [(f"study/{folder}/{p.name}", p.read_bytes())
            for folder in ("no", "yes") for p in sorted((kaggle_dir / folder).iterdir())[:2]]


# Every zip a user can upload, through the entry point it reaches: (read it, the errors it raises).
CALLERS = {
    "scan upload": (lambda data, tmp: read_volumes([("upload.zip", data)]), SCAN_ZIP),
    "batch upload": (lambda data, tmp: list(read_zip_files(data)), BATCH_ZIP),
    "training zip": (lambda data, tmp: extract_zip(data, tmp / "out"), DATASET_ZIP),
}


def test_the_error_types_of_each_caller():
    assert (SCAN_ZIP.unsafe, SCAN_ZIP.unreadable, SCAN_ZIP.too_large) == (UnsupportedFormat, UnreadableImage, ImageTooLarge)
    assert {BATCH_ZIP.unsafe, BATCH_ZIP.unreadable, BATCH_ZIP.too_large} == {DatasetInvalid}
    assert {DATASET_ZIP.unsafe, DATASET_ZIP.unreadable, DATASET_ZIP.too_large} == {DatasetInvalid}


def test_each_file_is_read_once_in_zip_order_without_clutter_or_nested_zips(images):
    inner = zip_of(images[:1])
    data = zip_of([*images[:2], ("__MACOSX/study/no/._x.jpg", b"fork"), ("study/.DS_Store", b"\0\0\0\1Bud1"),
                   ("study/Thumbs.db", b"x"), ("study/more.zip", inner), ("study/IM0009", inner), *images[2:]])
    assert [(name, content) for name, content in read_zip_files(data)] == images
    assert count_zip_files(data) == len(images) + 1  # the directory alone cannot tell IM0009 is a zip
    with open_zip(data, BATCH_ZIP) as checked:
        assert [name for name, _ in checked.files()] == [name for name, _ in images]
        assert checked.nested == ["more.zip", "IM0009"]
        assert checked.unpacked == sum(len(content) for _, content in images) + len(inner)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("member, words", [
    ("../../etc/IM0001", "path that leaves its folder ('../../etc/IM0001'); zip "),
    ("study/../../IM0001", "without '..' in any path"),
    ("/etc/IM0001", "absolute path ('/etc/IM0001')"),
    ("C:/IM0001", "absolute path"),
    ("study/link", "symbolic link ('study/link'); links are not followed"),
])
def test_unsafe_members_are_refused_before_anything_is_read(caller, member, words, images, tmp_path):
    read, errors = CALLERS[caller]
    data = zip_of([*images, (member, b"/etc/passwd")], modes={"study/link": stat.S_IFLNK | 0o777})
    with pytest.raises(errors.unsafe, match=words.replace("(", r"\(").replace(")", r"\)")):
        read(data, tmp_path)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.jpg"))


@pytest.fixture(scope="module")
def too_many_files() -> bytes:
    """A zip of MAX_FILES + 1 one-byte files (MAX_FILES: 20,000)."""
    return zip_of([(f"series/IM{i:05d}", b"x") for i in range(MAX_FILES + 1)])


def test_one_set_of_limits():
    assert (MAX_TOTAL_BYTES, MAX_FILES) == (1024**3, 20_000)


@pytest.mark.parametrize("caller", CALLERS)
def test_more_files_than_the_limit_are_refused_for_every_upload(caller, too_many_files, tmp_path):
    read, errors = CALLERS[caller]
    with pytest.raises(errors.too_large, match="holds more than 20,000 files; ") as caught:
        read(too_many_files, tmp_path)
    assert errors.smaller in str(caught.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("IM*"))


@pytest.mark.parametrize("caller", CALLERS)
def test_a_zip_declaring_more_than_1_gib_is_refused_for_every_upload_before_unpacking(caller, tmp_path):
    read, errors = CALLERS[caller]
    with pytest.raises(errors.too_large, match="unpacks to more than 1,024 MB; "):
        read(declaring(MAX_TOTAL_BYTES + 1), tmp_path)


def test_the_limits_count_the_bytes_really_unpacked_not_the_headers(images):
    """A header that understates its size cannot unpack more than the limit allows."""
    data = zip_of([("yes/a.bin", b"\0" * 3_000_000)])
    lying = patched(data, 22, 24, (10).to_bytes(4, "little"))  # claims 10 bytes
    with open_zip(lying, SCAN_ZIP, "lying.zip", max_total_bytes=1_000_000) as checked:
        with pytest.raises((UnreadableImage, ImageTooLarge), match="lying.zip: the zip"):
            list(checked.files())
        assert checked.unpacked <= 1_000_000
    honest = zip_of(images)
    total = sum(len(content) for _, content in images)
    with open_zip(honest, SCAN_ZIP, "a.zip", max_total_bytes=total) as checked:
        assert len(list(checked.files())) == len(images) and checked.unpacked == total
    with pytest.raises(ImageTooLarge, match="unpacks to more than"):
        open_zip(honest, SCAN_ZIP, "a.zip", max_total_bytes=total - 1)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("damage, words", [
    ("not a zip", "cannot be opened: it is not a readable zip file"),
    ("encrypted", "cannot be opened: it is encrypted .*again without a password"),
    ("unknown compression", "cannot be opened: it uses a compression .*standard \\(deflate\\) compression"),
])
def test_a_zip_that_cannot_be_read_says_why_and_what_to_do(caller, damage, words, images, tmp_path):
    read, errors = CALLERS[caller]
    data = zip_of(images[:1])
    data = {"not a zip": b"PK\x03\x04" + bytes(200),
            "encrypted": patched(data, 6, 8, b"\x01\x00"),  # general purpose flag bit 0
            "unknown compression": patched(data, 8, 10, (97).to_bytes(2, "little"))}[damage]
    with pytest.raises(errors.unreadable, match=words) as caught:
        read(data, tmp_path)
    assert errors.contents in str(caught.value)


def test_a_scan_zip_of_only_zips_or_of_nothing_says_what_to_upload(images):
    inner = zip_of(images[:1])
    with pytest.raises(UnsupportedFormat, match=r"upload.zip: holds only other zips \(a.zip, IM0001\)"):
        read_volumes([("upload.zip", zip_of([("a.zip", inner), ("IM0001", inner)]))])
    with pytest.raises(UnsupportedFormat, match="upload.zip: the zip holds no files"):
        read_volumes([("upload.zip", zip_of([("__MACOSX/._a", b"x")]))])
