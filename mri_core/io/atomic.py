"""The one atomic file writer: a reader sees the old file or the new one, never half of one.

Every file the app keeps (the active-model pointer, model.json and ood.npz of a refitted
package, checkpoint pointers, the data-set cache, job records) is written through
`replace_atomic`: into a temp file in the same folder, flushed to disk, then renamed over
the target in one step. Folders (a model package, a checkpoint) are staged whole and
renamed by their owners (`package.registry.save_package`, `training.checkpoint.save`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

TEMP_PREFIX = ".partial-"


def replace_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """`write(tmp)` writes the new content to `tmp`; then it replaces `path` in one step.

    The temp file lives beside `path` (same file system, so the rename is atomic) and is
    removed if anything fails. A new file gets mode 0644; a replaced one keeps its mode.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with UTF-8 `text` in one step."""
    replace_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` with `data` in one step."""
    replace_atomic(path, lambda tmp: tmp.write_bytes(data))
