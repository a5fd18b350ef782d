"""mri_core.training.uploads: safe extraction of uploaded folder-per-class zips (real zips of real
Kaggle slices), the temp folder it lives in, and the sweep of folders a killed server left behind.
The checks themselves are io.zips' (tests/io/test_zips.py); here: what reaches the disk."""

from __future__ import annotations

import stat
import tempfile
import zipfile
from pathlib import Path

import pytest

from mri_core.io.errors import DatasetInvalid
from mri_core.io.zips import MAX_FILES, MAX_TOTAL_BYTES
from mri_core.training import data as datasets
from mri_core.training import uploads
from mri_core.training.uploads import extract_zip, extracted_zip


def zip_images(kaggle_dir: Path, zip_path: Path, per_class: int = 6, top: str = "") -> Path:
    """A zip of `per_class` real slices from Kaggle no/ and yes/, optionally under a top folder."""
    with zipfile.ZipFile(zip_path, "w") as archive:
        for folder in ("no", "yes"):
            for image in sorted((kaggle_dir / folder).iterdir())[:per_class]:
                archive.writestr(f"{top}{folder}/{image.name}", image.read_bytes())
    return zip_path


def add_entry(zip_path: Path, name: str, data: bytes = b"x", mode: int | None = None) -> Path:
    with zipfile.ZipFile(zip_path, "a") as archive:
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        archive.writestr(info, data)
    return zip_path


def test_zip_with_top_folder_extracts_to_a_data_set_discover_reads(kaggle_dir, tmp_path):
    zip_path = zip_images(kaggle_dir, tmp_path / "data.zip", top="brain_mri/")
    add_entry(zip_path, "__MACOSX/brain_mri/no/._x.jpg")
    add_entry(zip_path, "brain_mri/yes/inner.zip", b"PK")

    root = extract_zip(zip_path.read_bytes(), tmp_path / "out")

    assert root == tmp_path / "out" / "brain_mri"
    dataset = datasets.discover([root])
    assert dataset.counts == {"notumor": 6, "tumor": 6}
    assert not (root / "yes" / "inner.zip").exists(), "nested archives are not extracted"
    assert not (tmp_path / "out" / "__MACOSX").exists()


def test_extracted_zip_removes_its_temp_folder_even_after_an_error(kaggle_dir, tmp_path):
    zip_path = zip_images(kaggle_dir, tmp_path / "data.zip", per_class=5)
    with extracted_zip(zip_path) as root:
        assert sorted(p.name for p in root.iterdir()) == ["no", "yes"]
        folder = root
    assert not folder.exists()

    temp_root = Path(tempfile.gettempdir())
    before = set(temp_root.glob("mri-upload-*"))
    add_entry(zip_path, "../evil.txt")
    with pytest.raises(DatasetInvalid):
        with extracted_zip(zip_path):
            pass
    assert set(temp_root.glob("mri-upload-*")) == before, "a refused zip leaves no temp folder behind"


@pytest.mark.parametrize("name, words", [
    ("../../etc/evil.txt", "'..'"),
    ("yes/../../evil.txt", "'..'"),
    ("/etc/evil.txt", "absolute path"),
    ("C:/evil.txt", "absolute path"),
])
def test_paths_that_leave_the_folder_are_refused_before_anything_is_written(kaggle_dir, tmp_path, name, words):
    zip_path = add_entry(zip_images(kaggle_dir, tmp_path / "data.zip", per_class=2), name)
    with pytest.raises(DatasetInvalid, match=words) as caught:
        extract_zip(zip_path, tmp_path / "out")
    assert name in str(caught.value)
    assert not any((tmp_path / "out").rglob("*.jpg")), "nothing is extracted from an unsafe zip"
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_entry_is_refused(kaggle_dir, tmp_path):
    zip_path = add_entry(zip_images(kaggle_dir, tmp_path / "data.zip", per_class=2),
                         "yes/link.jpg", b"/etc/passwd", mode=stat.S_IFLNK | 0o777)
    with pytest.raises(DatasetInvalid, match="symbolic link"):
        extract_zip(zip_path, tmp_path / "out")


