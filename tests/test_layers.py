"""The shape of mri_core (DESIGN.md, "Shape"), checked by import-linter on every `make test`.

The contracts live in `.importlinter`: layers (imports only point down: io, package,
inference, training, present, then the CLI), no cycle between the modules of any one
package, and no Streamlit anywhere in mri_core. Imports inside functions count; nothing
is ignored. A new import that breaks a contract fails this test with import-linter's report.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_import_contracts_are_kept():
    done = subprocess.run([str(LINT_IMPORTS), str(PROJECT_ROOT / ".importlinter"), "--no-cache"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_contracts_cover_every_layer_and_ignore_nothing():
    config = configparser.ConfigParser()
    config.read(PROJECT_ROOT / ".importlinter")
    layers = config["importlinter:contract:layers"]["layers"].split()
    packages = sorted(p.name for p in (PROJECT_ROOT / "mri_core").iterdir() if (p / "__init__.py").is_file())
    assert sorted(layer.removeprefix("mri_core.") for layer in layers[1:]) == packages
    assert all("ignore_imports" not in config[section] for section in config.sections())
    assert all(p.name in ("__init__.py", "__main__.py") for p in (PROJECT_ROOT / "mri_core").glob("*.py")), \
        "every module of mri_core belongs to a layer"


def test_a_cycle_inside_a_layer_breaks_the_contract(tmp_path):
    """The contract is not vacuous: a copy of mri_core with one import added upwards inside a
    function (io.volume importing io.slices, which imports io.volume) is refused."""
    import shutil

    copy = tmp_path / "mri_core"
    shutil.copytree(PROJECT_ROOT / "mri_core", copy, ignore=shutil.ignore_patterns("__pycache__"))
    volume = copy / "io" / "volume.py"
    volume.write_text(volume.read_text() + "\n\ndef _late():\n    from mri_core.io import slices  # noqa: F401\n")
    shutil.copy(PROJECT_ROOT / ".importlinter", tmp_path / ".importlinter")
    done = subprocess.run([str(LINT_IMPORTS), str(tmp_path / ".importlinter"), "--no-cache"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "mri_core.io" in done.stdout and "BROKEN" in done.stdout


def test_every_module_has_a_test_module_that_mirrors_it():
    """tests/ mirrors mri_core/: mri_core/<layer>/<module>.py is tested in tests/<layer>/test_<module>.py."""
    missing = [f"tests/{module.parent.name}/test_{module.stem}.py"
               for module in sorted((PROJECT_ROOT / "mri_core").glob("*/*.py")) if module.stem != "__init__"
               if not (PROJECT_ROOT / "tests" / module.parent.name / f"test_{module.stem}.py").is_file()]
    assert not missing, f"modules without their test module: {missing}"
    assert (PROJECT_ROOT / "tests" / "test_main.py").is_file()  # the CLI, mri_core/__main__.py
