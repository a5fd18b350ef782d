"""The model.json contract: what a package must say, checked before any network is loaded."""

from __future__ import annotations

import json

import pytest

from mri_core.io.errors import ModelInvalid
from mri_core.package import registry
from mri_core.package.info import (ARCHITECTURES, NO_READING_AIDS, reading_of, segmentation_of, tumor_indices,
                                   uncertainty_band_of, validate_info)


@pytest.fixture(scope="module")
def shipped_info() -> dict:
    return json.loads((registry.default_shipped().path / registry.INFO_FILE).read_text())


def test_every_shipped_package_meets_the_contract():
    for entry in registry.list_models():
        validate_info(registry.read_info(entry.path), entry.path)  # raises if not


@pytest.mark.parametrize("changes, fragment", [
    ({"temperature": None}, "lacks temperature"),
    ({"architecture": "vit-giant"}, "unknown architecture 'vit-giant'"),
    ({"no_tumor_classes": ["normal"]}, "invalid class list"),
    ({"class_names": ["glioma"]}, "invalid class list"),
    ({"threshold": 0.0}, "out of range"),
    ({"temperature": -1.0}, "out of range"),
    ({"reading": {"mirror_average": True, "heatmap_sigma": 99}}, "heatmap_sigma 0 to"),
    ({"uncertainty_band": [0.3]}, "invalid \"uncertainty_band\""),
    ({"uncertainty_band": [0.5, 0.2]}, "invalid \"uncertainty_band\""),
    ({"segmentation": {"output": "mask"}}, "invalid \"segmentation\""),
    ({"segmentation": {"output": "mask", "threshold": 1.0}}, "invalid \"segmentation\""),
    ({"segmentation": {"output": "mask", "threshold": 0.5, "cleanup": {"dilate": 3}}}, "names only relative"),
    ({"segmentation": {"output": "mask", "threshold": 0.5, "cleanup": {"relative": 1.5}}}, "'relative' must be null"),
    ({"segmentation": {"output": "mask", "threshold": 0.5, "cleanup": {"fill_holes": "yes"}}}, "'fill_holes' must be"),
])
def test_a_bad_model_json_is_refused_with_what_to_fix(shipped_info, tmp_path, changes, fragment):
    info = {k: v for k, v in {**shipped_info, **changes}.items() if v is not None}
    with pytest.raises(ModelInvalid, match=fragment):
        validate_info(info, tmp_path)


def test_tumor_classes_and_reading_aids_come_from_model_json(shipped_info):
    names = shipped_info["class_names"]
    assert [names[i] for i in tumor_indices(shipped_info)] == [c for c in names if c not in shipped_info["no_tumor_classes"]]
    assert reading_of(shipped_info) == {**NO_READING_AIDS, **shipped_info.get("reading", {})}
    assert reading_of({}) == NO_READING_AIDS  # an older package without "reading": neither aid
    assert shipped_info["architecture"] in ARCHITECTURES


def test_band_and_segmentation_come_from_model_json_and_older_packages_have_neither(shipped_info, tmp_path):
    newer = {**shipped_info, "uncertainty_band": [0.1, 0.6], "segmentation": {"output": "mask", "threshold": 0.45}}
    validate_info(newer, tmp_path)
    assert uncertainty_band_of(newer) == (0.1, 0.6)
    assert segmentation_of(newer) == {"output": "mask", "threshold": 0.45}
    older = {k: v for k, v in shipped_info.items() if k not in ("uncertainty_band", "segmentation")}
    validate_info(older, tmp_path)
    assert uncertainty_band_of(older) is None and segmentation_of(older) is None
    assert segmentation_of({**older, "segmentation": None}) is None  # a new model that does not segment
