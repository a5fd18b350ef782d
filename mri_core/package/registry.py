"""Where model packages live: shipped ones (read-only, in git) and trained ones (the registry).

A package is a folder with `model.keras` and `model.json` (and, for shipped ones,
`MODEL_CARD.md`). Shipped packages sit in `assets/models/<name>/`; `assets/models/DEFAULT`
names the one used when the user has activated nothing. Trained packages live under
`$MRI_HOME/models/<name>/v<version>/`, outside git. Writing is atomic: the package is
written into a temp folder inside `$MRI_HOME/models` and renamed into place, never onto an
existing version, so a crash mid-save leaves nothing that `list_models` would list.
Never imports streamlit or tensorflow.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mri_core.io.atomic import write_text_atomic
from mri_core.io.errors import ModelInvalid, ModelNotFound, SettingsInvalid
from mri_core.package import activation

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DIR = PROJECT_ROOT / "assets" / "models"
MODEL_FILE, INFO_FILE, CARD_FILE = "model.keras", "model.json", "MODEL_CARD.md"
ACTIVE_FILE = "active.json"
_TEMP_PREFIX = ".partial-"
# A save or delete takes seconds: a staging folder this old was left by a killed process.
STALE_PARTIAL_S = 3600
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ModelEntry:
    """One model package on disk."""

    name: str
    version: int
    path: Path
    shipped: bool
    info: dict

    @property
    def ref(self) -> str:
        """`name@version`, the id printed in every reading."""
        return f"{self.name}@{self.version}"


def mri_home() -> Path:
    """The registry folder: $MRI_HOME, else the user's data folder (XDG)."""
    configured = os.environ.get("MRI_HOME")
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "mri-screen"


def models_dir() -> Path:
    return mri_home() / "models"


def check_model_name(name: str) -> str:
    if not _NAME_PATTERN.match(name or ""):
        raise SettingsInvalid(
            f"Model name {name!r} is not allowed; use 1-64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit."
        )
    return name


def read_info(package: Path) -> dict:
    """model.json of a package folder, or ModelInvalid saying what is wrong."""
    info_path = Path(package) / INFO_FILE
    if not info_path.is_file():
        raise ModelInvalid(f"{package} is not a model package: it has no {INFO_FILE}.")
    if not (Path(package) / MODEL_FILE).is_file():
        raise ModelInvalid(f"{package} is not a complete model package: it has no {MODEL_FILE}.")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelInvalid(f"{info_path} cannot be read as JSON ({exc}); restore the package from a backup or retrain it.") from exc
    if not isinstance(info, dict) or "name" not in info or "version" not in info:
        raise ModelInvalid(f"{info_path} lacks the 'name' and 'version' keys; it is not a model package this app wrote.")
    return info


def _entry(package: Path, shipped: bool) -> ModelEntry:
    info = read_info(package)
    return ModelEntry(str(info["name"]), int(info["version"]), Path(package), shipped, info)


def _packages_under(folder: Path, shipped: bool) -> list[ModelEntry]:
    entries = []
    if not folder.is_dir():
        return entries
    for info_path in sorted(folder.glob(f"**/{INFO_FILE}")):
        if any(part.startswith(_TEMP_PREFIX) for part in info_path.relative_to(folder).parts):
            continue  # a save in progress, or one a crash interrupted
        try:
            entries.append(_entry(info_path.parent, shipped))
        except ModelInvalid:
            continue  # listed packages must be loadable; damaged ones are skipped
    return entries


def list_models() -> list[ModelEntry]:
    """Every shipped and trained package, shipped first, then by name and version."""
    shipped = _packages_under(SHIPPED_DIR, shipped=True)
    trained = sorted(_packages_under(models_dir(), shipped=False), key=lambda e: (e.name, e.version))
    return shipped + trained


def default_shipped() -> ModelEntry:
    """The shipped package named in assets/models/DEFAULT."""
    marker = SHIPPED_DIR / "DEFAULT"
    if not marker.is_file():
        raise ModelNotFound(f"No default model is shipped ({marker} is missing); train one with `python -m mri_core train`.")
    return _entry(SHIPPED_DIR / marker.read_text().strip(), shipped=True)


def resolve(ref: str | os.PathLike) -> ModelEntry:
    """A package folder path, `name` (newest version) or `name@version` -> its entry."""
    as_path = Path(ref)
    if as_path.is_dir():
        shipped = SHIPPED_DIR in as_path.resolve().parents
        return _entry(as_path, shipped)
    name, _, version = str(ref).partition("@")
    matches = [e for e in list_models() if e.name == name and (not version or str(e.version) == version)]
    if not matches:
        known = ", ".join(e.ref for e in list_models()) or "none"
        raise ModelNotFound(f"No model {ref!r}. Known models: {known}. Pass a name, name@version or a package folder.")
    return max(matches, key=lambda e: (not e.shipped, e.version))


