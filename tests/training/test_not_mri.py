"""A run given a not-MRI folder records how often the shipped brain check refuses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from subsets import first_images, link_images

from mri_core.training.not_mri import not_mri_figures, not_mri_split

MANIFEST = Path(__file__).resolve().parents[2] / "bench" / "splits" / "mri-v2.json"


def test_the_head_ct_is_split_by_the_manifest_and_refused_by_the_check(head_ct_dir, tiny_model):
    dataset, split = not_mri_split(head_ct_dir, str(MANIFEST), seed=0)
    assert set(split.values()) == {"train", "val", "test"} and len(split) == len(dataset.records)
    figures = not_mri_figures(head_ct_dir, str(MANIFEST), 0, tiny_model.keras_model, tiny_model.image_size,
                              1.0, np.array([0.0, 1.0], np.float32), 0.5, False)
    test = figures["test"]
    assert test["refused"]["n"] == sum(side == "test" for side in split.values())
    assert test["refused"]["rate"] >= 0.9  # the shipped check, not the tiny model, refuses head CT
    assert figures["check"]["path"] == "brain-mri"


def test_without_a_manifest_the_folder_is_split_by_near_duplicate_group(head_ct_dir, tmp_path):
    folder = tmp_path / "ct"
    link_images(first_images(head_ct_dir, 30), folder)
    dataset, split = not_mri_split(folder, None, seed=0)
    assert len(split) == 30 and {"train", "test"} <= set(split.values())
