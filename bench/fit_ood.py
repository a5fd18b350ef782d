"""Fit a package's out-of-distribution check on the validation part of a split manifest.

    python bench/fit_ood.py PACKAGE_DIR [--manifest bench/splits/shipped.json] [--data ../shared/data]

Writes `ood.npz` and the `ood` section of model.json into PACKAGE_DIR (see mri_core/ood.py)
and prints that section. Re-run it whenever the package's weights change.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mri_core import datasets, ood  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = PROJECT / "bench" / "splits" / "shipped.json"
DEFAULT_DATA = PROJECT.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    started = time.monotonic()
    roots = [args.data / root for root in datasets.read_manifest(args.manifest)["roots"]]
    section = ood.fit_package(args.package, roots, args.manifest)
    print(f"fitted in {time.monotonic() - started:.0f}s", file=sys.stderr)
    print(json.dumps(section, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
