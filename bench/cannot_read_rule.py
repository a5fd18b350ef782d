"""The `cannot_read` rule (issue 21): what it refuses of real MRI, photos, a text page and head CT.

    python bench/cannot_read_rule.py [--model PACKAGE] [--data ../shared/data]
                                     [--manifest bench/splits/mri-v2.json] [--cache FILE.npz]

A slice is `cannot_read` when the brain-MRI check flags it (probability >= its threshold), or
when the active model's out-of-distribution detector flags it (the `out_of_distribution`
warning: cheap image checks or the Mahalanobis feature check) and the check's probability is
at least `verdict.CHECK_LEVEL_WHEN_OOD` (`verdict.cannot_read_flags`). This script measures,
for the check alone and for that rule:
- every brain MRI slice under --data (all five sets, as filed: kaggle-brain-mri,
  brain-tumor-mri-224, figshare-boxes, brisc2025 by plane, br35h-extra; masks left out),
  read as a reading reads them (io decode, cheap checks, the check, the model's features);
- scikit-image's bundled photos and the photos matplotlib and scikit-learn ship (a portrait,
  a temple, a flower), each in colour (where it has colour) and in grey, read through the real
  read path (`read_upload` with PNG bytes); a rendered text page;
- the head-CT test split of --manifest (`not_mri`, split == "test").
It also prints the lowest level L at which the rule refuses at most `MAX_EXTRA_MRI_SHARE` more
of the MRI than the check alone (how CHECK_LEVEL_WHEN_OOD was chosen), and writes
bench/results_cannot_read.json. With --model, any package with the same interface (the
default is the shipped default model). --cache keeps the per-image numbers between runs.
About 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import io as _io
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import DEFAULT_DATA, PROJECT, log  # noqa: E402
from mri_core.inference import brain_check, ood  # noqa: E402
from mri_core.inference import read as pipeline  # noqa: E402
from mri_core.inference.model import load_model  # noqa: E402
from mri_core.inference.verdict import CHECK_LEVEL_WHEN_OOD, cannot_read_flags  # noqa: E402
from mri_core.io import preprocess  # noqa: E402
from mri_core.io import slices as io  # noqa: E402
from mri_core.io.reading import CANNOT_READ, OUT_OF_DISTRIBUTION  # noqa: E402
from mri_core.package import registry  # noqa: E402
from mri_core.training.brain_check_fit import TRAIN_PHOTOS  # noqa: E402

DEFAULT_MANIFEST = PROJECT / "bench" / "splits" / "mri-v2.json"
RESULTS = PROJECT / "bench" / "results_cannot_read.json"
MRI_SETS = ("kaggle-brain-mri", "brain-tumor-mri-224", "figshare-boxes", "brisc2025", "br35h-extra")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}
# How L was chosen: at most this share of all MRI slices refused on top of the check alone.
MAX_EXTRA_MRI_SHARE = 0.002
# scikit-image's bundled images that load without a download (photos of people first).
# (`cat` is `chelsea` under another name.)
PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "horse", "coins", "moon", "page",
          "text", "clock", "brick", "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "retina",
          "cell", "logo", "colorwheel", "checkerboard", "binary_blobs", "microaneurysms")
BATCH = 64
WORKERS = 2
PLANES = {"_ax_": "axial", "_co_": "coronal", "_sa_": "sagittal"}


# --- what a reading sees of one slice --------------------------------------------------------

def slice_numbers(scan_model, check, pixel_slices) -> dict[str, np.ndarray]:
    """Slices -> the check's probability, the cheap checks' verdict, and the feature check's flag each."""
    views = [brain_check.work_image(s.pixels) for s in pixel_slices]
    probability = check.not_mri_probability(views)  # the check reads a work image as the slice itself
    cheap = np.array([bool(ood.image_check_reasons(s.pixels, s.warnings)) for s in pixel_slices])
    batch, _ = preprocess.prepare_batch([s.pixels for s in pixel_slices], scan_model.image_size)
    feature = scan_model.ood.feature_flags(batch) if scan_model.ood is not None else np.zeros(len(batch), bool)
    return {"probability": probability, "cheap": cheap, "feature": np.asarray(feature, bool)}


