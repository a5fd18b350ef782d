"""Out-of-distribution, low-confidence and image-size warnings on real images and the shipped model."""

from __future__ import annotations

import hashlib
import io as _io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mri_core.io import slices as io

from mri_core.inference import ood
from mri_core.training import ood_fit

from mri_core.package import registry
from mri_core.inference.model import load_model
from mri_core.inference.read import read_slices

MANIFEST = Path(__file__).resolve().parents[2] / "bench" / "splits" / "shipped.json"
HELD_OUT_PER_FOLDER = 8
# bench/ood.py measures the rate on all 1,136 test images; a small fixed set gets a loose bound.
HELD_OUT_MAX_RATE = 0.1


def png(array: np.ndarray) -> bytes:
    buffer = _io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def shipped():
    model = load_model(registry.default_shipped())
    assert model.ood is not None and model.ood.stats is not None, \
        "the shipped model has no ood statistics: run `python bench/fit_ood.py` on it"
    return model


def non_mri_images() -> dict[str, bytes]:
    skimage_data = pytest.importorskip("skimage.data")
    page = Image.new("L", (600, 800), 255)
    draw = ImageDraw.Draw(page)
    for row in range(30):
        draw.text((20, 20 + 25 * row), "Patient letter: the results of your recent tests are enclosed.", fill=0)
    images = {name: png(np.asarray(getattr(skimage_data, name)()))
              for name in ("astronaut", "camera", "coffee", "coins", "page", "text", "chelsea")}
    images["document"] = png(np.asarray(page))
    images["blank"] = png(np.full((256, 256), 17, np.uint8))
    return images


def held_out_mri(data_root: Path) -> list[Path]:
    """The first few test-split images of every folder (by hash in the committed manifest)."""
    images = json.loads(MANIFEST.read_text())["images"]
    chosen = []
    for folder in sorted(p for p in data_root.glob("*/*") if p.is_dir()):
        picked = 0
        for path in sorted(folder.iterdir()):
            if picked == HELD_OUT_PER_FOLDER:
                break
            entry = images.get(hashlib.sha256(path.read_bytes()).hexdigest())
            if entry and entry["split"] == "test":
                chosen.append(path)
                picked += 1
    return chosen


def test_real_non_mri_images_are_flagged_out_of_distribution(shipped):
    items = non_mri_images()
    readings = read_slices(shipped, [io.decode_image(data, name) for name, data in items.items()], cam="none")
    missed = [name for name, r in zip(items, readings) if ood.OUT_OF_DISTRIBUTION not in r.warnings]
    assert not missed


def test_held_out_mri_mostly_read_without_the_warning(shipped, data_root):
    paths = held_out_mri(data_root)
    assert len(paths) >= 40
    readings = read_slices(shipped, [io.read_file(p)[0] for p in paths], cam="none")
    flagged = [p.name for p, r in zip(paths, readings) if ood.OUT_OF_DISTRIBUTION in r.warnings]
    assert len(flagged) / len(paths) <= HELD_OUT_MAX_RATE, flagged


def test_low_confidence_band_is_symmetric_in_odds_around_the_threshold():
    p = np.array([0.5, 0.3, 0.74, 0.76, 0.2, 0.9, 0.26])
    assert is_low(p, 0.5).tolist() == [True, True, True, False, False, False, True]
    low, high = ood.low_confidence_band(0.5)
    assert (low, high) == pytest.approx((0.25, 0.75))
    low, high = ood.low_confidence_band(0.1)
    assert low < 0.1 < high < 0.3
    assert is_low(np.array([0.04, 0.09, 0.2, 0.5]), 0.1).tolist() == [True, True, True, False]


def is_low(p, threshold):
    return ood.is_low_confidence(p, threshold)


def test_a_reading_near_the_threshold_says_low_confidence(shipped, tumor_image_path):
    slice_ = io.read_file(tumor_image_path)[0]
    [reading] = read_slices(shipped, [slice_], cam="none")
    expected = bool(ood.is_low_confidence([reading.tumor_probability], reading.threshold)[0])
    assert (ood.LOW_CONFIDENCE in reading.warnings) == expected


def test_sizes_outside_the_trained_range_are_named():
    sides = {"short_min": 150, "long_max": 1200}
    assert ood.size_warnings((100, 400), sides, 128) == (ood.IMAGE_SMALL,)
    assert ood.size_warnings((300, 1600), sides, 128) == (ood.IMAGE_LARGE,)
    assert ood.size_warnings((512, 512), sides, 128) == ()
    assert ood.size_warnings((100, 100), None, 128) == (ood.IMAGE_SMALL,)


def test_a_package_without_stats_loads_and_uses_the_cheap_checks_only(tiny_model_dir, tmp_path, tumor_image_path):
    package = shutil.copytree(tiny_model_dir, tmp_path / "no_stats")
    model = load_model(package)
    assert model.ood.stats is None
    blank = io.decode_image(png(np.zeros((200, 200), np.uint8)), "blank.png")
    scan = io.read_file(tumor_image_path)[0]
    blank_reading, scan_reading = read_slices(model, [blank, scan], cam="none")
    assert ood.OUT_OF_DISTRIBUTION in blank_reading.warnings
    assert ood.OUT_OF_DISTRIBUTION not in scan_reading.warnings


