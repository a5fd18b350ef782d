"""mri_core.io.atomic: the one atomic writer. A reader sees the old file or the new one, never half
of one; a write that fails leaves the old file and no temp file."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from mri_core.io.atomic import TEMP_PREFIX, replace_atomic, write_bytes_atomic, write_text_atomic

OLD, NEW = b"o" * 1_000_000, b"n" * 2_000_000


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))


def test_while_the_new_content_is_written_the_file_holds_the_old_content_whole(tmp_path):
    target = tmp_path / "model.json"
    target.write_bytes(OLD)
    seen = []

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            handle.write(NEW[: len(NEW) // 2])
            handle.flush()
            seen.append(target.read_bytes())  # half the new content is on disk, in the temp file
            handle.write(NEW[len(NEW) // 2:])
        assert tmp.parent == target.parent  # the same file system: the rename is one step

    replace_atomic(target, write)
    assert seen == [OLD]
    assert target.read_bytes() == NEW and leftovers(tmp_path) == []


def test_a_reader_never_sees_half_a_file_while_it_is_replaced_again_and_again(tmp_path):
    target = tmp_path / "active"
    write_bytes_atomic(target, OLD)
    stop, torn, reads = threading.Event(), [], [0]

    def reader():
        while not stop.is_set():
            content = target.read_bytes()
            reads[0] += 1
            if content not in (OLD, NEW):
                torn.append(len(content))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(30):
            write_bytes_atomic(target, NEW if i % 2 == 0 else OLD)
    finally:
        stop.set()
        thread.join()
    assert reads[0] > 0 and torn == []
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failing_write_leaves_the_old_file_and_no_temp_file(tmp_path, failure):
    target = tmp_path / "ood.npz"
    target.write_bytes(OLD)

    def write(tmp: Path) -> None:
        tmp.write_bytes(NEW[:1000])  # part of the new content, then the failure
        raise failure

    with pytest.raises(type(failure)):
        replace_atomic(target, write)
    assert target.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def test_a_failing_first_write_leaves_no_file_at_all(tmp_path):
    def write(tmp: Path) -> None:
        raise ValueError("cannot serialise")

    with pytest.raises(ValueError):
        replace_atomic(tmp_path / "job.json", write)
    assert list(tmp_path.iterdir()) == []


def test_text_and_bytes_round_trip_with_sensible_modes(tmp_path):
    text_path, bytes_path = tmp_path / "pointer.txt", tmp_path / "cache.bin"
    write_text_atomic(text_path, "default-4class@4 · é\n")
    write_bytes_atomic(bytes_path, NEW)
    assert text_path.read_text(encoding="utf-8") == "default-4class@4 · é\n" and bytes_path.read_bytes() == NEW
    assert stat.S_IMODE(text_path.stat().st_mode) == 0o644  # not mkstemp's 0600: others may read it
    os.chmod(text_path, 0o640)
    write_text_atomic(text_path, "default-4class@5\n")
    assert stat.S_IMODE(text_path.stat().st_mode) == 0o640  # a replaced file keeps its mode
    assert text_path.read_text(encoding="utf-8") == "default-4class@5\n"