def active() -> ModelEntry:
    """The model the app uses: the user's activated one, else the shipped default."""
    pointer = mri_home() / ACTIVE_FILE
    if pointer.is_file():
        try:
            return resolve(json.loads(pointer.read_text())["ref"])
        except (ModelNotFound, ModelInvalid, KeyError, ValueError, OSError):
            pass  # the activated model was deleted or damaged: fall back to the default
    return default_shipped()


def activation_problems(entry: ModelEntry) -> list[str]:
    """Why `entry` should not become the active model without a confirmation (`activation`'s rule); [] when none."""
    return activation.problems(entry.path, entry.info)


def activate(ref: str | os.PathLike, confirm: bool = False) -> ModelEntry:
    """Make `ref` the active model (atomic pointer write).

    A model that fails the activation rule (`activation.problems`: no out-of-distribution
    statistics, too few test images per class, low sensitivity or accuracy, poor calibration)
    is refused with `activation.NeedsConfirmation`, which lists the reasons, unless `confirm`.
    """
    entry = resolve(ref)
    found = activation_problems(entry)
    if found and not confirm:
        raise activation.NeedsConfirmation(entry.ref, found)
    home = mri_home()
    home.mkdir(parents=True, exist_ok=True)
    # a package outside the registry and assets/models is remembered by its folder
    listed = any(e.path.resolve() == entry.path.resolve() for e in list_models())
    ref_text = entry.ref if listed else str(entry.path.resolve())
    write_text_atomic(home / ACTIVE_FILE, json.dumps({"ref": ref_text}) + "\n")
    return entry


def next_version(name: str) -> int:
    folder = models_dir() / name
    versions = [int(p.name[1:]) for p in folder.glob("v*") if p.name[1:].isdigit()] if folder.is_dir() else []
    return max(versions, default=0) + 1


def save_package(name: str, info: dict, write_files: Callable[[Path], None]) -> ModelEntry:
    """Write a new version of `name` atomically and return its entry.

    `write_files(folder)` writes `model.keras` (and anything else) into a temp folder;
    `model.json` is written here with `name`, `version` and `path` filled in. The folder
    is then renamed to `models/<name>/v<version>`; if another process took that version
    first, the next free one is used. On any error the temp folder is removed.
    """
    check_model_name(name)
    root = models_dir()
    (root / name).mkdir(parents=True, exist_ok=True)
    remove_stale_partials()
    staging = Path(tempfile.mkdtemp(dir=root, prefix=_TEMP_PREFIX))
    try:
        write_files(staging)
        for _ in range(100):
            version = next_version(name)
            info = {**info, "name": name, "version": version}
            (staging / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
            _fsync_tree(staging)
            try:
                os.rename(staging, root / name / f"v{version}")  # fails if that version exists
            except OSError:
                continue
            return _entry(root / name / f"v{version}", shipped=False)
        raise ModelInvalid(f"Could not find a free version number for {name!r} in {root}.")
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def remove_stale_partials(max_age_s: float = STALE_PARTIAL_S) -> list[Path]:
    """Remove the models folder's staging folders older than max_age_s (a killed save or delete) -> them."""
    root, now, removed = models_dir(), time.time(), []
    for staging in root.glob(f"{_TEMP_PREFIX}*") if root.is_dir() else []:
        try:
            if staging.is_dir() and now - staging.stat().st_mtime > max_age_s:
                shutil.rmtree(staging, ignore_errors=True)
                removed.append(staging)
        except FileNotFoundError:
            continue  # another process removed it first
    return removed


def _fsync_tree(folder: Path) -> None:
    for file in folder.iterdir():
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())


def delete(ref: str | os.PathLike) -> ModelEntry:
    """Delete a trained package for good and return its entry; never a shipped or the active one.

    The version folder is first renamed to a `.partial-` name inside the models folder (one
    atomic step that `list_models` skips), then removed, so a crash mid-delete never leaves a
    half package that lists or loads.
    """
    entry = resolve(ref)
    if entry.shipped:
        raise SettingsInvalid(f"{entry.ref} is shipped with the app and cannot be deleted; only models you trained can be.")
    root = models_dir()
    if root.resolve() not in entry.path.resolve().parents:
        raise ModelNotFound(f"{entry.path} is not in the model registry ({root}); only trained models listed there can be deleted.")
    try:
        current = active().path.resolve()
    except (ModelNotFound, ModelInvalid):
        current = None  # nothing is active, so nothing needs protecting
    if current == entry.path.resolve():
        raise SettingsInvalid(f"{entry.ref} is the active model; activate another model first, then delete it.")
    doomed = Path(tempfile.mkdtemp(dir=root, prefix=f"{_TEMP_PREFIX}delete-"))
    os.rename(entry.path, doomed / entry.path.name)  # same file system: atomic
    shutil.rmtree(doomed, ignore_errors=True)
    return entry
