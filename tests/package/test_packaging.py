"""Packaging: a model package zipped in memory, every file of it, round-trips into a package that reads the same."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

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


def test_every_shipped_package_zips_with_every_one_of_its_files(tmp_path):
    shipped = [e for e in registry.list_models() if e.shipped]
    if not shipped:
        pytest.skip("no shipped model in assets/models yet")
    for entry in shipped:
        folder = packaging.package_folder_name(entry)
        files = sorted(p.name for p in entry.path.iterdir() if p.is_file())

        names = unzip(packaging.zip_package(entry), tmp_path / entry.name)

        assert names == [f"{folder}/{f}" for f in files]
        assert {"model.keras", "model.json"} <= set(files)
        for file_name in files:
            assert (tmp_path / entry.name / folder / file_name).read_bytes() == (entry.path / file_name).read_bytes()


def test_every_file_of_a_package_folder_is_in_the_zip_and_links_are_not(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of the package")
    entry = registry.save_package("clinic", {}, lambda folder: (
        (folder / registry.MODEL_FILE).write_bytes(b"weights"),
        (folder / "ood.npz").write_bytes(b"statistics"),
        (folder / "extra").mkdir(),
        (folder / "extra" / "calibration.json").write_text("{}"),
        (folder / "link.txt").symlink_to(outside)))

    names = unzip(packaging.zip_package(entry), tmp_path / "unzipped")

    assert names == ["clinic-v1/extra/calibration.json", "clinic-v1/model.json", "clinic-v1/model.keras",
                     "clinic-v1/ood.npz"]
    assert (tmp_path / "unzipped" / "clinic-v1" / "ood.npz").read_bytes() == b"statistics"


# a head CT that only the feature statistics in ood.npz flag (default-4class@4): a package
# that lost ood.npz reads it without the out_of_distribution warning
HEAD_CT = "ctbrain_tumor_250.png"


def odd_inputs(kaggle_dir: Path, data_root: Path) -> list[tuple[str, bytes]]:
    """A Kaggle tumor slice, a head CT and a colour photo: (name, bytes) as a page gets them."""
    from PIL import Image

    tumor = kaggle_dir / "yes" / "Y10.jpg"
    head_ct = data_root / "not-mri" / "head-ct" / HEAD_CT
    photo = io.BytesIO()
    gradient = np.linspace(0, 255, 160 * 200 * 3).reshape(160, 200, 3)
    Image.fromarray(np.stack([gradient[..., 0], np.flipud(gradient[..., 1]), gradient[..., 2][:, ::-1]], -1)
                    .astype(np.uint8)).save(photo, format="PNG")
    return [(tumor.name, tumor.read_bytes()), (head_ct.name, head_ct.read_bytes()), ("photo.png", photo.getvalue())]


def test_the_shipped_default_unzipped_reads_like_the_original_warnings_included(kaggle_dir, data_root, tmp_path):
    from mri_core.inference.read import read_upload

    entry = registry.resolve("default-4class")
    assert (entry.path / "ood.npz").is_file(), "the default's out-of-distribution statistics"
    unzip(packaging.zip_package(entry), tmp_path)
    original, unzipped = load_model(entry), load_model(tmp_path / packaging.package_folder_name(entry))
    assert unzipped.ood.stats is not None, "the unzipped package checks features for out-of-distribution inputs"
    assert np.array_equal(unzipped.ood.stats.precision, original.ood.stats.precision)

    readings = {}
    for name, data in odd_inputs(kaggle_dir, data_root):
        [expected] = read_upload(original, data, name)
        [got] = read_upload(unzipped, data, name)
        assert got.to_json() == expected.to_json(), name
        assert np.allclose(got.heatmap, expected.heatmap, atol=1e-5), name
        readings[name] = got
    assert "out_of_distribution" in readings["photo.png"].warnings
    assert "out_of_distribution" not in readings["Y10.jpg"].warnings


def test_a_package_missing_its_weights_is_refused_instead_of_zipped(tmp_path):
    entry = registry.save_package("clinic", {}, lambda folder: (folder / registry.MODEL_FILE).write_bytes(b"w"))
    (entry.path / registry.MODEL_FILE).unlink()
    with pytest.raises(ModelInvalid, match="model.keras"):
        packaging.zip_package(entry.path)


def test_an_unknown_model_is_not_found():
    with pytest.raises(ModelNotFound, match="nope"):
        packaging.zip_package("nope@1")
