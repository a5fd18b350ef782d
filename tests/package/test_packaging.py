"""Packaging: a model package zipped in memory round-trips into a loadable package."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from mri_core.package import packaging

from mri_core.package import registry
from mri_core.io.errors import ModelInvalid, ModelNotFound
from mri_core.inference.model import load_model


def unzip(data: bytes, target) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        archive.extractall(target)
        return sorted(archive.namelist())


def test_a_trained_package_round_trips_and_predicts_the_same(tiny_model_dir, tiny_model, tmp_path):
    info = json.loads((tiny_model_dir / "model.json").read_text())
    entry = registry.save_package("clinic", info, lambda folder: (folder / registry.MODEL_FILE).write_bytes(
        (tiny_model_dir / registry.MODEL_FILE).read_bytes()))

    names = unzip(packaging.zip_package(entry.ref), tmp_path)

    assert packaging.zip_file_name(entry) == "clinic-v1.zip"
    assert names == ["clinic-v1/model.json", "clinic-v1/model.keras"]
    unzipped = load_model(tmp_path / "clinic-v1")
    assert unzipped.info == entry.info
    scans = np.random.default_rng(0).random((2, 64, 64, 1), dtype=np.float32)
    np.testing.assert_allclose(unzipped.keras_model.predict(scans, verbose=0),
                               tiny_model.keras_model.predict(scans, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_shipped_package_zips_with_its_model_card_and_nothing_else(tmp_path):
    shipped = [e for e in registry.list_models() if e.shipped]
    if not shipped:
        pytest.skip("no shipped model in assets/models yet")
    entry = min(shipped, key=lambda e: (e.path / registry.MODEL_FILE).stat().st_size)
    folder = packaging.package_folder_name(entry)

    names = unzip(packaging.zip_package(entry), tmp_path)

    assert names == sorted(f"{folder}/{f}" for f in ("model.keras", "model.json", "MODEL_CARD.md"))
    for file_name in ("model.keras", "model.json", "MODEL_CARD.md"):
        assert (tmp_path / folder / file_name).read_bytes() == (entry.path / file_name).read_bytes()
    assert load_model(tmp_path / folder).info["class_names"] == entry.info["class_names"]


def test_extra_files_in_a_package_folder_stay_out_of_the_zip(tmp_path):
    entry = registry.save_package("clinic", {}, lambda folder: (
        (folder / registry.MODEL_FILE).write_bytes(b"weights"),
        (folder / "checkpoint.tmp").write_bytes(b"scratch"),
        (folder / "notes").mkdir()))
    assert unzip(packaging.zip_package(entry), tmp_path) == ["clinic-v1/model.json", "clinic-v1/model.keras"]


def test_a_package_missing_its_weights_is_refused_instead_of_zipped(tmp_path):
    entry = registry.save_package("clinic", {}, lambda folder: (folder / registry.MODEL_FILE).write_bytes(b"w"))
    (entry.path / registry.MODEL_FILE).unlink()
    with pytest.raises(ModelInvalid, match="model.keras"):
        packaging.zip_package(entry.path)


def test_an_unknown_model_is_not_found():
    with pytest.raises(ModelNotFound, match="nope"):
        packaging.zip_package("nope@1")
