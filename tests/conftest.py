"""Shared fixtures: where the real MRI data lives, and how to behave without it.

Tests that need `../shared/data` fail loudly when `CI` is set and the data is
missing; elsewhere they skip with a clear reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from subsets import link_subset

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("MRI_DATA", PROJECT_ROOT.parent / "shared" / "data"))
KAGGLE = DATA_ROOT / "kaggle-brain-mri"
TYPED_224 = DATA_ROOT / "brain-tumor-mri-224"
FIGSHARE = DATA_ROOT / "figshare-boxes"
BRISC = DATA_ROOT / "brisc2025"
BR35H_EXTRA = DATA_ROOT / "br35h-extra"
HEAD_CT = DATA_ROOT / "not-mri" / "head-ct"


def require_data(path: Path = DATA_ROOT) -> Path:
    """Return `path`, or fail (in CI) / skip (elsewhere) when it is missing."""
    if path.exists():
        return path
    message = f"real MRI data not found at {path} (set MRI_DATA or place ../shared/data)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def data_root() -> Path:
    return require_data(DATA_ROOT)


@pytest.fixture(scope="session")
def kaggle_dir() -> Path:
    return require_data(KAGGLE)


@pytest.fixture(scope="session")
def typed_dir() -> Path:
    return require_data(TYPED_224)


@pytest.fixture(scope="session")
def figshare_dir() -> Path:
    return require_data(FIGSHARE)


@pytest.fixture(scope="session")
def brisc_dir() -> Path:
    return require_data(BRISC)


@pytest.fixture(scope="session")
def head_ct_dir() -> Path:
    return require_data(HEAD_CT)


@pytest.fixture(scope="session")
def tumor_image_path(kaggle_dir: Path) -> Path:
    """A real tumor slice (Kaggle `yes/`)."""
    return kaggle_dir / "yes" / "Y1.jpg"


@pytest.fixture(scope="session")
def no_tumor_image_path(kaggle_dir: Path) -> Path:
    """A real slice without tumor (Kaggle `no/`)."""
    return sorted((kaggle_dir / "no").iterdir())[0]


@pytest.fixture(autouse=True)
def _isolated_registry(tmp_path_factory, monkeypatch):
    """Every test gets its own empty model registry: never touch the user's."""
    monkeypatch.setenv("MRI_HOME", str(tmp_path_factory.mktemp("mri_home")))


@pytest.fixture(scope="session")
def small_kaggle(kaggle_dir: Path, tmp_path_factory) -> Path:
    """30 `yes` and 30 `no` real Kaggle slices, as a folder-per-class data set."""
    return link_subset(kaggle_dir, tmp_path_factory.mktemp("small_kaggle"), per_class=30)


@pytest.fixture(scope="session")
def tiny_model_dir(small_kaggle: Path, tmp_path_factory) -> Path:
    """A real `paper` model package trained for 2 epochs at 64 px on `small_kaggle`."""
    import json

    from mri_core.training.recipes import TrainSettings
    from mri_core.training.train import train

    result = train([small_kaggle], TrainSettings(arch="paper", epochs=2, image_size=64, seed=0))
    folder = tmp_path_factory.mktemp("tiny_model")
    result.keras_model.save(folder / "model.keras")
    (folder / "model.json").write_text(json.dumps({**result.info, "name": "tiny", "version": 1}))
    return folder


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    from mri_core.inference.model import load_model

    return load_model(tiny_model_dir)


@pytest.fixture
def no_leftover_job():
    """Cancel and wait for any training job a test left running (jobs are process-wide)."""
    yield
    from mri_core.training import jobs

    job = jobs.current_job()
    if job is not None:
        job.cancel()
        job.wait(300)
