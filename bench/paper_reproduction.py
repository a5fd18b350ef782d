"""Reproduce the seed paper: its CNN on the 253 Kaggle images, 70/15/15, over 5 seeds.

Test accuracy (mean ± sd) is reported twice: with a naive per-image random split, as the
paper did, and with the near-duplicate-grouped split; plus how many test images had a
near-duplicate in training under each. Nothing is tuned toward the paper's 0.76.

    python bench/paper_reproduction.py [--data DIR] [--seeds 0 1 2 3 4] [--epochs 30]

Writes the "paper_reproduction" section of bench/results.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench import common  # noqa: E402
from bench.results_store import update_results  # noqa: E402
from mri_core.training.events import EpochEnd  # noqa: E402
from mri_core.training.recipes import TrainSettings  # noqa: E402
from mri_core.training.train import train  # noqa: E402

DEFAULT_DATA = common.DEFAULT_DATA / "kaggle-brain-mri"


def run(data: Path, seeds: list[int], epochs: int) -> dict:
    runs = []
    for split in ("naive", "grouped"):
        for seed in seeds:
            settings = TrainSettings(arch="paper", epochs=epochs, seed=seed, split=split)
            started = time.monotonic()
            result = train([data], settings, on_event=lambda e: isinstance(e, EpochEnd) and print(
                f"  {split} seed {seed} epoch {e.epoch}/{e.epochs} val_acc {e.val_accuracy:.3f}", file=sys.stderr))
            metrics = result.info["test_metrics"]
            runs.append({"split": split, "seed": seed, "test_accuracy": metrics["accuracy"],
                         "test_n": metrics["n"], "test_leakage": result.info["data"]["test_leakage"],
                         "roc_auc": metrics["roc_auc"], "seconds": round(time.monotonic() - started, 1)})
            print(runs[-1], file=sys.stderr)
            figures = {"data": data.name, "epochs": epochs, "seeds": seeds, "summary": summarise(runs),
                       "runs": runs, "complete": len(runs) == 2 * len(seeds),
                       "command": f"python bench/paper_reproduction.py --epochs {epochs}"}
            update_results("paper_reproduction", figures)  # after every run: a stopped job keeps its figures
    return figures


def summarise(runs: list[dict]) -> dict:
    summary = {}
    for split in ("naive", "grouped"):
        mine = [r for r in runs if r["split"] == split]
        if not mine:
            continue
        accuracies = [r["test_accuracy"] for r in mine]
        summary[split] = {"runs": len(mine), "accuracy_mean": float(np.mean(accuracies)),
                          "accuracy_sd": float(np.std(accuracies, ddof=1)) if len(mine) > 1 else 0.0,
                          "test_leakage_mean": float(np.mean([r["test_leakage"] for r in mine])),
                          "test_n_mean": float(np.mean([r["test_n"] for r in mine]))}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    figures = run(args.data, args.seeds, args.epochs)
    for split, s in figures["summary"].items():
        print(f"{split:8s} test accuracy {s['accuracy_mean']:.3f} ± {s['accuracy_sd']:.3f}  "
              f"test images with a near-duplicate in train: {s['test_leakage_mean']:.1f} of {s['test_n_mean']:.0f}")


if __name__ == "__main__":
    main()
