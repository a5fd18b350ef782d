"""Training the "is this a brain MRI?" check: data, made-up negatives, variation, threshold rule, package."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mri_core.inference import brain_check as bc
from mri_core.io.errors import DatasetInvalid
from mri_core.training import brain_check_fit as fit
from mri_core.training import splits

PROJECT = Path(__file__).resolve().parents[2]
MANIFEST = PROJECT / "bench" / "splits" / "mri-v2.json"


# --- the manifest's images ------------------------------------------------------------------

def test_manifest_items_name_every_image_with_its_kind_and_stratum(tmp_path):
    manifest = splits.read_manifest(MANIFEST)
    items = fit.manifest_items(tmp_path, manifest)
    assert len(items) == len(manifest["images"]) + len(manifest["not_mri"])
    test_ct = [i for i in items if i.kind == fit.HEAD_CT and i.split == "test" and i.stratum == "head-ct"]
    assert len(test_ct) == 76 and all(i.path.parent == tmp_path / "not-mri" / "head-ct" for i in test_ct)
    filed = {i.path.relative_to(tmp_path).as_posix(): i for i in items if i.stratum == fit.FILED_AS_MRI_STRATUM}
    assert set(filed) == set(fit.FILED_AS_MRI_HEAD_CT.values()) and all(i.kind == fit.HEAD_CT for i in filed.values())
    strata = {i.stratum for i in items if i.kind == fit.MRI}
    assert strata == {"br35h-extra", "brain-tumor-mri-224", "figshare-boxes", "kaggle-brain-mri",
                      "brisc2025/axial", "brisc2025/coronal", "brisc2025/sagittal"}


def test_a_manifest_without_head_ct_is_refused(tmp_path):
    manifest = json.loads(MANIFEST.read_text())
    for key in ("not_mri", "not_mri_hash", "not_mri_counts"):
        manifest.pop(key)
    path = tmp_path / "mri-only.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(DatasetInvalid, match="no not_mri section"):
        fit.fit_check(tmp_path, path, epochs=1, limit_per_split=2)
    with pytest.raises(DatasetInvalid):
        fit.fit_check(tmp_path, tmp_path / "missing.json", epochs=1)


# --- made-up negatives and variation --------------------------------------------------------

def test_made_up_negatives_are_seeded_grey_slices_of_every_kind():
    pytest.importorskip("skimage.data")
    images, kinds = fit.synthetic_negatives(27, seed=5)
    again, _ = fit.synthetic_negatives(27, seed=5)
    other, _ = fit.synthetic_negatives(27, seed=6)
    assert set(kinds) == set(fit.SYNTHETIC_KINDS) and kinds.count("photo") == 2 * kinds.count("noise")
    for image in images:
        assert image.ndim == 2 and image.dtype == np.float32 and min(image.shape) >= 2
        assert np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
    assert all(np.array_equal(a, b) for a, b in zip(images, again))
    assert not all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(images, other))
    text = [image for image, kind in zip(images, kinds) if kind == "document"]
    assert all(image.mean() > 0.6 and image.min() < 0.4 for image in text)  # dark text on a light page


def test_photos_of_every_kind_load_as_grey():
    pytest.importorskip("skimage.data")
    for name in ("astronaut", "logo", "binary_blobs", "camera"):  # RGB, RGBA, bool, grey
        photo = fit.photo_grey(name)
        assert photo.ndim == 2 and photo.dtype == np.float32 and 0 <= photo.min() < photo.max() <= 1
    assert not set(fit.TRAIN_PHOTOS) & set(fit.HELD_OUT_PHOTOS)


def test_variation_keeps_a_real_slice_a_grey_work_image(data_root):
    pixels = bc.work_image(next(iter(_real_slices(data_root, 1))))
    varied = [fit.vary(pixels, np.random.default_rng(seed)) for seed in range(20)]
    for image in varied:
        assert image.shape == pixels.shape and image.dtype == np.float32 and image.flags["C_CONTIGUOUS"]
        assert image.min() >= 0 and image.max() <= 1
    assert np.array_equal(varied[0], fit.vary(pixels, np.random.default_rng(0)))
    assert sum(not np.array_equal(image, pixels) for image in varied) >= 15


def test_a_rare_source_is_copied_up_to_the_floor_and_its_copies_are_varied(data_root):
    """Kaggle and Br35H are a few hundred of 8,000 training slices: each stratum is seen at least
    the floor's number of times an epoch, the copies varied, a common stratum once."""
    strata = ["rare"] * 3 + ["common"] * 10
    assert fit.mri_copies(strata, floor=10).tolist() == [4] * 3 + [1] * 10
    assert fit.mri_copies(strata, floor=1).tolist() == [1] * 13
    works = [bc.work_image(pixels) for pixels in _real_slices(data_root, 4)]
    data = fit.training_set(np.stack(works), np.zeros((0, bc.WORK_SIDE, bc.WORK_SIDE), np.float32), [], [],
                            mri_strata=["rare", "common", "common", "common"], mri_floor=3, vary_share=0.0)
    assert data.counts == {fit.MRI: 3 + 3} and (data.labels == 0).all()
    plain = bc.prepare_check_input([bc.work_image(pixels) for pixels in _real_slices(data_root, 1)])[0]
    first, *copies = data.inputs[:3]
    assert np.allclose(first, plain, atol=1e-6)  # vary_share 0: the first copy as it is ...
    assert all(not np.allclose(copy, plain, atol=1e-3) for copy in copies)  # ... the others varied


