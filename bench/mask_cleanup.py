"""Choose a trained package's mask cleanup on its validation outlines, as training now does.

    python bench/mask_cleanup.py PACKAGE_DIR --out OUT_DIR [--data-root ..]

Packages trained before `training.calibrate.choose_mask_cleanup` existed have no
`segmentation.cleanup`. This reads the package's own validation part (its model.json's data
roots and split manifest), predicts the masks at the model's resolution the way a reading
does, and applies the same rule training applies (`choose_mask_cleanup`, at the package's pixel
threshold). It writes a copy of the package to OUT_DIR whose model.json names the cleanup and
its validation Dice (weights unchanged), and prints the Dice of every candidate. Ship the copy
with bench/ship_model.py; nothing from the test part is read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.common import DEFAULT_DATA, PROJECT  # noqa: E402
from mri_core.inference.model import load_model  # noqa: E402
from mri_core.io.inputs import prepare_files  # noqa: E402
from mri_core.package import registry  # noqa: E402
from mri_core.training import data as datasets  # noqa: E402
from mri_core.training import splits  # noqa: E402
from mri_core.training.calibrate import MASK_CLEANUPS, choose_mask_cleanup, mask_cleanup_scores, predict_masks  # noqa: E402
from mri_core.training.prepared import REGION_OUTLINE, tumor_regions  # noqa: E402


def validation_outlines(info: dict, data_root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The package's validation part -> (its model inputs, its masks), outlined tumor slices only."""
    roots = [data_root / Path(root).name for root in info["data"]["roots"]]
    manifest = splits.read_manifest(PROJECT / info["settings"]["manifest"])
    if splits.manifest_hash(manifest) != info["data"]["manifest_hash"]:
        raise SystemExit(f"{info['settings']['manifest']} is not the manifest this package was trained with.")
    dataset = datasets.discover(roots)
    split = splits.apply_manifest(dataset, manifest)
    records = [r for r in dataset.records if split.get(r.sha256) == "val"]
    size = int(info["input"]["size"])
    masks, _, kind = tumor_regions(records, size, boxes=False, outlines=True)
    outlined = (kind == REGION_OUTLINE) & masks.reshape(len(records), -1).any(axis=1)
    images = prepare_files([r.path for r, keep in zip(records, outlined) if keep], size)
    return images, masks[outlined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    scan_model = load_model(args.package)
    info = registry.read_info(args.package)
    if not scan_model.segments:
        raise SystemExit(f"{scan_model.ref} does not segment: there is no mask to clean.")
    images, masks = validation_outlines(info, args.data_root)
    predicted = predict_masks(scan_model.keras_model, images, scan_model.mirror_average)
    threshold = scan_model.mask_threshold
    for cleanup, score in zip(MASK_CLEANUPS, mask_cleanup_scores(predicted, masks, threshold)):
        print(f"{json.dumps(cleanup)}: mean validation Dice {score:.4f}")
    cleanup, cleaned, plain = choose_mask_cleanup(predicted, masks, threshold)
    print(f"chosen {json.dumps(cleanup)}: {plain:.4f} -> {cleaned:.4f} on {len(masks)} validation outlines")
    if args.out.exists():
        shutil.rmtree(args.out)
    shutil.copytree(args.package, args.out)
    segmentation = {**info["segmentation"], "cleanup": cleanup, "validation_dice_model_resolution_cleaned": cleaned,
                    "cleanup_chosen_by": "python bench/mask_cleanup.py (training.calibrate.choose_mask_cleanup on "
                                         f"the {len(masks)} validation outlines, after training)"}
    (args.out / registry.INFO_FILE).write_text(json.dumps({**info, "segmentation": segmentation}, indent=2) + "\n")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
