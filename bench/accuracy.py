"""The accuracy bench: every issue-21 figure, per source, class and plane, with 95 % intervals,
for one or more models in one table.

    python bench/accuracy.py --model default-4class-seg [--model paper-kaggle ...]
        [--manifest bench/splits/mri-v2.json] [--data ../shared/data] [--part test]
        [--unseen-by bench/splits/shipped.json] [--per-stratum N] [--section strata] [--out bench/results.json] [--no-save]

Reads the part's images (MRI of every set, and the head-CT `not_mri` section) through the
reading path the CLI uses (`inference.stream.read_paths`, Grad-CAM on), then reports with
`training.strata`: missed tumors per tumor source, healthy slices called tumor per (source,
plane), deferrals, cannot_read on MRI and on head CT, 4-class accuracy among readings not
deferred, ROC AUC of the tumor probability (tumor vs healthy MRI: all, per source and per
source/plane; bootstrap interval), Dice of the mask and of the heatmap at half its peak (mean
with a bootstrap interval, and pooled), the pointing game per source with outlines or boxes,
and the ECE of the tumor probability and of the top label.

`--unseen-by MANIFEST` measures a model trained on another split on the images it never saw:
an image is kept only when no member of its near-duplicate group (this manifest's groups) was in
that manifest's train or validation part. `--per-stratum N` reads at most N images per (source,
class, plane) for a quick look (seeded); the figures in the README use every image.
Writes the "strata" section (or --section) of bench/results.json, one entry per model, and prints a table.
Until issue 21 this script was `bench/strata.py`, and `bench/accuracy.py` an audit of the earlier
models on `bench/splits/shipped.json` (its figures stay in results.json -> accuracy; git history).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import DEFAULT_DATA, PROJECT, log  # noqa: E402
from bench.results_store import RESULTS, update_results  # noqa: E402
from mri_core.inference.model import load_model  # noqa: E402
from mri_core.inference.stream import read_paths  # noqa: E402
from mri_core.training import splits, strata  # noqa: E402

DEFAULT_MANIFEST = PROJECT / "bench" / "splits" / "mri-v2.json"


def read_items(scan_model, items: list[strata.Item]) -> list:
    readings = []
    for (path, outcome), item in zip(read_paths(scan_model, [i.path for i in items]), items):
        if not hasattr(outcome, "verdict"):
            raise SystemExit(f"{item.path} could not be read: {outcome}")
        readings.append(outcome)
    return readings


def model_figures(ref: str, items: list[strata.Item]) -> dict:
    scan_model = load_model(ref)
    started = time.perf_counter()
    readings = read_items(scan_model, items)
    seconds = time.perf_counter() - started
    return {
        "model": scan_model.ref, "images": len(items), "read_seconds": round(seconds, 1),
        "threshold": scan_model.threshold, "uncertainty_band": scan_model.info.get("uncertainty_band"),
        "verdicts": strata.verdict_figures(items, readings),
        "roc_auc": strata.auc_figures(items, readings),
        "calibration": strata.calibration_figures(items, readings),
        "segmentation": strata.segmentation_figures(items, readings),
        "pointing_game": strata.pointing_figures(items, readings),
    }


def markdown(models: dict[str, dict]) -> str:
    """One column per model, one row per figure."""
    refs = list(models)
    rows: list[tuple[str, list[str]]] = []

    def add(label, pick):
        rows.append((label, [pick(models[ref]) for ref in refs]))

    first = models[refs[0]]
    for source in first["verdicts"]["tumor_sources"]:
        add(f"missed tumors (no_tumor), {source}",
            lambda f, s=source: strata.interval_text(f["verdicts"]["tumor_sources"].get(s, {}).get("missed", {})))
    for stratum in first["verdicts"]["healthy_strata"]:
        add(f"healthy called tumor, {stratum}",
            lambda f, s=stratum: strata.interval_text(f["verdicts"]["healthy_strata"].get(s, {}).get("called_tumor", {})))
    add("healthy called tumor, all", lambda f: strata.interval_text(f["verdicts"]["healthy_called_tumor_all"]))
    add("deferred MRI (uncertain or cannot_read)", lambda f: strata.interval_text(f["verdicts"]["deferred_mri"]))
    add("worst stratum deferral", lambda f: _worst_deferral(f))
    add("MRI read as cannot_read", lambda f: strata.interval_text(f["verdicts"]["mri_cannot_read"]))
    add("head CT read as cannot_read",
        lambda f: strata.interval_text(f["verdicts"].get("not_mri_cannot_read", {})))
    add("head CT called tumor", lambda f: strata.interval_text(f["verdicts"].get("not_mri_called_tumor", {})))
    for group in first["roc_auc"]:
        add(f"ROC AUC tumor vs healthy MRI, {group}",
            lambda f, g=group: strata.auc_text(f["roc_auc"][g]) if g in f["roc_auc"] else "n/a")
    add("4-class accuracy, not deferred",
        lambda f: strata.interval_text(f["verdicts"]["four_class_accuracy_not_deferred"]))
    for source in first["segmentation"]:
        add(f"mask Dice mean [95%] / pooled, {source}", lambda f, s=source: _dice(f, s, "mask"))
        add(f"Grad-CAM-as-mask Dice, {source}", lambda f, s=source: _dice(f, s, "cam"))
    for source in first["pointing_game"]:
        add(f"pointing game, {source}",
            lambda f, s=source: strata.interval_text(f["pointing_game"].get(s, {})))
    add("ECE tumor probability / top label (15 bins)",
        lambda f: f"{f['calibration']['ece_tumor_probability']:.3f} / {f['calibration']['ece_top_label']:.3f}")
    add("images read", lambda f: str(f["images"]))
    lines = ["| figure | " + " | ".join(refs) + " |", "|---|" + "---|" * len(refs)]
    lines += [f"| {label} | " + " | ".join(values) + " |" for label, values in rows]
    return "\n".join(lines)


def _dice(figures: dict, source: str, key: str) -> str:
    entry = figures["segmentation"].get(source)
    if not entry or key not in entry:
        return "n/a (no mask output)" if entry else "n/a"
    d = entry[key]
    return f"{d['mean_dice']:.3f} [{d['low']:.3f}, {d['high']:.3f}] / {d['pooled_dice']:.3f} (n={entry['n']})"


def _worst_deferral(figures: dict) -> str:
    judged = {k: v for k, v in figures["verdicts"]["deferred_strata"].items() if v["n"] >= strata.MIN_STRATUM}
    if not judged:
        return "n/a"
    worst = max(judged, key=lambda k: judged[k]["rate"])
    return f"{worst}: {strata.interval_text(judged[worst])}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--part", default="test", choices=list(splits.SPLITS))
    parser.add_argument("--unseen-by", type=Path, help="keep only images this manifest's model never saw")
    parser.add_argument("--per-stratum", type=int, help="read at most N images per stratum (a quick look)")
    parser.add_argument("--section", default="strata", help="section of bench/results.json to write (default: strata)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file to update (default: bench/results.json)")
    parser.add_argument("--no-save", action="store_true", help="print only; write no results file")
    args = parser.parse_args(argv)
    manifest = splits.read_manifest(args.manifest)
    unseen_by = splits.read_manifest(args.unseen_by) if args.unseen_by else None
    items = strata.manifest_items(manifest, args.data, args.part, unseen_by, args.per_stratum)
    log(f"{len(items)} images of the {args.part} part")
    models = {}
    for ref in args.model:
        figures = model_figures(ref, items)
        models[figures["model"]] = figures
        log(f"{figures['model']}: read in {figures['read_seconds']} s")
    if not args.no_save:
        update_results(args.section, {"manifest": str(args.manifest.relative_to(PROJECT) if args.manifest.is_relative_to(PROJECT)
                                               else args.manifest), "manifest_hash": splits.manifest_hash(manifest),
                                  "part": args.part, "unseen_by": str(args.unseen_by) if args.unseen_by else None,
                                  "per_stratum": args.per_stratum, "models": models}, args.out)
    print(markdown(models))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