def test_declared_size_over_the_cap_is_refused(kaggle_dir, tmp_path):
    zip_path = zip_images(kaggle_dir, tmp_path / "data.zip", per_class=3)
    total = sum(i.file_size for i in zipfile.ZipFile(zip_path).infolist())
    with pytest.raises(DatasetInvalid, match="unpacks to more than"):
        extract_zip(zip_path, tmp_path / "out", max_total_bytes=total - 1)
    assert extract_zip(zip_path, tmp_path / "ok", max_total_bytes=total).is_dir()


def test_header_that_understates_the_size_cannot_exceed_the_cap(tmp_path):
    """A bomb whose headers claim 10 bytes per entry is stopped while streaming."""
    zip_path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("yes/a.bin", b"\0" * 3_000_000)
    raw = bytearray(zip_path.read_bytes())
    # patch the central directory's uncompressed size (offset 24 in the entry) to 10 bytes
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24:central + 28] = (10).to_bytes(4, "little")
    local = raw.find(b"PK\x03\x04")
    raw[local + 22:local + 26] = (10).to_bytes(4, "little")
    with pytest.raises(DatasetInvalid):
        extract_zip(bytes(raw), tmp_path / "out", max_total_bytes=1_000_000)
    written = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written <= 1_000_000


def test_too_many_files_is_refused(kaggle_dir, tmp_path):
    zip_path = zip_images(kaggle_dir, tmp_path / "data.zip", per_class=3)
    with pytest.raises(DatasetInvalid, match="more than 5 files"):
        extract_zip(zip_path, tmp_path / "out", max_files=5)


def test_not_a_zip_says_so(no_tumor_image_path, tmp_path):
    with pytest.raises(DatasetInvalid, match="not a readable zip"):
        extract_zip(no_tumor_image_path.read_bytes(), tmp_path / "out")


def test_empty_zip_says_it_holds_no_images(tmp_path):
    zip_path = tmp_path / "empty.zip"
    zipfile.ZipFile(zip_path, "w").close()
    with pytest.raises(DatasetInvalid, match="no images"):
        extract_zip(zip_path, tmp_path / "out")


def test_a_zip_inside_the_zip_is_never_extracted_whatever_its_name(kaggle_dir, tmp_path):
    zip_path = zip_images(kaggle_dir, tmp_path / "data.zip", per_class=2)
    inner = tmp_path / "inner.zip"
    zip_images(kaggle_dir, inner, per_class=1)
    add_entry(zip_path, "yes/IM0001", inner.read_bytes())  # a zip without a zip's name
    add_entry(zip_path, "yes/more.zip", inner.read_bytes())
    root = extract_zip(zip_path, tmp_path / "out")
    assert sorted(p.name for p in (root / "yes").iterdir()) == sorted(
        p.name for p in sorted((kaggle_dir / "yes").iterdir())[:2])


def test_training_zips_share_the_one_set_of_limits():
    import inspect

    for function in (extract_zip, extracted_zip):
        defaults = {name: p.default for name, p in inspect.signature(function).parameters.items()}
        assert (defaults["max_total_bytes"], defaults["max_files"]) == (MAX_TOTAL_BYTES, MAX_FILES)


def test_upload_folders_of_a_process_that_died_are_swept_and_live_ones_kept(tmp_path, monkeypatch):
    """A server killed mid-training cannot remove its unpacked zip; the next Train page does."""
    import os
    import subprocess
    import sys


    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    child = subprocess.run(
        [sys.executable, "-c", "from mri_core.training import uploads; print(uploads.make_temp_folder())"],
        capture_output=True, text=True, check=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    orphan = Path(child.stdout.strip())
    (orphan / "notumor").mkdir()
    mine = uploads.make_temp_folder()
    unrelated = tmp_path / "other-folder"
    unrelated.mkdir()
    assert orphan.parent == tmp_path and orphan.is_dir()
    assert uploads.remove_orphaned_uploads() == [orphan]
    assert not orphan.exists() and mine.is_dir() and unrelated.is_dir()
