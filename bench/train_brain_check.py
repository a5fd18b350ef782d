"""Rebuild the shipped "is this a brain MRI?" check from the data, and measure it on the test split.

    python bench/train_brain_check.py --data ../shared/data --manifest bench/splits/mri-v2.json \
        --out assets/checks/brain-mri [--results bench/results_brain_check.json] [--seed 0] [--epochs 8]

Trains on the manifest's train split (MRI, head CT by scan) plus seeded made-up negatives,
chooses the threshold on val (training.brain_check_fit.RULE), then measures the test split:
MRI flagged per source (brisc2025 per plane), head CT flagged, made-up negatives per kind
(their photos drawn only from HELD_OUT_PHOTOS, never trained on), each held-out photo whole,
and the speed per slice. Writes the package (check.keras, check.json, CARD.md with the test
figures) atomically to --out, and the figures to --results. Seeded: a rerun on the same
machine and data gives the same network. No image is written anywhere.
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

import numpy as np  # noqa: E402

from bench.common import DEFAULT_DATA, PROJECT  # noqa: E402
from bench.results_store import machine  # noqa: E402
from mri_core.inference import brain_check as bc  # noqa: E402
from mri_core.io.atomic import write_text_atomic  # noqa: E402
from mri_core.training import brain_check_fit as fit  # noqa: E402
from mri_core.training import splits  # noqa: E402
from mri_core.training.audit import rate_with_interval  # noqa: E402

DEFAULT_RESULTS = PROJECT / "bench" / "results_brain_check.json"
# Not a brain MRI slice either, but a drawing of one: reported, not counted with the photos.
PHANTOM = "shepp_logan_phantom"


def test_figures(model, threshold: float, data_root: Path, manifest_path: Path, seed: int) -> tuple[dict, dict]:
    """-> (figures like the validation ones plus held-out photos, extra detail for the results file)."""
    items = [i for i in fit.manifest_items(data_root, splits.read_manifest(manifest_path)) if i.split == "test"]
    inputs = fit.views_of(fit.load_work_images([i.path for i in items]))
    kinds, strata = [i.kind for i in items], [i.stratum for i in items]
    synthetic, synthetic_kinds = fit.synthetic_negatives(fit.SYNTHETIC_TEST, seed + 3, fit.HELD_OUT_PHOTOS)
    inputs = np.concatenate([inputs, bc.prepare_check_input(synthetic)])
    kinds += synthetic_kinds
    strata += synthetic_kinds
    evaluated = fit.evaluate(model, inputs, kinds, strata, threshold)
    figures, scores = evaluated["figures"], evaluated["scores"]
    as_filed = np.array([k == fit.MRI or s == fit.FILED_AS_MRI_STRATUM for k, s in zip(kinds, strata)])
    figures["mri_flagged_as_filed"] = rate_with_interval(int((scores[as_filed] >= threshold).sum()), int(as_filed.sum()))
    whole = {name: float(s) for name, s in zip(
        fit.HELD_OUT_PHOTOS, bc.probabilities(model, bc.prepare_check_input([fit.photo_grey(n) for n in fit.HELD_OUT_PHOTOS])))}
    figures["held_out_photos_flagged"] = rate_with_interval(sum(p >= threshold for p in whole.values()), len(whole))
    phantom = float(bc.probabilities(model, bc.prepare_check_input([fit.photo_grey(PHANTOM)]))[0])
    return figures, {"held_out_photo_probabilities": whole, "shepp_logan_phantom_probability": phantom}


def speed(model, data_root: Path, manifest_path: Path, n: int = 256) -> dict:
    """ms per slice of `not_mri_probability` on n test MRI slices (512 px figshare ones first), batched and one at a time."""
    items = [i for i in fit.manifest_items(data_root, splits.read_manifest(manifest_path))
             if i.split == "test" and i.kind == fit.MRI]
    items.sort(key=lambda i: i.stratum != "figshare-boxes")
    from mri_core.io.slices import read_file

    pixels = [read_file(i.path)[0].pixels for i in items[:n]]
    check = bc.BrainCheck(path=Path("."), threshold=0.5, input_size=bc.INPUT_SIZE, info={}, keras_model=model)
    check.not_mri_probability(pixels[:8])  # warm up

    def best_of(work, repeats: int = 3) -> tuple[float, float]:  # (wall, CPU) seconds: least disturbed of a few
        times = []
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            work()
            times.append((time.perf_counter() - wall, time.process_time() - cpu))
        return min(times)

    batched = best_of(lambda: check.not_mri_probability(pixels))
    prepare = best_of(lambda: bc.prepare_check_input(pixels))
    single = best_of(lambda: [check.not_mri_probability([p]) for p in pixels[:32]])
    per = lambda t, k: round(t * 1e3 / k, 3)  # noqa: E731
    return {"slices": len(pixels), "sides": sorted({int(max(p.shape)) for p in pixels}),
            "ms_per_slice_batched": per(batched[0], len(pixels)), "cpu_ms_per_slice_batched": per(batched[1], len(pixels)),
            "ms_prepare_per_slice": per(prepare[0], len(pixels)), "cpu_ms_prepare_per_slice": per(prepare[1], len(pixels)),
            "ms_one_slice_alone": per(single[0], 32), "cpu_ms_one_slice_alone": per(single[1], 32),
            "load_average": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--manifest", type=Path, default=PROJECT / "bench" / "splits" / "mri-v2.json")
    parser.add_argument("--out", type=Path, default=bc.CHECK_DIR)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--seed", type=int, default=fit.SEED)
    parser.add_argument("--epochs", type=int, default=fit.EPOCHS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    command = (f"python bench/train_brain_check.py --data ../shared/data --manifest {_rel(args.manifest)} "
               f"--out {_rel(args.out)} --seed {args.seed} --epochs {args.epochs}")
    result = fit.fit_check(args.data, args.manifest, seed=args.seed, epochs=args.epochs, command=command,
                           progress=lambda line: print(line, file=sys.stderr, flush=True))
    fit_seconds = time.monotonic() - started
    test, detail = test_figures(result.keras_model, result.threshold, args.data, args.manifest, args.seed)
    info = {**result.info, "test": test}
    fit.write_check_package(args.out, result.keras_model, info)
    check = bc.load_check(args.out)  # what ships loads, and gives what was measured
    timing = speed(check.keras_model, args.data, args.manifest)
    results = {
        "what": "the brain-MRI check (mri_core/inference/brain_check.py) on the test split of the manifest: share "
                "flagged as not MRI, with 95 % Wilson intervals",
        "command": command,
        "manifest_hash": result.info["manifest"]["hash"],
        "threshold": result.threshold,
        "rule": fit.RULE,
        "test": test,
        **detail,
        "validation": result.info["validation"],
        "training_samples": result.info["training"]["samples"],
        "speed": timing,
        "seconds": {"fit_and_threshold": round(fit_seconds, 1), "total": round(time.monotonic() - started, 1)},
        "package_bytes": {f.name: f.stat().st_size for f in sorted(args.out.iterdir())},
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results, json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: results[k] for k in ("threshold", "test", "speed", "seconds")}, indent=1))
    return 0


def _rel(path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(PROJECT).as_posix()
    except ValueError:
        return Path(path).as_posix()


if __name__ == "__main__":
    raise SystemExit(main())
