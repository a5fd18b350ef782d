"""What the pages import: no TensorFlow at load, no image math libraries at all.

Reads the imports of app.py and pages/*.py with `ast` (module level: what loads when a page
script starts), then imports every mri_core and pages-side module they name in a fresh
interpreter: TensorFlow and Keras must not be loaded afterwards. They load lazily, on the
first reading (or in the Diagnose page's background preload).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [PROJECT_ROOT / "app.py", *sorted((PROJECT_ROOT / "pages").glob("*.py"))]
HEAVY = ("tensorflow", "keras")
IMAGE_MATH = ("numpy", "cv2", "PIL", "scipy", "skimage", "tensorflow", "keras")


def imported_names(script: Path, module_level_only: bool) -> set[str]:
    """Dotted names a script imports (`from a.b import c` gives a.b.c when that is a module, else a.b)."""
    tree = ast.parse(script.read_text(), str(script))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                is_module = node.module.split(".")[0] in ("mri_core", "pages") and _is_module(submodule)
                names.add(submodule if is_module else node.module)
    return names


def _is_module(name: str) -> bool:
    sys.path.insert(0, str(PROJECT_ROOT))
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False
    finally:
        sys.path.remove(str(PROJECT_ROOT))


def page_modules() -> list[str]:
    """Every mri_core and pages-side module that app.py and the pages import at load."""
    names = set().union(*(imported_names(script, module_level_only=True) for script in SCRIPTS))
    return sorted(name for name in names if name.split(".")[0] in ("mri_core", "pages"))


def test_the_pages_import_mri_core_through_its_layers():
    modules = page_modules()
    for expected in ("mri_core.present.charts", "mri_core.present.report", "mri_core.package.registry",
                     "mri_core.training.jobs", "mri_core.training.recipes", "pages.common"):
        assert expected in modules, f"{expected} is not imported by any page: is this test still reading them?"


def test_importing_what_the_pages_import_loads_no_tensorflow():
    modules = page_modules()
    probe = (f"import json, sys\nsys.path.insert(0, {str(PROJECT_ROOT)!r})\nloaded = {{}}\n"
             f"for name in {modules!r}:\n"
             "    __import__(name)\n"
             f"    loaded[name] = [m for m in {HEAVY!r} if m in sys.modules]\n"
             "    if loaded[name]:\n"
             "        break\n"
             "print(json.dumps(loaded))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    heavy = {name: found for name, found in loaded.items() if found}
    assert not heavy, f"importing {next(iter(heavy), '')} loads {heavy.get(next(iter(heavy), ''))}: import it lazily"
    assert list(loaded) == modules, "every module was imported"


def test_no_page_does_image_math():
    for script in SCRIPTS:
        names = imported_names(script, module_level_only=False)
        used = sorted(name for name in names if name.split(".")[0] in IMAGE_MATH)
        assert not used, f"{script.name} imports {used}: image math belongs in mri_core"
