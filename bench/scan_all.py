"""Time "Scan all slices" as the Diagnose page does it, on a BraTS-sized volume with the shipped default.

Builds a NIfTI volume of 155 axial slices of 240x240 at 1 mm (BraTS's shape) from real shared slices
(brisc2025: no-tumor slices around a run of glioma slices), reads it as an upload is read (not timed:
the page reads a volume once, at upload), then times what the button does: every slice read with
its tumor mask and no heatmap (`read_volume(..., "all", cam="none")`) and the tumor measured
(`measure.volume_summary`). One warm-up, then `--runs` timed runs; prints one JSON object (median
seconds, per-slice ms, the volume in mL). Model loading is excluded (the page keeps it loaded).

    python bench/scan_all.py [--slices 155] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import nibabel as nib  # noqa: E402
from PIL import Image  # noqa: E402

from mri_core.inference import measure  # noqa: E402
from mri_core.inference import read as pipeline  # noqa: E402
from mri_core.inference.model import load_model  # noqa: E402
from mri_core.io import slices as io  # noqa: E402

MODEL = ROOT / "assets" / "models" / "default-4class-seg"
DATA = ROOT.parent / "shared" / "data" / "brisc2025"
SIDE = 240  # BraTS: 240 x 240 x 155 voxels of 1 mm


def build_volume(n_slices: int) -> bytes:
    """Real slices resized to 240x240 and stacked into a .nii (RAS+, 1 mm): a quarter no-tumor, half glioma,
    a quarter no-tumor, as a tumor sits mid-volume."""
    tumor_count = n_slices // 2
    no_tumor = sorted((DATA / "notumor").iterdir())[: n_slices - tumor_count]
    glioma = sorted((DATA / "glioma").iterdir())[:tumor_count]
    head = len(no_tumor) // 2
    paths = no_tumor[:head] + glioma + no_tumor[head:]
    stack = np.stack([np.asarray(Image.open(p).convert("L").resize((SIDE, SIDE), Image.BILINEAR)) for p in paths])
    data = np.ascontiguousarray(np.transpose(stack[:, ::-1, ::-1], (2, 1, 0)))  # (Z, H, W) as viewed -> RAS+
    return nib.Nifti1Image(data, np.eye(4)).to_bytes()


def scan_all(scan_model, volume) -> dict:
    """What the page's "Scan all slices" button computes: probabilities and the volume summary."""
    readings = pipeline.read_volume(scan_model, volume, "all", "axial", cam="none")
    summary = measure.volume_summary([r.mask for r in readings], volume, "axial")
    return {"probabilities": [r.tumor_probability for r in readings], "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=155)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    scan_model = load_model(MODEL)
    [volume] = io.read_volumes([("brats_like.nii", build_volume(args.slices))])
    load_before = [round(v, 2) for v in os.getloadavg()]
    scan_all(scan_model, volume)  # warm-up: traces the model for this batch shape
    times, result = [], None
    for _ in range(args.runs):
        started = time.perf_counter()
        result = scan_all(scan_model, volume)
        times.append(time.perf_counter() - started)
    median_s = statistics.median(times)
    summary = result["summary"]
    print(json.dumps({
        "model": scan_model.ref, "slices": volume.count, "slice_size": [SIDE, SIDE], "runs": args.runs,
        "seconds": [round(t, 3) for t in times], "median_s": round(median_s, 3),
        "per_slice_ms": round(1000 * median_s / volume.count, 2),
        "volume_ml": None if summary["volume_ml"] is None else round(summary["volume_ml"], 3),
        "slices_with_tumor": len(summary["slices_with_tumor"]), "spacing_source": summary["spacing_source"],
        "max_diameter_mm": None if summary["max_diameter_mm"] is None else round(summary["max_diameter_mm"], 1),
        "cpu_count": os.cpu_count(), "load_average_before": load_before,
        "load_average_after": [round(v, 2) for v in os.getloadavg()]}))


if __name__ == "__main__":
    main()
