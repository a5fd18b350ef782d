"""Out-of-distribution warnings: how many non-MRI images are flagged, how many MRI are not.

    python bench/ood.py [--model assets/models/default-4class] [--manifest bench/splits/shipped.json]
                        [--data ../shared/data] [--set eval|tune]

The evaluation set is fixed and built here at run time, offline:
- real: every bundled image of scikit-image's `data` module that loads without a download
  (photos, microscopy, a retina, a CT head phantom, text scans, logos ...); matplotlib's
  sample images and data sets (a photo, logos, elevation maps); plots of matplotlib's
  sample data; documents (text pages rendered with PIL); screenshots of web pages rendered
  by chromium through playwright.
- synthetic: noise, gradients, shapes, blank / nearly uniform images (generator seed 0).
matplotlib's `s1045.ima.gz` is a brain MRI (sagittal), so it is reported on its own, not
counted as non-MRI. Each image goes through the real reading path (io -> pipeline with
`cam="none"`): flagged means its reading carries `out_of_distribution`.

No tuning on this set: the detector's constants come from the validation MRI
(`bench/fit_ood.py`, mri_core/ood.py). `--set tune` builds a separate set (generator
seed 1, other texts, plots of other data, no library images) used while choosing them.
The false-alarm rate is measured on the test part of the committed manifest.
Writes the "ood" section of bench/results.json (eval set only) and prints a table.
"""

from __future__ import annotations

import argparse
import gzip
import io as _io
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import DEFAULT_DATA, PROJECT, log  # noqa: E402
from bench.old_split import DEFAULT_MANIFEST, select_records  # noqa: E402
from bench.results_store import update_results  # noqa: E402
from mri_core.io import slices as io  # noqa: E402
from mri_core.inference import ood
from mri_core.inference import read as pipeline
from mri_core.inference.stream import read_paths
from mri_core.io.errors import MriError  # noqa: E402
from mri_core.inference.model import load_model  # noqa: E402

DEFAULT_MODEL = PROJECT / "assets" / "models" / "default-4class"
SEEDS = {"eval": 0, "tune": 1}
BATCH = 32
SYNTHETIC_PER_KIND = 12
TEXTS = {
    "eval": ["Discharge summary. The patient was admitted with headache and discharged in stable condition.",
             "Invoice 2041: consulting services, 12 hours at the agreed rate; payment due within 30 days.",
             "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt.",
             "Meeting notes: the team reviewed the quarterly figures and agreed on next steps for the launch.",
             "Recipe: whisk two eggs with flour and milk, rest the batter, then fry thin pancakes in butter."],
    "tune": ["The quick brown fox jumps over the lazy dog while the cat sleeps on the warm windowsill.",
             "Terms and conditions apply. Read the full agreement before signing any document here.",
             "Chapter one: it was a bright cold day in April, and the clocks were striking thirteen."],
}


def png(array: np.ndarray) -> bytes:
    """uint8 (H, W) or (H, W, 3|4) -> PNG bytes."""
    buffer = _io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _font(size: int):
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size)


# --- real images -------------------------------------------------------------------------

def library_images() -> dict[str, list[tuple[str, bytes]]]:
    """scikit-image and matplotlib bundled images, by category."""
    import matplotlib
    import skimage.data

    groups = {
        "photo (colour)": ["astronaut", "cat", "chelsea", "coffee", "rocket", "hubble_deep_field"],
        "photo (grey)": ["camera", "moon", "coins", "clock", "horse", "brick", "grass", "gravel"],
        "microscopy / medical non-MRI": ["cell", "immunohistochemistry", "retina", "microaneurysms",
                                         "shepp_logan_phantom"],
        "text scan": ["page", "text"],
        "graphics / logo": ["logo", "colorwheel", "checkerboard", "binary_blobs"],
    }
    out: dict[str, list[tuple[str, bytes]]] = {}
    for category, names in groups.items():
        for name in names:
            image = np.asarray(getattr(skimage.data, name)())
            if image.dtype == bool:
                image = image.astype(np.uint8) * 255
            if image.dtype != np.uint8:
                image = (255 * (image - image.min()) / max(np.ptp(image), 1e-9)).astype(np.uint8)
            out.setdefault(category, []).append((f"skimage:{name}", png(image)))
    sample = Path(matplotlib.get_data_path()) / "sample_data"
    out["photo (colour)"].append(("mpl:grace_hopper.jpg", (sample / "grace_hopper.jpg").read_bytes()))
    for name in ("logo2.png", "Minduka_Present_Blue_Pack.png"):
        out["graphics / logo"].append((f"mpl:{name}", (sample / name).read_bytes()))
    for name, key in (("jacksboro_fault_dem.npz", "elevation"), ("topobathy.npz", "topo")):
        with np.load(sample / name) as arrays:
            values = np.asarray(arrays[key if key in arrays else arrays.files[0]], float)
        grey = (255 * (values - values.min()) / max(np.ptp(values), 1e-9)).astype(np.uint8)
        out.setdefault("elevation map", []).append((f"mpl:{name}", png(grey)))
    return out


