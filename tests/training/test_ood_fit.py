"""Writing out-of-distribution statistics: the bytes a new package gets before its rename, and a
refit of an existing package (bench/fit_ood.py) that loads back exactly."""

import hashlib
import json
import shutil

import numpy as np

from mri_core.inference.ood import INFO_KEY, OOD_FILE, OodStats, read_stats
from mri_core.training import ood_fit


def _stats():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(2, 6)).astype(np.float32)
    return OodStats("conv2", means, np.eye(6, dtype=np.float32), 12.5,
                    {"layer": "conv2", "features": 6, "threshold": 12.5, "n_fit": 40})


def test_the_section_names_the_npz_it_was_made_with():
    stats = _stats()
    npz = ood_fit.npz_bytes(stats)
    section = ood_fit.info_section(stats, npz)
    assert section["sha256"] == hashlib.sha256(npz).hexdigest() and section["threshold"] == 12.5
    assert ood_fit.npz_bytes(stats) == npz  # the same statistics, the same bytes


def test_refitting_a_package_writes_statistics_that_load_back(tiny_model_dir, tmp_path):
    package = shutil.copytree(tiny_model_dir, tmp_path / "package")
    stats = _stats()
    info = ood_fit.write_stats(package, stats)
    assert json.loads((package / "model.json").read_text()) == info
    loaded = read_stats(package, info)
    np.testing.assert_array_equal(loaded.means, stats.means)
    assert loaded.threshold == 12.5 and info[INFO_KEY]["sha256"] == hashlib.sha256(
        (package / OOD_FILE).read_bytes()).hexdigest()
