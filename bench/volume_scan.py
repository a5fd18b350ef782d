"""Time to scan a 155-slice volume in-process with the shipped default model, and its tumor volume
measured three ways.

Builds a NIfTI volume (155 axial slices of 512x512, real figshare glioma slices, voxels of
0.5 x 0.5 x 2.0 mm) in memory, then times reading it (`io.read_volumes`) and "Scan all slices" as
the Diagnose page does it (`pipeline.read_volume(..., "all", cam="none")`, every slice with its
tumor mask, then `measure.volume_summary`) and, for the CLI's `--slice all`, the same with
Grad-CAM. The tumor volume is then figured (1) by the page's path, each slice's outlined area
times its thickness; (2) by counting the outlined voxels of the whole stack times the known
voxel volume; (3) by the CLI, `predict --slice all --volume-summary` on the same file, which
sums streamed lesions without keeping masks. Model loading is excluded (the page keeps the
model loaded). Writes bench/results.json section "volume_scan". The CPU is shared with other
work: times are the best of --repeats.

    python bench/volume_scan.py [--slices 155] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io as _io
import json
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DEFAULT_DATA  # noqa: E402
from bench.results_store import update_results  # noqa: E402
from mri_core.__main__ import main as cli  # noqa: E402
from mri_core.inference import measure  # noqa: E402
from mri_core.inference import read as pipeline  # noqa: E402
from mri_core.inference.model import load_model  # noqa: E402
from mri_core.io import slices as io  # noqa: E402
from mri_core.package import registry  # noqa: E402

DATA = DEFAULT_DATA / "figshare-boxes"
VOXEL_MM = (0.5, 0.5, 2.0)  # x, y, z: the known voxel size of the built volume


def build_volume(n_slices: int) -> bytes:
    """Real 512x512 slices stacked into a .nii.gz (RAS+, 1 mm), as a scanner export would be."""
    paths = sorted((DATA / "glioma").iterdir())[:n_slices]
    stack = np.stack([np.asarray(Image.open(p).convert("L").resize((512, 512))) for p in paths])
    data = np.ascontiguousarray(np.transpose(stack[:, ::-1, ::-1], (2, 1, 0)))
    return gzip.compress(nib.Nifti1Image(data, np.diag([*VOXEL_MM, 1.0])).to_bytes(), compresslevel=1)


def scan_all(scan_model, volume) -> tuple[list, dict]:
    """What the page's "Scan all slices" button computes: every slice read with its mask, then measured."""
    readings = pipeline.read_volume(scan_model, volume, "all", cam="none")
    return readings, measure.volume_summary([r.mask for r in readings], volume)


def cli_summary(data: bytes) -> dict:
    """`predict --slice all --volume-summary --json` on the volume written to a temp file: its summary line."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "volume.nii.gz"
        path.write_bytes(data)
        out = _io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli(["predict", str(path), "--slice", "all", "--volume-summary", "--cam", "none", "--json"])
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    if code != 0:
        raise SystemExit(f"the CLI failed: {lines}")
    return next(line["summary"] for line in lines if "summary" in line)


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
    scan_s, (readings, summary) = best_of(args.repeats, lambda: scan_all(scan_model, volume))
    cam_s, _ = best_of(args.repeats, lambda: pipeline.read_volume(scan_model, volume, "all", cam="gradcam"))
    voxels = int(sum(int(r.mask.sum()) for r in readings))
    by_cli = cli_summary(data)
    figures = {
        "model": entry.ref, "slices": volume.count, "slice_shape": list(volume.voxels.shape[1:]),
        "voxel_mm": list(VOXEL_MM), "compressed_mb": round(len(data) / 1e6, 1), "read_volume_s": round(read_s, 2),
        "scan_all_with_masks_s": round(scan_s, 2), "scan_all_ms_per_slice": round(1000 * scan_s / volume.count, 1),
        "scan_all_gradcam_s": round(cam_s, 2),
        "most_suspicious_slice": pipeline.most_suspicious_slice(readings), "repeats": args.repeats,
        "slices_with_tumor": len(summary["slices_with_tumor"]), "spacing_source": summary["spacing_source"],
        "max_diameter_mm": round(summary["max_diameter_mm"], 1),
        "volume_ml": {"page_slice_areas_x_thickness": round(summary["volume_ml"], 4),
                      "voxel_count_x_voxel_volume": round(voxels * float(np.prod(VOXEL_MM)) / 1000, 4),
                      "cli_volume_summary": round(by_cli["volume_ml"], 4)},
        "note": "best of repeats on a CPU shared with other jobs; model load excluded; the stack is of "
                "unrelated real slices, so the volume is a measurement check, not an anatomy",
        "command": "python bench/volume_scan.py",
    }
    print(update_results("volume_scan", figures))


if __name__ == "__main__":
    main()