def brain_mri_sample() -> tuple[str, bytes]:
    """matplotlib's 256x256 16-bit head MRI: in distribution-ish, reported apart."""
    import matplotlib

    raw = gzip.decompress((Path(matplotlib.get_data_path()) / "sample_data" / "s1045.ima.gz").read_bytes())
    values = np.frombuffer(raw, np.uint16).reshape(256, 256).astype(float)
    return "mpl:s1045.ima.gz", png((255 * values / values.max()).astype(np.uint8))


def documents(role: str, rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """Text pages rendered with PIL: black on white and white on black, several sizes."""
    out = []
    for i, text in enumerate(TEXTS[role]):
        for inverted in (False, True):
            width, height = int(rng.integers(400, 900)), int(rng.integers(500, 1100))
            page = Image.new("L", (width, height), 0 if inverted else 255)
            draw = ImageDraw.Draw(page)
            lines = textwrap.wrap((text + " ") * 6, width=max(20, width // 13))
            for j, line in enumerate(lines[: height // 26]):
                draw.text((20, 20 + 26 * j), line, fill=255 if inverted else 0, font=_font(18))
            out.append((f"document {i}{' inverted' if inverted else ''}", png(np.asarray(page))))
    return out


def plots(role: str, rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """Line, bar, scatter, histogram and image plots drawn with matplotlib (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    kinds = ["line", "bar", "scatter", "hist", "imshow", "pie"]
    for i, kind in enumerate(kinds * (2 if role == "eval" else 1)):
        fig, ax = plt.subplots(figsize=(rng.uniform(4, 8), rng.uniform(3, 6)), dpi=80,
                               facecolor="black" if i >= len(kinds) else "white")
        x = np.linspace(0, 10, 200)
        if kind == "line":
            ax.plot(x, np.sin(x * rng.uniform(0.5, 3)) + rng.normal(0, 0.1, x.size))
        elif kind == "bar":
            ax.bar(range(8), rng.uniform(1, 10, 8))
        elif kind == "scatter":
            ax.scatter(rng.normal(size=300), rng.normal(size=300), s=6)
        elif kind == "hist":
            ax.hist(rng.normal(size=2000), bins=40)
        elif kind == "imshow":
            ax.imshow(rng.normal(size=(30, 30)).cumsum(0), cmap="gray" if i % 2 else "viridis")
        else:
            ax.pie(rng.uniform(1, 5, 5))
        ax.set_title(f"{kind} plot {i}")
        buffer = _io.BytesIO()
        fig.savefig(buffer, format="png", facecolor=fig.get_facecolor())
        plt.close(fig)
        out.append((f"plot {kind} {i}", buffer.getvalue()))
    return out


PAGES = [
    "<h1>Clinic news</h1>" + "<p>Opening hours change next week. Please book online.</p>" * 12,
    "<h2>Results</h2><table border=1>" + "".join(f"<tr><td>row {i}</td><td>{i * 7 % 13}</td><td>ok</td></tr>" for i in range(20)) + "</table>",
    "<form><h2>Sign in</h2><label>Email <input></label><br><label>Password <input type=password></label><br><button>Sign in</button></form>",
    "<body style='background:#222;color:#eee;font-family:monospace'><pre>" + "\n".join(f"$ ls -l file{i}.txt" for i in range(30)) + "</pre></body>",
    "<body style='margin:0'><div style='background:linear-gradient(#36c,#9cf);height:300px'></div><h1>Welcome</h1><p>Dashboard</p>" + "<div style='display:inline-block;width:120px;height:80px;margin:8px;background:#eee'></div>" * 8,
    "<h1>Documentation</h1><ul>" + "".join(f"<li><a href='#'>Section {i}: getting started</a></li>" for i in range(25)) + "</ul>",
]


def screenshots() -> list[tuple[str, bytes]]:
    """Web pages rendered by chromium (playwright); empty when no browser can start."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return []
    out = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
            for i, html in enumerate(PAGES):
                page = browser.new_page(viewport={"width": 1024 if i % 2 else 800, "height": 700})
                page.set_content(html)
                out.append((f"screenshot {i}", page.screenshot()))
                page.close()
            browser.close()
    except Exception as exc:  # no browser here: the category is reported as missing
        log(f"screenshots skipped: {exc}")
    return out


# --- synthetic images --------------------------------------------------------------------

def synthetic(rng: np.random.Generator) -> dict[str, list[tuple[str, bytes]]]:
    out: dict[str, list[tuple[str, bytes]]] = {"noise": [], "gradient": [], "shapes": [], "blank": []}
    for i in range(SYNTHETIC_PER_KIND):
        h, w = int(rng.integers(128, 700)), int(rng.integers(128, 700))
        kind = i % 3
        if kind == 0:
            noise = rng.uniform(0, 255, (h, w))
        elif kind == 1:
            noise = np.clip(rng.normal(128, 50, (h, w)), 0, 255)
        else:
            noise = np.where(rng.uniform(size=(h, w)) < 0.5, 0, 255) * (rng.uniform(size=(h, w)) < 0.3)
        if i % 4 == 3:
            noise = np.repeat(noise[..., None], 3, axis=2) * rng.uniform(0.3, 1.0, 3)
        out["noise"].append((f"noise {i}", png(noise.astype(np.uint8))))

        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        if i % 2:
            ramp = np.hypot(yy - rng.uniform(0, 1), xx - rng.uniform(0, 1))
        else:
            angle = rng.uniform(0, np.pi)
            ramp = np.cos(angle) * xx + np.sin(angle) * yy
        ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
        out["gradient"].append((f"gradient {i}", png((255 * (1 - ramp if i % 3 == 0 else ramp)).astype(np.uint8))))

        canvas = Image.new("RGB" if i % 2 else "L", (w, h), 0 if i % 3 else 255)
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(1, 8))):
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            box = (x0, y0, x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2)))
            fill = tuple(int(v) for v in rng.integers(30, 256, 3)) if i % 2 else int(rng.integers(30, 256))
            (draw.ellipse if rng.uniform() < 0.5 else draw.rectangle)(box, fill=fill)
        out["shapes"].append((f"shapes {i}", png(np.asarray(canvas))))

        level = [0, 255, 128, int(rng.integers(0, 256))][i % 4]
        flat = np.full((h, w), level, float) + (rng.normal(0, 2, (h, w)) if i >= 4 else 0)
        out["blank"].append((f"blank {i} level {level}", png(np.clip(flat, 0, 255).astype(np.uint8))))
    return out


def build_set(role: str) -> dict[str, dict[str, list[tuple[str, bytes]]]]:
    """{"real": {category: [(name, bytes)]}, "synthetic": {...}}."""
    rng = np.random.default_rng(SEEDS[role])
    real = library_images() if role == "eval" else {}
    real["document (rendered)"] = documents(role, rng)
    real["plot (rendered)"] = plots(role, rng)
    if role == "eval":
        real["screenshot (chromium)"] = screenshots()
    return {"real": {k: v for k, v in real.items() if v}, "synthetic": synthetic(rng)}


# --- measuring -----------------------------------------------------------------------------

def read_all(scan_model, items: list[tuple[str, bytes]]) -> list[dict]:
    """(name, bytes) -> per image: flagged, by which check, or the error io raised."""
    rows, slices = [], []
    for name, data in items:
        try:
            slices.append((name, io.decode_image(data, name)))
        except MriError as exc:
            rows.append({"name": name, "rejected": type(exc).__name__})
    for start in range(0, len(slices), BATCH):
        chunk = slices[start:start + BATCH]
        readings = pipeline.read_slices(scan_model, [s for _, s in chunk], cam="none")
        for (name, slice_), reading in zip(chunk, readings):
            cheap = ood.image_check_reasons(slice_.pixels, slice_.warnings)
            rows.append({"name": name, "flagged": ood.OUT_OF_DISTRIBUTION in reading.warnings,
                         "cheap": list(cheap), "warnings": list(reading.warnings)})
    return rows


def summarise(rows: list[dict]) -> dict:
    n = len(rows)
    flagged = sum(r.get("flagged", False) for r in rows)
    rejected = sum("rejected" in r for r in rows)
    return {"n": n, "flagged": flagged, "rejected_by_io": rejected,
            "fraction_flagged": round(flagged / n, 4) if n else None,
            "by_cheap_checks": sum(bool(r.get("cheap")) for r in rows),
            "missed": [r["name"] for r in rows if not r.get("flagged") and "rejected" not in r]}


def mri_false_alarms(scan_model, data: Path, manifest: Path, part: str = "test") -> dict:
    """Rate of each warning on one part of the manifest, overall and out_of_distribution per source."""
    records, manifest_hash = select_records(data, manifest, part)
    source_of = {str(r.path): r.root_name for r in records}
    counts = {w: 0 for w in (ood.OUT_OF_DISTRIBUTION, ood.LOW_CONFIDENCE, ood.IMAGE_SMALL, ood.IMAGE_LARGE)}
    per_source: dict[str, list[int]] = {}
    for file, outcome in read_paths(scan_model, [r.path for r in records], cam="none"):
        if isinstance(outcome, MriError):
            continue
        for w in counts:
            counts[w] += w in outcome.warnings
        seen = per_source.setdefault(source_of[file], [0, 0])
        seen[0] += ood.OUT_OF_DISTRIBUTION in outcome.warnings
        seen[1] += 1
    n = len(records)
    return {"part": part, "n": n, "manifest_hash": manifest_hash,
            "rates": {w: round(c / n, 4) for w, c in counts.items()}, "counts": counts,
            "out_of_distribution_per_source": {s: {"flagged": f, "n": m} for s, (f, m) in sorted(per_source.items())}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--set", dest="role", default="eval", choices=list(SEEDS))
    args = parser.parse_args(argv)
    started = time.monotonic()
    scan_model = load_model(args.model)
    if scan_model.ood is None or scan_model.ood.stats is None:
        log(f"{scan_model.ref} has no ood statistics: only the cheap image checks run (bench/fit_ood.py fits them)")
    images = build_set(args.role)
    rows = {kind: {cat: read_all(scan_model, items) for cat, items in groups.items()} for kind, groups in images.items()}
    results = {kind: {cat: summarise(r) for cat, r in groups.items()} for kind, groups in rows.items()}
    totals = {kind: summarise([row for r in groups.values() for row in r]) for kind, groups in rows.items()}
    table = ["| set | category | n | flagged | fraction |", "|---|---|---|---|---|"]
    for kind, categories in results.items():
        for cat, s in categories.items():
            table.append(f"| {kind} | {cat} | {s['n']} | {s['flagged']} | {s['fraction_flagged']:.3f} |")
        table.append(f"| **{kind}** | **all** | {totals[kind]['n']} | {totals[kind]['flagged']} | **{totals[kind]['fraction_flagged']:.3f}** |")
    if args.role == "eval":
        mri_name, mri_bytes = brain_mri_sample()
        brain_sample = read_all(scan_model, [(mri_name, mri_bytes)])[0]
        log("false alarms on the MRI test split ...")
        mri = mri_false_alarms(scan_model, args.data, args.manifest)
        table.append(f"| MRI | test split false alarms | {mri['n']} | {mri['counts'][ood.OUT_OF_DISTRIBUTION]} | **{mri['rates'][ood.OUT_OF_DISTRIBUTION]:.4f}** |")
        update_results("ood", {
            "model": scan_model.ref, "ood_section": scan_model.info.get(ood.INFO_KEY),
            "real": results["real"], "synthetic": results["synthetic"],
            "real_all": totals["real"], "synthetic_all": totals["synthetic"],
            "matplotlib_brain_mri_sample": brain_sample, "mri": mri,
            "targets": {"fraction_flagged": 0.95, "mri_false_alarm": 0.02},
            "command": "python bench/ood.py", "seconds": round(time.monotonic() - started, 1),
        })
    print("\n".join(table))
    for kind in results:
        for cat, s in results[kind].items():
            if s["missed"]:
                log(f"missed ({kind} / {cat}): {', '.join(s['missed'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
