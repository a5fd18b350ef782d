"""Speed and memory of reading scans and of training, with the shipped default model.

    python bench/speed.py [--quick] [--data ../shared/data] [--slices 1000] [--only cli,app,...] [--no-write]

Each part records in `provenance` when, with which model and command it was measured; `--only`
re-measures some parts and keeps the others with their own provenance.

Measures, on this machine (the load average before and after is recorded: the figures are
only as quiet as the machine was):
- one slice, predict + Grad-CAM, in-process: cold (first read in a fresh process, after the
  model load) and warm (repeated reads), median and p95; import and model-load time;
- throughput in-process over N real slices: the streaming pipeline (`batch.stream_readings`)
  next to the sequential path it replaced (Pillow decode, then one batch at a time) and a
  plain `model.predict` loop (read, prepare, predict; no Grad-CAM), with the ratios;
- the CLI over N slices with Grad-CAM: start-up (to the first answer) and seconds per
  slice after start-up, first run (cold) and repeat runs (warm), peak RSS;
- Streamlit from `make run` to the page served (health answers; uploader shown with the
  model loaded), upload-to-answer in Chromium (cold: first upload; warm: the next ones),
  peak RSS of the server;
- training throughput (images/s) for `paper` and `default` on a small real subset.
Writes the "speed" section of bench/results.json and prints it.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import DEFAULT_DATA, PROJECT, log  # noqa: E402
from bench.results_store import RESULTS, update_results  # noqa: E402

# The slices: every 7th file of the 224 px set and of figshare (grey + colour JPEG, 512 px PNG).
SLICE_SOURCES = ("brain-tumor-mri-224", "figshare-boxes")
SLICE_STRIDE = 7
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
UPLOAD_INPUT = '[data-testid="stFileUploader"] input[type="file"]'
SERVER_TIMEOUT_S = 180


def spread(values) -> dict:
    """Median, p95, min, max and n of a list of seconds (rounded)."""
    values = [float(v) for v in values]
    if not values:
        return {"n": 0}
    return {"median": round(statistics.median(values), 4), "p95": round(float(np.percentile(values, 95)), 4),
            "min": round(min(values), 4), "max": round(max(values), 4), "n": len(values)}


def pick_slices(data: Path, n: int) -> list[Path]:
    files = sorted(p for source in SLICE_SOURCES for p in (data / source).rglob("*")
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    chosen = files[::SLICE_STRIDE]
    if len(chosen) < n:
        chosen = files
    return chosen[:n]


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# --- in-process ----------------------------------------------------------------------------

COLD_SCRIPT = """
import json, sys, time
started = time.perf_counter()
from mri_core.package import registry
from mri_core.inference.model import load_model
from mri_core.inference.read import read_upload
imported = time.perf_counter()
scan_model = load_model(registry.default_shipped())
loaded = time.perf_counter()
data = open(sys.argv[1], "rb").read()
read_upload(scan_model, data, sys.argv[1])
first = time.perf_counter()
print(json.dumps({"import_s": imported - started, "load_s": loaded - imported, "first_read_s": first - loaded}))
"""


def in_process_cold(slices: list[Path], runs: int) -> dict:
    """Fresh processes: import, model load, and the first read (includes the one trace)."""
    records = []
    for run in range(runs):
        output = subprocess.run([sys.executable, "-c", COLD_SCRIPT, str(slices[run])], cwd=PROJECT,
                                capture_output=True, text=True, check=True,
                                env={**os.environ, "MRI_HOME": tempfile.mkdtemp(prefix="speed-home-")})
        records.append(json.loads(output.stdout.strip().splitlines()[-1]))
    return {key: spread([r[key] for r in records]) for key in records[0]}


def in_process_warm(scan_model, slices: list[Path], reads: int) -> dict:
    from mri_core.inference.read import read_upload

    datas = [(p.read_bytes(), p.name) for p in slices[:reads]]
    read_upload(scan_model, *datas[0])
    times = []
    for data, name in datas:
        started = time.perf_counter()
        read_upload(scan_model, data, name)
        times.append(time.perf_counter() - started)
    return spread(times)


def sequential_read(scan_model, slices: list[Path], batch_size: int = 32) -> None:
    """The path before streaming: Pillow decode in the loop, then one batch at a time."""
    from mri_core.io import slices as io
    from mri_core.inference.read import read_slices

    for start in range(0, len(slices), batch_size):
        read_slices(scan_model, [io.read_file(p)[0] for p in slices[start:start + batch_size]])


def plain_predict_loop(scan_model, slices: list[Path], batch_size: int = 32) -> None:
    """What one writes first: read, prepare, `model.predict` per batch; no Grad-CAM."""
    from mri_core.io import slices as io
    from mri_core.io import preprocess

    for start in range(0, len(slices), batch_size):
        batch, _ = preprocess.prepare_batch([io.read_file(p)[0].pixels for p in slices[start:start + batch_size]],
                                            scan_model.image_size)
        scan_model.keras_model.predict(batch, verbose=0)


def consume(items) -> None:
    for _ in items:  # drop each answer at once, as the CLI does
        pass


def throughput(scan_model, slices: list[Path]) -> dict:
    from mri_core.inference.stream import stream_readings

    def timed(run) -> float:
        started = time.perf_counter()
        run()
        return (time.perf_counter() - started) / len(slices)

    warm_up = slices[:64]
    consume(stream_readings(scan_model, warm_up))
    sequential_read(scan_model, warm_up)
    plain_predict_loop(scan_model, warm_up)
    figures = {"n_slices": len(slices)}
    # interleaved twice, so a burst of load from elsewhere hits every variant alike
    runs = {"stream_gradcam_s_per_slice": [], "sequential_gradcam_s_per_slice": [], "plain_predict_loop_s_per_slice": [],
            "forward_only_predict_s_per_slice": []}
    from mri_core.io import slices as io
    from mri_core.io import preprocess

    prepared, _ = preprocess.prepare_batch([io.read_file(p)[0].pixels for p in slices], scan_model.image_size)
    for _ in range(2):
        runs["stream_gradcam_s_per_slice"].append(timed(lambda: consume(stream_readings(scan_model, slices))))
        runs["sequential_gradcam_s_per_slice"].append(timed(lambda: sequential_read(scan_model, slices)))
        runs["plain_predict_loop_s_per_slice"].append(timed(lambda: plain_predict_loop(scan_model, slices)))
        runs["forward_only_predict_s_per_slice"].append(
            timed(lambda: scan_model.keras_model.predict(prepared, batch_size=32, verbose=0)))
    for key, values in runs.items():
        figures[key] = round(min(values), 5)
    figures["ratio_stream_to_plain_predict_loop"] = round(
        figures["stream_gradcam_s_per_slice"] / figures["plain_predict_loop_s_per_slice"], 3)
    figures["ratio_stream_to_sequential"] = round(
        figures["stream_gradcam_s_per_slice"] / figures["sequential_gradcam_s_per_slice"], 3)
    return figures


# --- CLI -----------------------------------------------------------------------------------

def cli_run(slices: list[Path], batch_size: int = 32) -> dict:
    """One `python -m mri_core predict ... --json` run: start-up, per-slice time, peak RSS."""
    command = [sys.executable, "-m", "mri_core", "predict", *map(str, slices), "--json", "--batch-size", str(batch_size)]
    env = {**os.environ, "MRI_HOME": tempfile.mkdtemp(prefix="speed-home-")}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    arrivals, peak_rss_mb = [], 0.0
    for line in process.stdout:
        arrivals.append(time.perf_counter() - started)
        assert json.loads(line).get("label"), line
        # VmHWM only grows; read it while the process lives (ru_maxrss of a forked child
        # would count the bench's own memory from before the exec)
        peak_rss_mb = max(peak_rss_mb, _peak_rss_mb([process.pid]))
    status = process.wait()
    total = time.perf_counter() - started
    if status != 0 or len(arrivals) != len(slices):
        raise RuntimeError(f"CLI exited with status {status} after {len(arrivals)} of {len(slices)} lines")
    # answers come a batch at a time: per-slice time of each later batch = its gap / its size
    batch_ends = [arrivals[i] for i in range(batch_size - 1, len(arrivals), batch_size)]
    per_batch = [(later - earlier) / batch_size for earlier, later in zip(batch_ends, batch_ends[1:])]
    return {"startup_s": arrivals[0], "total_s": total,
            "s_per_slice_after_startup": (arrivals[-1] - arrivals[0]) / (len(slices) - 1),
            "per_batch_s_per_slice": per_batch, "peak_rss_mb": peak_rss_mb}


def cli_figures(slices: list[Path], runs: int) -> dict:
    results = [cli_run(slices) for _ in range(runs)]
    small = cli_run(slices[:100])  # memory must not grow with the number of files
    cold, warm = results[0], results[1:] or results
    return {
        "n_slices": len(slices),
        "command": f"python -m mri_core predict <{len(slices)} files> --json --batch-size 32",
        "cold_startup_s": round(cold["startup_s"], 3),
        "cold_s_per_slice_after_startup": round(cold["s_per_slice_after_startup"], 5),
        "warm_startup_s": spread([r["startup_s"] for r in warm]),
        "warm_s_per_slice_after_startup": spread([r["s_per_slice_after_startup"] for r in warm]),
        "per_batch_s_per_slice": spread([v for r in results for v in r["per_batch_s_per_slice"]]),
        "total_s": spread([r["total_s"] for r in results]),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results), 1),
        "peak_rss_mb_100_slices": round(small["peak_rss_mb"], 1),
    }


# --- Streamlit -----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _process_tree(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                pending += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def _peak_rss_mb(pids: list[int]) -> float:
    """Largest VmHWM (peak resident set) among the processes, in MB."""
    peaks = []
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            pass
    return max(peaks, default=0.0)


def make_run_command() -> tuple[list[str], str]:
    """`make run`; when the venv stamp is older than the requirement files (a fresh checkout
    next to an existing venv), tell make not to reinstall: the venv is present either way."""
    up_to_date = subprocess.run(["make", "-q", ".venv/.installed"], cwd=PROJECT).returncode == 0
    if up_to_date:
        return ["make", "run"], "make run"
    return ["make", "-o", ".venv/.installed", "run"], "make -o .venv/.installed run (venv present, stamp older than requirements)"


def app_figures(slices: list[Path], uploads: int) -> dict:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    command, described = make_run_command()
    env = {**os.environ, "STREAMLIT_SERVER_PORT": str(port), "STREAMLIT_SERVER_HEADLESS": "true",
           "MRI_HOME": tempfile.mkdtemp(prefix="speed-home-")}
    url = f"http://127.0.0.1:{port}"
    log_file = open(Path(tempfile.mkdtemp(prefix="speed-app-")) / "streamlit.log", "wb")
    started = time.perf_counter()
    server = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                              start_new_session=True)
    figures = {"command": described}
    try:
        while True:
            if time.perf_counter() - started > SERVER_TIMEOUT_S or server.poll() is not None:
                raise RuntimeError(f"streamlit did not start; see {log_file.name}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        figures["make_run_to_health_s"] = round(time.perf_counter() - started, 3)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(SERVER_TIMEOUT_S * 1000)
            page.goto(url)
            page.get_by_text("Upload one axial brain MRI slice").wait_for()
            figures["make_run_to_page_served_s"] = round(time.perf_counter() - started, 3)
            times = []
            for number, path in enumerate(slices[:uploads]):  # different files: no cached answer
                if number:  # a fresh page: the uploader takes several files and would add this one to the last
                    page.goto(url)
                    page.get_by_text("Upload one axial brain MRI slice").wait_for()
                upload_started = time.perf_counter()
                page.locator(UPLOAD_INPUT).set_input_files(str(path))
                # the overlay's caption names the new file only once its answer is drawn
                page.get_by_text(f"{path.name} · heatmap").wait_for()
                times.append(time.perf_counter() - upload_started)
            browser.close()
        figures["upload_to_answer_cold_s"] = round(times[0], 3)
        figures["upload_to_answer_warm_s"] = spread(times[1:])
        figures["server_peak_rss_mb"] = round(_peak_rss_mb(_process_tree(server.pid)), 1)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log_file.close()
    return figures


# --- training ------------------------------------------------------------------------------

def training_figures(data: Path, per_class: int, epochs: int) -> dict:
    """Images/s of the training step (second epoch on: the first includes the trace)."""
    from mri_core.io.inputs import prepare_files
    from mri_core.training.callbacks import Progress
    from mri_core.training.events import StepEnd
    from mri_core.training.prepared import TrainingData
    from mri_core.training.recipes import RECIPES, settings_for
    from mri_core.training.train import fit

    typed = data / "brain-tumor-mri-224"
    classes = sorted(p.name for p in typed.iterdir() if p.is_dir())
    files = [f for c in classes for f in sorted((typed / c).iterdir())[:per_class]]
    labels = np.array([classes.index(f.parent.name) for f in files], np.int32)
    figures = {"images": len(files), "epochs_timed": epochs - 1, "image_size": 128}
    for arch in RECIPES:
        images = prepare_files(files, 128)
        split = {"train": (images, labels), "val": (images[:32], labels[:32]), "test": (images[:32], labels[:32])}
        training = TrainingData(classes, split, summary={"split_sizes": {k: len(v[1]) for k, v in split.items()}})
        settings = settings_for(arch, epochs=epochs)
        stamps = []

        def on_event(event, stamps=stamps):
            if isinstance(event, StepEnd):
                stamps.append((event.epoch, event.step, time.perf_counter()))

        fit(training, settings, callbacks=[Progress(on_event)])
        timed = [s for s in stamps if s[0] >= 2]
        steps = len(timed) - 1
        seconds = timed[-1][2] - timed[0][2]
        figures[arch] = {"images_per_s": round(steps * settings.batch_size / seconds, 1),
                         "batch_size": settings.batch_size}
        log(f"training {arch}: {figures[arch]}")
    return figures


SECTIONS = ("cold", "warm", "throughput", "cli", "app", "training")


def _unknown_provenance(previous: dict) -> dict:
    """A part measured before figures carried their own provenance: the section's old stamp."""
    return {key: previous.get(key) for key in ("measured", "model", "command", "quick", "slices")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="fewer slices and runs (about 3 minutes)")
    parser.add_argument("--slices", type=int, help="slices for the CLI and throughput (default 1000, quick 200)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SECTIONS)}; "
                        "the other figures in bench/results.json are kept")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/results.json alone")
    args = parser.parse_args(argv)
    sections = args.only.split(",") if args.only else list(SECTIONS)
    n_slices = args.slices or (200 if args.quick else 1000)
    slices = pick_slices(args.data, n_slices)
    figures = {"quick": args.quick, "slices": f"{len(slices)} files: every {SLICE_STRIDE}th of {', '.join(SLICE_SOURCES)}"}

    from mri_core.package import registry
    from mri_core.inference.model import load_model

    entry = registry.default_shipped()
    figures["model"] = entry.ref
    scan_model = load_model(entry) if {"warm", "throughput"} & set(sections) else None
    parts = {
        "cold": ("one_slice_cold", lambda: in_process_cold(slices, 2 if args.quick else 5)),
        "warm": ("one_slice_warm_s", lambda: in_process_warm(scan_model, slices, 20 if args.quick else 50)),
        "throughput": ("throughput", lambda: throughput(scan_model, slices)),
        "cli": ("cli", lambda: cli_figures(slices, 2 if args.quick else 3)),
        "app": ("app", lambda: app_figures(slices, 4 if args.quick else 10)),
        "training": ("training", lambda: training_figures(args.data, 40 if args.quick else 80, 2 if args.quick else 3)),
    }
    command = "python bench/speed.py" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else "")
    figures["load_average"], figures["provenance"] = {}, {}
    for name in sections:  # each part with the load average (1, 5, 15 min) it ran under, and when and how it ran
        key, measure = parts[name]
        log(f"{name} ...")
        before = load_average()
        figures[key] = measure()
        figures["load_average"][name] = {"before": before, "after": load_average()}
        figures["provenance"][name] = {"measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                       "model": entry.ref, "command": command, "quick": args.quick,
                                       "slices": figures["slices"]}
    figures["command"] = command
    if not args.no_write:
        if args.only:  # keep the figures of the parts not re-run, each with the date, model and command it was measured with
            previous = json.loads(RESULTS.read_text()).get("speed", {}) if RESULTS.exists() else {}
            kept = [name for name in SECTIONS if name not in sections and parts[name][0] in previous]
            figures = {**{key: previous[key] for key in (parts[name][0] for name in kept)}, **figures,
                       "load_average": {**{n: previous.get("load_average", {}).get(n) for n in kept},
                                        **figures["load_average"]},
                       "provenance": {**{n: previous.get("provenance", {}).get(n, _unknown_provenance(previous))
                                         for n in kept}, **figures["provenance"]}}
        figures = update_results("speed", figures)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
