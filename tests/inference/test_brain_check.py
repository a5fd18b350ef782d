"""The shipped "is this a brain MRI?" check on real images: head CT, brain MRI, photos, pages, blanks.

The shipped package is `assets/checks/brain-mri/`; `bench/train_brain_check.py` rebuilds it and
measures it on the whole test split (bench/results_brain_check.json). Here the same test split
of the committed manifest is read through the app's own decoder (`io.slices.read_file`).
"""

from __future__ import annotations

import io as _io
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from mri_core.inference import brain_check as bc
from mri_core.io.errors import ModelInvalid, NotASlice
from mri_core.io.raster import decode_raster
from mri_core.io.slices import read_file
from mri_core.training import brain_check_fit as fit
from mri_core.training import splits

PROJECT = Path(__file__).resolve().parents[2]
MANIFEST = PROJECT / "bench" / "splits" / "mri-v2.json"
# Head CTs of the test split (76, split by scan) that must be flagged: the target.
MIN_HEAD_CT_FLAGGED = 0.95
# Brain MRI of the test split flagged as not MRI: at most this share overall, and in each
# source (brisc2025: each plane) at most MAX_FLAGGED_PER_SOURCE slices or that share, whichever
# is more (sources of 33 and 49 slices cannot show 0.5 %).
MAX_MRI_FLAGGED = 0.005
MAX_FLAGGED_PER_SOURCE = 2
# Head CTs that the public MRI sets file as MRI, and the scikit-image photos training never used:
# as the fit defines them.
FILED_AS_MRI_HEAD_CT = set(fit.FILED_AS_MRI_HEAD_CT.values())
HELD_OUT_PHOTOS = fit.HELD_OUT_PHOTOS
assert not set(HELD_OUT_PHOTOS) & set(fit.TRAIN_PHOTOS)


@pytest.fixture(scope="module")
def check() -> bc.BrainCheck:
    loaded = bc.load_brain_check()
    assert loaded is not None, f"no check package in {bc.CHECK_DIR}: run bench/train_brain_check.py"
    return loaded


@pytest.fixture(scope="module")
def test_split(data_root: Path) -> dict:
    manifest = splits.read_manifest(MANIFEST)
    ct = [data_root / "not-mri" / e["root"] / e["path"] for e in manifest["not_mri"].values() if e["split"] == "test"]
    mri: dict[str, list[Path]] = {}
    for entry in manifest["images"].values():
        name = f"{entry['root']}/{entry['path']}"
        if entry["split"] != "test" or name in FILED_AS_MRI_HEAD_CT:
            continue
        stratum = entry["root"] + (f"/{entry['plane']}" if entry["root"] == "brisc2025" else "")
        mri.setdefault(stratum, []).append(data_root / name)
    return {"ct": ct, "mri": mri}


def pixels_of(paths) -> list[np.ndarray]:
    return [read_file(path)[0].pixels for path in paths]


def grey(image: Image.Image) -> np.ndarray:
    """A picture -> grey (H, W) in [0, 1] exactly as an upload is decoded (PNG bytes through io)."""
    buffer = _io.BytesIO()
    image.save(buffer, format="PNG")
    return decode_raster(buffer.getvalue(), "upload.png").pixels


def text_page() -> np.ndarray:
    page = Image.new("RGB", (850, 1100), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=18)
    draw.text((60, 40), "Radiology department - referral letter", fill=(20, 20, 120), font=ImageFont.load_default(size=30))
    for row in range(36):
        draw.text((60, 110 + 26 * row), "The patient reports headaches for three weeks; please read the enclosed scan.",
                  fill=(0, 0, 0), font=font)
    return grey(page)


# --- the shipped check on real data ---------------------------------------------------------

def test_the_shipped_check_flags_head_ct_of_the_test_split(check, test_split):
    probabilities = check.not_mri_probability(pixels_of(test_split["ct"]))
    flagged = check.is_not_mri(pixels_of(test_split["ct"]))
    assert len(test_split["ct"]) == 76
    assert np.array_equal(flagged, probabilities >= check.threshold)
    assert flagged.mean() >= MIN_HEAD_CT_FLAGGED, \
        f"only {flagged.sum()}/{len(flagged)} test head CTs flagged as not MRI"


def test_the_shipped_check_keeps_brain_mri_of_the_test_split(check, test_split):
    flagged_per_source = {}
    total = n = 0
    for stratum, paths in sorted(test_split["mri"].items()):
        flagged = int(check.is_not_mri(pixels_of(paths)).sum())
        flagged_per_source[stratum] = f"{flagged}/{len(paths)}"
        assert flagged <= max(MAX_FLAGGED_PER_SOURCE, MAX_MRI_FLAGGED * len(paths)), flagged_per_source
        total, n = total + flagged, n + len(paths)
    assert set(flagged_per_source) == {"br35h-extra", "brain-tumor-mri-224", "figshare-boxes", "kaggle-brain-mri",
                                       "brisc2025/axial", "brisc2025/coronal", "brisc2025/sagittal"}
    assert n > 1700 and total / n <= MAX_MRI_FLAGGED, flagged_per_source


def test_the_head_cts_filed_as_mri_in_the_public_sets_are_flagged(check, data_root):
    assert check.is_not_mri(pixels_of(data_root / name for name in sorted(FILED_AS_MRI_HEAD_CT))).all()


def test_colour_does_not_reach_the_check(check, data_root):
    """An MRI slice saved as colour (RGB, the same grey in every channel) reads as its grey self."""
    path = data_root / "figshare-boxes" / "glioma" / "1841.jpg"
    slice_grey = read_file(path)[0].pixels
    rgb = Image.fromarray((np.clip(slice_grey, 0, 1) * 255).round().astype(np.uint8)).convert("RGB")
    p_rgb, p_grey = check.not_mri_probability([grey(rgb), grey(rgb.convert("L"))])
    assert p_rgb == pytest.approx(p_grey, abs=1e-6)
    assert p_rgb < check.threshold


