"""Re-derive a package's reading-dependent model.json keys from its own weights and split.

    python bench/recalibrate.py PACKAGE_DIR [--data ../shared/data]

For a package trained before its recipe's reading (`recipes.Recipe.reading`: mirror
averaging, heatmap smoothing) changed: re-prepares the data of its recorded command (same
roots, same manifest) and runs the final stage of training again (`calibrate.calibrate_and_test`):
temperature and operating point on validation, test metrics at that threshold, and the
"reading" itself. The weights, history and out-of-distribution statistics stay as they are
(the OOD features do not depend on the reading). Writes model.json atomically and prints
the old and new figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import DEFAULT_DATA, PROJECT  # noqa: E402
from mri_core.inference.model import load_model  # noqa: E402
from mri_core.package import registry  # noqa: E402
from mri_core.training import ood_fit as ood  # noqa: E402
from mri_core.training.calibrate import calibrate_and_test  # noqa: E402
from mri_core.training.prepared import load_training_data  # noqa: E402
from mri_core.training.recipes import TrainSettings  # noqa: E402

SUMMARY_KEYS = ("temperature", "threshold", "reading")
METRIC_KEYS = ("accuracy", "roc_auc", "sensitivity", "specificity", "ece")


def summary(info: dict) -> dict:
    return {**{k: info.get(k) for k in SUMMARY_KEYS},
            **{k: info.get("test_metrics", {}).get(k) for k in METRIC_KEYS}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding the package's data roots")
    args = parser.parse_args(argv)
    started = time.monotonic()
    info = registry.read_info(args.package)
    known = {f.name for f in fields(TrainSettings)}  # older packages recorded options since removed
    recorded = {k: v for k, v in info["settings"].items() if k in known}
    if recorded.get("manifest"):
        recorded["manifest"] = str(PROJECT / recorded["manifest"])
    settings = TrainSettings(**recorded)
    roots = [args.data / Path(root).name for root in info["data"]["roots"]]
    missing = [str(root) for root in roots if not root.is_dir()]
    if missing:
        raise SystemExit(f"The package's data roots are missing: {', '.join(missing)}; pass --data.")
    data = load_training_data(roots, settings)
    if data.summary.get("manifest_hash") != info["data"].get("manifest_hash"):
        raise SystemExit("The split manifest differs from the one the package was trained on; refusing to recalibrate.")
    before = summary(info)
    calibration = calibrate_and_test(load_model(args.package).keras_model, data, settings.recipe)
    info.update(calibration)
    ood.write_info(args.package, info)
    print(f"recalibrated in {time.monotonic() - started:.0f}s", file=sys.stderr)
    print(json.dumps({"before": before, "after": summary(info)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