def _real_slices(data_root: Path, n: int):
    from mri_core.io.slices import read_file

    folder = data_root / "figshare-boxes" / "meningioma"
    return [read_file(path)[0].pixels for path in sorted(folder.glob("*.jpg"))[:n]]


# --- the threshold rule ---------------------------------------------------------------------

def test_the_threshold_flags_at_most_half_a_percent_of_each_stratum_plus_a_margin():
    rng = np.random.default_rng(0)
    strata = ["big"] * 1000 + ["medium"] * 400 + ["tiny"] * 30 + ["small"] * 180
    scores = rng.uniform(0, 0.05, len(strata))
    scores[:3] = [0.9, 0.6, 0.3]  # big: 5 allowed
    scores[1000:1003] = [0.8, 0.7, 0.2]  # medium: 2 allowed -> bound 0.2
    scores[1400] = 0.95  # tiny and small are pooled (210 slices: 1 allowed)
    scores[1430] = 0.4  # -> pooled bound 0.4, the highest
    threshold, found = fit.choose_threshold(scores, strata)
    assert found["binding_stratum"] == fit.SMALL_STRATA and found["bound"] == pytest.approx(0.4)
    assert found["per_stratum"][fit.SMALL_STRATA]["strata"] == ["small", "tiny"]
    assert threshold == pytest.approx(1 / (1 + np.exp(-(np.log(0.4 / 0.6) + fit.THRESHOLD_MARGIN_LOGIT))))
    strata = np.array(strata)
    pooled = np.where(np.isin(strata, ["small", "tiny"]), "pooled", strata)
    for name in set(pooled):
        members = pooled == name
        assert (scores[members] >= threshold).sum() <= np.floor(fit.MAX_MRI_FLAGGED_SHARE * members.sum())
    # Clipped: never above THRESHOLD_RANGE[1] however high the bound.
    assert fit.choose_threshold(np.full(300, 0.999), ["a"] * 300)[0] == fit.THRESHOLD_RANGE[1]
    with pytest.raises(ValueError):
        fit.choose_threshold(np.zeros(3), ["a", "b"])


def test_figures_carry_wilson_intervals():
    figures = fit.figures(np.array([0.9, 0.1, 0.8, 0.2]), ["a", "a", "b", "b"], 0.5)
    assert figures["a"]["successes"] == 1 and figures["a"]["n"] == 2 and 0 < figures["a"]["low"] < 0.5 < figures["a"]["high"]


# --- a tiny fit, end to end -----------------------------------------------------------------

def test_a_tiny_fit_writes_a_package_that_loads_and_reads(data_root, tmp_path):
    result = fit.fit_check(data_root, MANIFEST, epochs=1, limit_per_split=24, synthetic_counts=(16, 8),
                           command="pytest tiny fit", mri_floor=1)
    info = result.info
    assert fit.THRESHOLD_RANGE[0] <= result.threshold <= fit.THRESHOLD_RANGE[1]
    assert info["manifest"]["hash"] == splits.manifest_hash(MANIFEST)
    assert info["training"]["samples"][fit.HEAD_CT] == 24 * fit.CT_COPIES
    assert info["training"]["samples"][fit.MRI] == 24 and info["training"]["mri_stratum_floor"] == 1
    validation = info["validation"]
    assert validation["mri_flagged"]["n"] == 24 and validation["head_ct_flagged"]["n"] == 24
    assert validation["synthetic_flagged"]["n"] == 8
    out = tmp_path / "checks" / "brain-mri"
    fit.write_check_package(out, result.keras_model, info)
    assert sorted(p.name for p in out.iterdir()) == sorted([bc.CHECK_MODEL_FILE, bc.CHECK_INFO_FILE, bc.CHECK_CARD_FILE])
    check = bc.load_brain_check(out)
    assert check is not None and check.threshold == result.threshold and check.info["command"] == "pytest tiny fit"
    slices = _real_slices(data_root, 3) + [np.ones((100, 100), np.float32)]
    probabilities = check.not_mri_probability(slices)
    assert probabilities.shape == (4,) and ((probabilities >= 0) & (probabilities <= 1)).all()
    assert np.allclose(probabilities, bc.probabilities(result.keras_model, bc.prepare_check_input(slices)), atol=1e-5)
    card = (out / bc.CHECK_CARD_FILE).read_text()
    assert "95 % CI" in card and "pytest tiny fit" in card and "## Limits" in card
    # Rewritten whole: the new package replaces the old one, nothing half-written is left beside it.
    fit.write_check_package(out, result.keras_model, {**info, "command": "second"})
    assert json.loads((out / bc.CHECK_INFO_FILE).read_text())["command"] == "second"
    assert [p.name for p in out.parent.iterdir()] == ["brain-mri"]
    assert (out / bc.CHECK_MODEL_FILE).stat().st_size < 400_000  # weights only, no optimizer state