# --- what a clinician may upload by mistake (no data needed) ---------------------------------

def test_held_out_photos_a_text_page_and_blank_frames_are_flagged(check):
    skimage_data = pytest.importorskip("skimage.data")
    photos = {}
    for name in HELD_OUT_PHOTOS:
        array = np.asarray(getattr(skimage_data, name)())
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        photos[name] = grey(Image.fromarray(array))
    others = {"text page": text_page(), "black": np.zeros((512, 512), np.float32),
              "white": np.ones((300, 400), np.float32), "mid grey": np.full((256, 256), 0.4, np.float32)}
    named = {**photos, **others}
    flagged = dict(zip(named, check.is_not_mri(list(named.values()))))
    assert all(flagged[name] for name in others), flagged
    assert sum(flagged[name] for name in photos) >= len(photos) - 1, flagged  # at most one of ten held-out photos missed


def test_probabilities_are_deterministic_in_range_and_batch_independent(check):
    rng = np.random.default_rng(3)
    slices = [rng.random((200, 240), dtype=np.float32), np.zeros((64, 64), np.float32), text_page()]
    together = check.not_mri_probability(slices)
    alone = np.array([check.not_mri_probability([s])[0] for s in slices])
    assert together.shape == (3,) and together.dtype == np.float64
    assert ((together >= 0) & (together <= 1)).all()
    assert np.allclose(together, alone, atol=1e-5)
    assert np.array_equal(together, check.not_mri_probability(slices))
    assert check.not_mri_probability([]).shape == (0,) and check.is_not_mri([]).shape == (0,)


def test_preparation_is_grey_two_views_and_refuses_what_is_not_a_slice():
    rng = np.random.default_rng(0)
    slice_ = rng.random((300, 500), dtype=np.float32)
    slice_[0, 0] = np.nan
    inputs = bc.prepare_check_input([slice_, slice_[..., None]])
    assert inputs.shape == (2, bc.INPUT_SIZE, bc.INPUT_SIZE, bc.CHANNELS) and inputs.dtype == np.float32
    assert np.isfinite(inputs).all() and inputs.min() >= 0 and inputs.max() <= 1
    assert np.array_equal(inputs[0], inputs[1])
    whole = inputs[0, ..., 0]  # letterboxed: a 300 x 500 slice leaves black bands above and below
    assert whole[:5].max() == 0 and whole[-5:].max() == 0 and whole[32].min() > 0
    with pytest.raises(NotASlice):
        bc.prepare_check_input([np.zeros((10, 10, 3), np.float32)])


# --- the package ---------------------------------------------------------------------------

def test_the_shipped_package_says_what_it_is(check):
    info = check.info
    assert info["format"] == bc.CHECK_FORMAT and 0 < check.threshold < 1
    assert info["manifest"]["hash"] == splits.manifest_hash(MANIFEST)
    assert info["validation"]["head_ct_flagged"]["n"] > 0 and info["test"]["head_ct_flagged"]["rate"] >= 0.95
    assert "bench/train_brain_check.py" in info["command"] and "rule" in info
    assert (bc.CHECK_DIR / bc.CHECK_CARD_FILE).read_text().count("95 % CI") >= 10
    assert sum(f.stat().st_size for f in bc.CHECK_DIR.iterdir()) < 1_000_000


def test_load_brain_check_caches_per_path_and_is_none_without_a_package(check, tmp_path):
    assert bc.load_brain_check() is check
    assert bc.load_brain_check(bc.CHECK_DIR) is check
    assert bc.load_brain_check(tmp_path) is None
    copy = tmp_path / "copy"
    shutil.copytree(bc.CHECK_DIR, copy)
    results = []
    threads = [threading.Thread(target=lambda: results.append(bc.load_brain_check(copy))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(r) for r in results}) == 1 and results[0] is not check
    assert results[0].threshold == check.threshold


def test_a_damaged_or_foreign_package_is_refused(tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(bc.CHECK_DIR, damaged)
    with open(damaged / bc.CHECK_MODEL_FILE, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelInvalid, match="sha256"):
        bc.load_check(damaged)
    bad_json = tmp_path / "bad-json"
    shutil.copytree(bc.CHECK_DIR, bad_json)
    info = json.loads((bad_json / bc.CHECK_INFO_FILE).read_text())
    (bad_json / bc.CHECK_INFO_FILE).write_text(json.dumps({**info, "threshold": 1.5}))
    with pytest.raises(ModelInvalid, match="threshold"):
        bc.load_brain_check(bad_json)
    (bad_json / bc.CHECK_INFO_FILE).write_text("{not json")
    with pytest.raises(ModelInvalid, match="not readable JSON"):
        bc.load_check(bad_json)


def test_a_network_with_a_lambda_layer_is_refused(tmp_path):
    import keras

    inputs = keras.Input((bc.INPUT_SIZE, bc.INPUT_SIZE, bc.CHANNELS))
    outputs = keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.Lambda(lambda x: keras.ops.mean(x, axis=(1, 2)))(inputs))
    folder = tmp_path / "lambda"
    folder.mkdir()
    keras.Model(inputs, outputs).save(folder / bc.CHECK_MODEL_FILE)
    info = json.loads((bc.CHECK_DIR / bc.CHECK_INFO_FILE).read_text())
    info["weights_sha256"] = bc.weights_sha256(folder / bc.CHECK_MODEL_FILE)
    (folder / bc.CHECK_INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(ModelInvalid, match="loaded safely"):
        bc.load_check(folder)
