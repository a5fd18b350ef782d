"""Time to scan a 155-slice volume in-process with the shipped default model.

Builds a NIfTI volume (155 axial slices of 512x512, real figshare slices) in memory, then times
reading it (`io.read_volumes`) and "scan all slices" (`pipeline.read_volume(..., "all")`, the
page's button: no heatmaps) and, for the CLI's `--slice all`, the same with Grad-CAM.
Model loading is excluded (the page keeps the model loaded). Writes bench/results.json
section "volume_scan". The CPU is shared with other work: figures are the best of --repeats.

    python bench/volume_scan.py [--slices 155] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_store import update_results  # noqa: E402
from mri_core.io import slices as io  # noqa: E402
from mri_core.inference import read as pipeline
from mri_core.package import registry
from mri_core.inference.model import load_model  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "figshare-boxes"


def build_volume(n_slices: int) -> bytes:
    """Real 512x512 slices stacked into a .nii.gz (RAS+, 1 mm), as a scanner export would be."""
    paths = sorted((DATA / "glioma").iterdir())[:n_slices]
    stack = np.stack([np.asarray(Image.open(p).convert("L").resize((512, 512))) for p in paths])
    data = np.ascontiguousarray(np.transpose(stack[:, ::-1, ::-1], (2, 1, 0)))
    return gzip.compress(nib.Nifti1Image(data, np.eye(4)).to_bytes(), compresslevel=1)


def best_of(repeats: int, action) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=155)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    entry = registry.default_shipped()
    scan_model = load_model(entry)
    data = build_volume(args.slices)
    read_s, volumes = best_of(args.repeats, lambda: io.read_volumes([("volume.nii.gz", data)]))
    [volume] = volumes
    pipeline.read_volume(scan_model, volume, 0)  # warm-up: compiles the model's graph once
    scan_s, readings = best_of(args.repeats, lambda: pipeline.read_volume(scan_model, volume, "all", cam="none"))
    cam_s, _ = best_of(args.repeats, lambda: pipeline.read_volume(scan_model, volume, "all", cam="gradcam"))
    figures = {
        "model": entry.ref, "slices": volume.count, "slice_shape": list(volume.voxels.shape[1:]),
        "compressed_mb": round(len(data) / 1e6, 1), "read_volume_s": round(read_s, 2),
        "scan_all_no_cam_s": round(scan_s, 2), "scan_all_gradcam_s": round(cam_s, 2),
        "most_suspicious_slice": pipeline.most_suspicious_slice(readings), "repeats": args.repeats,
        "note": "best of repeats on a CPU shared with other jobs; model load excluded",
        "command": "python bench/volume_scan.py",
    }
    print(update_results("volume_scan", figures))


if __name__ == "__main__":
    main()
