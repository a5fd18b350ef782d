"""Fixtures of the training tests: the Kaggle set discovered once, and its near-duplicate groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mri_core.training.data import Dataset, discover
from mri_core.training.duplicates import group_near_duplicates


@pytest.fixture(scope="module")
def kaggle(kaggle_dir: Path) -> Dataset:
    return discover([kaggle_dir])


@pytest.fixture(scope="module")
def kaggle_groups(kaggle: Dataset) -> np.ndarray:
    return group_near_duplicates(kaggle.records)
