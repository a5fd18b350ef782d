"""The shipped default model, read through the CLI's reading path on the committed test split.

Per stratum of `bench/splits/mri-v2.json` (source x class x plane) with at least MIN_STRATUM
test images, a seeded sample of PER_STRATUM of them (all of the head CT and all 32 outlined
Br35H tumors) is read as the app reads an upload. The bounds below are stated for those
samples; `bench/accuracy.py` measures every test image with intervals (README, model card). A
model that calls everything "tumor" fails the healthy bound in every healthy stratum; one that
calls nothing fails the missed-tumor bound; one that reads a CT fails the head-CT bound; one
whose mask is noise fails the Dice bound.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mri_core.inference.model import load_model
from mri_core.inference.stream import read_paths
from mri_core.package import registry
from mri_core.training import strata
from mri_core.training.splits import read_manifest

MANIFEST = Path(__file__).resolve().parents[2] / "bench" / "splits" / "mri-v2.json"
PER_STRATUM = 24
MIN_STRATUM = 30
# Bounds on the samples (the targets on the whole split, in brackets, are measured by bench/accuracy.py):
MAX_HEALTHY_CALLED_TUMOR = 0.125  # per healthy stratum: at most 3 of 24 (target 7 %)
MAX_MISSED = 0.05  # per tumor source with >= MIN_STRATUM test tumors (target 2 %)
MIN_CT_CANNOT_READ = 0.90  # every head-CT test image (target 95 %)
MAX_MRI_CANNOT_READ = 0.03  # (target 2 %)
# mean over outlined tumor slices; default-4class-seg@3 reaches 0.783 / 0.673 on the whole split (@2 0.780 / 0.621),
# short of the targets 0.80 / 0.70 (docs/notes/issue-21.md): these bounds guard what it does, not what it should
MIN_DICE = {"brisc2025": 0.70, "br35h-extra": 0.55}


@pytest.fixture(scope="module")
def read(data_root):
    manifest = read_manifest(MANIFEST)
    every = strata.manifest_items(manifest, data_root, "test")
    keys = [f"{i.source}/{i.class_name}/{i.plane}" for i in every]
    big = {key for key in set(keys) if keys.count(key) >= MIN_STRATUM}
    rng = np.random.default_rng(0)
    chosen = []
    for key in sorted(big):
        members = [n for n, k in enumerate(keys) if k == key]
        chosen += rng.permutation(members)[:PER_STRATUM].tolist()
    chosen += [n for n, item in enumerate(every) if not item.is_mri or (item.source == "br35h-extra" and item.mask_path)]
    items = [every[n] for n in sorted(set(chosen))]
    scan_model = load_model(registry.default_shipped())
    readings = [outcome for _, outcome in read_paths(scan_model, [i.path for i in items])]
    return items, readings, big


def test_healthy_slices_of_every_source_and_plane_are_seldom_called_tumor(read):
    items, readings, big = read
    figures = strata.verdict_figures(items, readings)
    judged = {s: e for s, e in figures["healthy_strata"].items() if any(k.startswith(s.split("/")[0] + "/notumor")
                                                                        and k.endswith("/" + s.split("/")[1]) for k in big)}
    assert len(judged) >= 4  # brisc2025 axial, coronal, sagittal and brain-tumor-mri-224
    for stratum, entry in judged.items():
        assert entry["called_tumor"]["rate"] <= MAX_HEALTHY_CALLED_TUMOR, (stratum, entry["called_tumor"])


def test_tumors_of_every_source_are_not_called_healthy(read):
    items, readings, _ = read
    figures = strata.verdict_figures(items, readings)
    judged = {s: e for s, e in figures["tumor_sources"].items() if e["missed"]["n"] >= MIN_STRATUM}
    assert {"brisc2025", "figshare-boxes", "brain-tumor-mri-224", "br35h-extra"} <= set(judged)
    for source, entry in judged.items():
        assert entry["missed"]["rate"] <= MAX_MISSED, (source, entry["missed"])


def test_head_ct_cannot_be_read_and_mri_can(read):
    figures = strata.verdict_figures(*read[:2])
    assert figures["not_mri_cannot_read"]["n"] >= 50
    assert figures["not_mri_cannot_read"]["rate"] >= MIN_CT_CANNOT_READ
    assert figures["mri_cannot_read"]["rate"] <= MAX_MRI_CANNOT_READ


def test_the_mask_outlines_the_tumor(read):
    items, readings, _ = read
    figures = strata.segmentation_figures(items, readings)
    for source, minimum in MIN_DICE.items():
        assert figures[source]["n"] >= 20
        assert figures[source]["mask"]["mean_dice"] >= minimum, (source, figures[source]["mask"])
