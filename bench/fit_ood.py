"""Fit a package's out-of-distribution check on the validation part of a split manifest.

    python bench/fit_ood.py PACKAGE_DIR [--manifest bench/splits/shipped.json] [--data ../shared/data]

Writes `ood.npz` and the `ood` section of model.json into PACKAGE_DIR (see mri_core/inference/ood.py)
and prints that section. Re-run it whenever a shipped package's weights change (a maintainer tool
for packages in git: a package trained by `train` already has its statistics, written before its rename). A package whose
test metrics lack reliability bins (trained before `evaluate.compute_metrics` stored them)
gets them here, from the test part of the manifest (what the pages' reliability diagram shows).
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

from bench.common import DEFAULT_DATA, PROJECT  # noqa: E402
from mri_core.package import registry  # noqa: E402
from mri_core.training import splits  # noqa: E402
from mri_core.training import ood_fit as ood  # noqa: E402

DEFAULT_MANIFEST = PROJECT / "bench" / "splits" / "shipped.json"


def add_reliability(package: Path, info: dict, test_records) -> None:
    from mri_core.inference.verdict import decide
    from mri_core.training.evaluate import NO_TUMOR_NAMES, reliability_bins
    from mri_core.inference.model import load_model
    from mri_core.io.inputs import prepare_files

    scan_model = load_model(package)
    probabilities = scan_model.calibrate(scan_model.predict(
        prepare_files([r.path for r in test_records], scan_model.image_size)))
    _, _, tumor_probability = decide(probabilities, scan_model.class_names, scan_model.no_tumor_classes, scan_model.threshold)
    true_tumor = [r.class_name not in NO_TUMOR_NAMES and r.class_name not in scan_model.no_tumor_classes for r in test_records]
    info.setdefault("test_metrics", {})["reliability"] = reliability_bins(tumor_probability, true_tumor)
    ood.write_info(package, info)
    print(f"reliability bins added from {len(test_records)} test images", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    started = time.monotonic()
    roots = [args.data / root for root in splits.read_manifest(args.manifest)["roots"]]
    info = registry.read_info(args.package)
    parts = ood.split_records(info, roots, args.manifest)
    section = ood.fit_package(args.package, parts=parts)
    info = registry.read_info(args.package)
    if "reliability" not in info.get("test_metrics", {}):
        add_reliability(args.package, info, parts["test"])
    print(f"fitted in {time.monotonic() - started:.0f}s", file=sys.stderr)
    print(json.dumps(section, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