def files_numbers(scan_model, check, paths: list[Path]) -> dict[str, np.ndarray]:
    """Image files -> slice_numbers of each (first slice of each file), BATCH at a time."""
    parts = []
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for start in range(0, len(paths), BATCH):
            slices = list(pool.map(lambda p: io.read_file(p)[0], paths[start:start + BATCH]))
            parts.append(slice_numbers(scan_model, check, slices))
            if (start // BATCH) % 20 == 0:
                log(f"  {start + len(slices)}/{len(paths)}")
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def mri_files(data: Path) -> tuple[list[Path], list[str]]:
    """Every brain MRI image of the five sets (as filed; masks and boxes.csv left out) -> (paths, strata)."""
    paths, strata = [], []
    for name in MRI_SETS:
        for path in sorted((data / name).rglob("*")):
            parts = path.relative_to(data / name).parts
            if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES or parts[0] == "masks":
                continue
            plane = next((p for key, p in PLANES.items() if key in path.name), None) if name == "brisc2025" else None
            paths.append(path)
            strata.append(f"{name}/{plane}" if plane else name)
    return paths, strata


def head_ct_test_files(data: Path, manifest: Path) -> list[Path]:
    entries = json.loads(manifest.read_text())["not_mri"].values()
    return sorted(data / "not-mri" / e["root"] / e["path"] for e in entries if e["split"] == "test")


# --- photos and a page, through the real read path --------------------------------------------

def png(array: np.ndarray) -> bytes:
    buffer = _io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def library_photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled images, and photos that matplotlib and scikit-learn ship (a portrait of
    Grace Hopper; a temple and a flower), none downloaded -> name: array as stored."""
    import matplotlib
    import sklearn.datasets
    from skimage import data as skdata

    photos = {name: np.asarray(getattr(skdata, name)()) for name in PHOTOS}
    for name, path in (("grace_hopper", Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"),
                       ("china", Path(sklearn.datasets.__file__).parent / "images" / "china.jpg"),
                       ("flower", Path(sklearn.datasets.__file__).parent / "images" / "flower.jpg")):
        photos[name] = np.asarray(Image.open(path).convert("RGB"))
    return photos


def photo_uploads() -> list[tuple[str, bytes]]:
    """Library photos (`library_photos`) as PNG uploads: each in colour (where it has colour) and in grey."""
    uploads = []
    for name, image in library_photos().items():
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.dtype != np.uint8:
            image = np.clip(image.astype(np.float64) / max(1e-9, float(image.max())) * 255, 0, 255).astype(np.uint8)
        if image.ndim == 3:
            uploads.append((f"{name}.png", png(image)))
            grey = image[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
            uploads.append((f"{name}_grey.png", png(np.round(grey).astype(np.uint8))))
        else:
            uploads.append((f"{name}.png", png(image)))
    return uploads


def text_page() -> tuple[str, bytes]:
    """A rendered page of a report: black text on white, 850 x 1100 px."""
    image = Image.new("L", (850, 1100), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=22)
    lines = ["Radiology report", "", "Patient: J. Doe    Date: 2026-11-30", "Exam: MRI brain with and without contrast",
             "", "Findings: no mass, no midline shift. Ventricles are of normal size.",
             "Impression: normal study.", "", "Signed: Dr. A. Reader"]
    lines += ["Lorem ipsum dolor sit amet, consectetur adipiscing elit."] * 20
    for i, line in enumerate(lines):
        draw.text((60, 60 + 34 * i), line, fill=0, font=font)
    return "text_page.png", png(np.asarray(image))


def upload_rows(scan_model, check, uploads: list[tuple[str, bytes]]) -> list[dict]:
    """Each upload through `read_upload` (its verdict and warnings) and the check's probability."""
    rows = []
    for name, data in uploads:
        reading = pipeline.read_upload(scan_model, data, name, cam="none")[0]
        slice_ = io.read_input((name, data))[0]
        probability = float(check.not_mri_probability([slice_.pixels])[0])
        rows.append({"image": name, "check_trained_on_it": name.split(".")[0].removesuffix("_grey") in TRAIN_PHOTOS,
                     "check_probability": round(probability, 4),
                     "out_of_distribution": OUT_OF_DISTRIBUTION in reading.warnings,
                     "check_alone_refuses": probability >= check.threshold,
                     "verdict": reading.verdict})
    return rows


# --- figures ---------------------------------------------------------------------------------

def refused(numbers: dict[str, np.ndarray], threshold: float, level: float | None) -> np.ndarray:
    ood_flag = numbers["cheap"] | numbers["feature"]
    if level is None:
        return numbers["probability"] >= threshold
    return cannot_read_flags(numbers["probability"], threshold, ood_flag, level)


def lowest_level(numbers: dict[str, np.ndarray], threshold: float, max_extra: int) -> float:
    """The lowest L at which the rule refuses at most `max_extra` MRI more than the check alone."""
    p = numbers["probability"]
    extra = np.sort(p[(numbers["cheap"] | numbers["feature"]) & (p < threshold)])[::-1]
    # L just above the (max_extra + 1)-th highest probability among the flagged MRI the check passes
    return float(np.nextafter(extra[max_extra], 1.0)) if len(extra) > max_extra else 0.0


def share(flags: np.ndarray, key: str = "refused") -> dict:
    return {key: int(flags.sum()), "n": len(flags), "share": round(float(flags.mean()), 5) if len(flags) else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model package (default: the shipped default)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--cache", type=Path, default=None, help="npz keeping the MRI and CT numbers between runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.time()
    entry = registry.default_shipped() if args.model is None else None
    scan_model = load_model(entry if entry is not None else args.model)
    check = brain_check.load_brain_check()
    threshold = check.threshold

    mri_paths, strata = mri_files(args.data)
    ct_paths = head_ct_test_files(args.data, args.manifest)
    if args.cache is not None and args.cache.exists():
        cached = np.load(args.cache)
        mri = {k: cached["mri_" + k] for k in ("probability", "cheap", "feature")}
        ct = {k: cached["ct_" + k] for k in ("probability", "cheap", "feature")}
        assert len(mri["probability"]) == len(mri_paths) and len(ct["probability"]) == len(ct_paths), "stale cache"
    else:
        log(f"{len(mri_paths)} MRI slices ...")
        mri = files_numbers(scan_model, check, mri_paths)
        log(f"{len(ct_paths)} head CT (test split) ...")
        ct = files_numbers(scan_model, check, ct_paths)
        if args.cache is not None:
            np.savez(args.cache, **{"mri_" + k: v for k, v in mri.items()}, **{"ct_" + k: v for k, v in ct.items()})

    allowed = int(np.floor(MAX_EXTRA_MRI_SHARE * len(mri_paths)))
    level = lowest_level(mri, threshold, allowed)
    before, after = refused(mri, threshold, None), refused(mri, threshold, CHECK_LEVEL_WHEN_OOD)
    strata_arr = np.array(strata)
    per_stratum = {s: {"n": int((strata_arr == s).sum()), "check_alone": int(before[strata_arr == s].sum()),
                       "rule": int(after[strata_arr == s].sum())} for s in sorted(set(strata))}
    uploads = photo_uploads() + [text_page()]
    rows = upload_rows(scan_model, check, uploads)

    model_ref = getattr(scan_model, "ref", str(args.model))
    results = {
        "what": "the cannot_read rule (mri_core/inference/verdict.py, cannot_read_flags): refused = the brain-MRI check "
                "flags, or the model's out_of_distribution flag (cheap checks or features) and check probability >= L",
        "command": "python bench/cannot_read_rule.py" + (f" --model {args.model}" if args.model else ""),
        "model": model_ref,
        "check_threshold": threshold,
        "level_when_ood": CHECK_LEVEL_WHEN_OOD,
        "level_rule": f"lowest L refusing at most {MAX_EXTRA_MRI_SHARE:.1%} of all MRI slices ({allowed}) more than "
                      "the check alone",
        "lowest_level_measured": round(level, 4),
        "mri": {"check_alone": share(before), "rule": share(after),
                "extra_refused": share(after & ~before),
                "extra_refused_files": [mri_paths[i].relative_to(args.data).as_posix()
                                        for i in np.flatnonzero(after & ~before)],
                "out_of_distribution": share(mri["cheap"] | mri["feature"], "flagged"),
                "per_stratum": per_stratum},
        "head_ct_test": {"check_alone": share(refused(ct, threshold, None)),
                         "rule": share(refused(ct, threshold, CHECK_LEVEL_WHEN_OOD))},
        "uploads": rows,
        "uploads_cannot_read": f"{sum(r['verdict'] == CANNOT_READ for r in rows)}/{len(rows)}",
        "uploads_check_alone": f"{sum(r['check_alone_refuses'] for r in rows)}/{len(rows)}",
        "seconds": round(time.time() - started, 1),
        "measured": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
    }
    args.out.write_text(json.dumps(results, indent=1) + "\n")

    print(f"model {model_ref}; check threshold {threshold:.4f}; L = {CHECK_LEVEL_WHEN_OOD} "
          f"(lowest measured: {level:.4f})")
    for label, figure in (("MRI, check alone", results["mri"]["check_alone"]), ("MRI, rule", results["mri"]["rule"]),
                          ("MRI, refused only by the rule", results["mri"]["extra_refused"]),
                          ("head CT test, check alone", results["head_ct_test"]["check_alone"]),
                          ("head CT test, rule", results["head_ct_test"]["rule"])):
        print(f"  {label:32s} {figure['refused']:5d}/{figure['n']:<6d} = {100 * (figure['share'] or 0):.2f} %")
    for stratum, figure in per_stratum.items():
        print(f"    {stratum:28s} n={figure['n']:5d} check alone {figure['check_alone']:3d}  rule {figure['rule']:3d}")
    for row in rows:
        print(f"  {row['image']:32s} p={row['check_probability']:.3f} ood={row['out_of_distribution']!s:5s} "
              f"-> {row['verdict']}{'  (the check trained on it)' if row['check_trained_on_it'] else ''}")
    print(f"  uploads cannot_read: {results['uploads_cannot_read']} (check alone {results['uploads_check_alone']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