def test_fitted_stats_are_written_into_the_package_and_survive_a_reload(tiny_model_dir, tmp_path, small_kaggle):
    package = shutil.copytree(tiny_model_dir, tmp_path / "with_stats")
    model = load_model(package)
    paths = sorted(small_kaggle.glob("*/*"))
    images, flags = ood_fit.prepare_for_fit(paths, model.image_size)
    stats = ood_fit.fit_stats(model.keras_model, model.info["gradcam_layer"], images[::2], images[1::2], flags[1::2],
                          ood_fit.image_sides(paths))
    # 30 validation images allow no flag beyond the cheap checks' own at the fitted 1.5 %
    assert stats.summary["false_alarm_validation"] == stats.summary["cheap_check_rate_validation"]
    ood_fit.write_stats(package, stats)
    reloaded = load_model(package)
    assert reloaded.ood.stats is not None and reloaded.ood.stats.threshold == pytest.approx(stats.threshold)
    assert reloaded.info["ood"]["image_sides"]["n"] == len(paths)
    # an npz that does not match model.json's hash is ignored, never half-used
    np.savez(package / ood.OOD_FILE, means=stats.means * 2, precision=stats.precision)
    assert load_model(package).ood.stats is None


def test_threshold_for_counts_the_cheap_checks_flags_against_the_budget():
    scores = np.arange(100, dtype=float)  # 0..99
    none_cheap = np.zeros(100, bool)
    # 2 % of 100 images: the two highest scores (98, 99) are flagged, 97 is the threshold
    assert ood_fit.threshold_for(scores, none_cheap, 0.02) == 97
    one_cheap = none_cheap.copy()
    one_cheap[0] = True  # the cheap checks already flag one: only one more by distance
    assert ood_fit.threshold_for(scores, one_cheap, 0.02) == 98


def test_no_source_class_stratum_gets_more_than_its_share_of_warnings(tiny_model_dir, small_kaggle):
    model = load_model(tiny_model_dir)
    paths = sorted(small_kaggle.glob("*/*"))
    images, flags = ood_fit.prepare_for_fit(paths, model.image_size)
    val_images, val_flags = images[1::2], flags[1::2]
    strata = [f"kaggle/{p.parent.name}" for p in paths[1::2]]
    pooled = ood_fit.fit_stats(model.keras_model, model.info["gradcam_layer"], images[::2], val_images, val_flags, None,
                           fit_false_alarm=0.2)
    fair = ood_fit.fit_stats(model.keras_model, model.info["gradcam_layer"], images[::2], val_images, val_flags, None,
                         fit_false_alarm=0.2, strata=strata, min_stratum=5)
    assert fair.threshold >= pooled.threshold
    features = ood.FeatureExtractor(model.keras_model, model.info["gradcam_layer"])(val_images)
    flagged = val_flags | (fair.scores(features) > fair.threshold)
    for name in set(strata):
        inside = np.array(strata) == name
        assert flagged[inside].sum() <= max(int(np.floor(0.2 * inside.sum())), val_flags[inside].sum())
    assert set(fair.summary["false_alarm_validation_per_stratum"]) == set(strata)


def test_only_blank_or_misshapen_slices_are_unreadable_not_every_cheap_flag(shipped, kaggle_dir, data_root):
    """Issue 21: the cheap checks' `blank` and `aspect` make a reading `cannot_read`; `colour` and
    `no_background`, which real MRI trip too, only warn."""
    colour_mri = io.read_file(kaggle_dir / "yes" / "Y113.JPG")[0]  # coloured and tightly cropped, yet MRI
    assert {"colour", "no_background"} <= set(ood.image_check_reasons(colour_mri.pixels, colour_mri.warnings))
    blank_ct = io.read_file(data_root / "not-mri" / "head-ct" / "ctbrain_aneurysm_78.png")[0]
    mri = io.read_file(sorted((kaggle_dir / "no").iterdir())[0])[0]
    strip = replace_pixels(mri, np.tile(mri.pixels, (1, 3)))  # three slices side by side
    flat = replace_pixels(mri, np.full_like(mri.pixels, 0.3))
    findings = {name: ood.pixel_findings(shipped, s) for name, s in
                {"colour_mri": colour_mri, "blank_ct": blank_ct, "mri": mri, "strip": strip, "flat": flat}.items()}
    assert {name for name, (_, unreadable) in findings.items() if unreadable} == {"blank_ct", "strip", "flat"}
    assert ood.OUT_OF_DISTRIBUTION in findings["colour_mri"][0]  # still a warning
    assert findings["mri"] == (ood.pixel_warnings(shipped, mri), False)


def replace_pixels(slice_, pixels):
    from dataclasses import replace

    return replace(slice_, pixels=np.ascontiguousarray(pixels, np.float32))


# --- low_confidence: only where a reading makes a call that needs it (issue 21) ------------------

def test_no_low_confidence_for_a_reading_that_cannot_be_read_nor_for_a_model_with_a_band():
    from types import SimpleNamespace

    p = np.array([0.5, 0.5, 0.99])  # the first two sit on the threshold
    notes = [(), (), ()]
    old = SimpleNamespace(threshold=0.5, uncertainty_band=None, ood=None, image_size=128)
    warned = ood.reading_warnings(old, [None] * 3, np.zeros((3, 1)), p, notes, flags=np.array([False, True, False]))
    assert warned == [(ood.LOW_CONFIDENCE,), (ood.OUT_OF_DISTRIBUTION, ood.LOW_CONFIDENCE), ()]
    refused = ood.reading_warnings(old, [None] * 3, np.zeros((3, 1)), p, notes, flags=np.array([False, True, False]),
                                   no_call=np.array([False, True, False]))
    assert refused == [(ood.LOW_CONFIDENCE,), (ood.OUT_OF_DISTRIBUTION,), ()]
    banded = SimpleNamespace(**{**old.__dict__, "uncertainty_band": (0.3, 0.7)})  # `uncertain` says it
    assert ood.reading_warnings(banded, [None] * 3, np.zeros((3, 1)), p, notes) == [(), (), ()]
