"""The command line contract of DESIGN.md, run as a user runs it (a real subprocess).

Each start of the CLI starts TensorFlow (seconds), so a run whose output several tests read is made
once (module fixtures), and runs that do not depend on each other start side by side.
"""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONTRACT_KEYS = {"file", "verdict", "label", "tumor", "tumor_probability", "threshold", "probabilities",
                 "lesion", "cam_peak", "cam_box", "warnings", "model"}


def run_cli(*args, timeout=300, **extra_env):
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **extra_env}
    return subprocess.run([sys.executable, "-m", "mri_core", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=PROJECT_ROOT, env=env)


def run_cli_side_by_side(runs: dict[str, tuple], **extra_env) -> dict[str, subprocess.CompletedProcess]:
    """Independent CLI runs ({key: args}), each its own process as with `run_cli`, started together
    so that one starts TensorFlow while another reads: {key: its finished process}."""
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        started = {key: pool.submit(run_cli, *args, **extra_env) for key, args in runs.items()}
        return {key: future.result() for key, future in started.items()}


@pytest.fixture(scope="module")
def tiny_runs(tiny_model_dir, kaggle_dir, tmp_path_factory) -> dict:
    """The tiny model's independent `predict` runs for the tests below, side by side (one TensorFlow
    start per run, not per test; a fresh MRI_HOME). {run: (its inputs, its finished process, its folder)}:

    "json": --json --save-heatmaps over a tumor, a corrupt PNG, a healthy slice, then two tumors saved
    under one stem in two folders (a/scan.jpg, b/scan.jpg);
    "cam_none": --json --cam none --slice all --volume-summary over a plain tumor slice, then a
    two-slice NIfTI volume (the tiny model does not segment);
    "readable": the readable lines, with --save-masks, over a tumor and a blank image.
    """
    from PIL import Image
    from scans import nifti_bytes, stack_of

    tmp_path = tmp_path_factory.mktemp("tiny_runs")
    tumor, other_tumor = kaggle_dir / "yes" / "Y1.jpg", kaggle_dir / "yes" / "Y10.jpg"
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    one, two = tmp_path / "a", tmp_path / "b"
    one.mkdir(), two.mkdir()
    (one / "scan.jpg").write_bytes(tumor.read_bytes())
    (two / "scan.jpg").write_bytes(other_tumor.read_bytes())
    volume = tmp_path / "brain.nii.gz"
    volume.write_bytes(nifti_bytes(stack_of(sorted((kaggle_dir / "yes").iterdir())[:2], size=64), gz=True))
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 200), 40, np.uint8)).save(blank)
    inputs = {"json": [tumor, corrupt, sorted((kaggle_dir / "no").iterdir())[0], one / "scan.jpg", two / "scan.jpg"],
              "cam_none": [tumor, volume], "readable": [tumor, blank]}
    folders = {"json": tmp_path / "maps", "cam_none": None, "readable": tmp_path / "masks"}
    done = run_cli_side_by_side({
        "json": ("predict", *inputs["json"], "--model", tiny_model_dir, "--json", "--save-heatmaps", folders["json"]),
        "cam_none": ("predict", *inputs["cam_none"], "--model", tiny_model_dir, "--cam", "none", "--json",
                     "--slice", "all", "--volume-summary"),
        "readable": ("predict", *inputs["readable"], "--model", tiny_model_dir, "--save-masks", folders["readable"]),
    }, MRI_HOME=str(tmp_path / "home"))
    return {run: (inputs[run], done[run], folders[run]) for run in inputs}


def test_predict_json_answers_every_file_in_order_and_flags_the_corrupt_one(tiny_runs):
    files, done, heatmaps = tiny_runs["json"]
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]  # stdout holds only JSON lines
    assert [line["file"] for line in lines] == [str(f) for f in files]
    assert set(lines[1]) == {"file", "error"} and "broken.png" in lines[1]["error"]
    for line in lines[:1] + lines[2:]:
        assert set(line) == CONTRACT_KEYS
        assert line["tumor"] == (line["tumor_probability"] >= line["threshold"])
        assert line["model"] == "tiny@1"
    saved = np.load(heatmaps / "Y1.npy")
    height, width = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(files[0]).convert("L")).shape
    assert saved.shape == (height, width) and saved.dtype == np.float32
    x, y = lines[0]["cam_peak"]
    assert saved[y, x] == pytest.approx(saved.max())


def test_predict_all_good_exits_zero_and_cam_none_gives_nulls(tiny_runs):
    (plain, volume), done, _ = tiny_runs["cam_none"]
    assert done.returncode == 0, done.stderr
    readings = [line for line in map(json.loads, done.stdout.splitlines()) if "summary" not in line]
    assert [line["file"] for line in readings] == [str(plain), str(volume), str(volume)]
    for line in readings:
        assert line["cam_peak"] is None and line["cam_box"] is None


def test_same_stems_get_numbered_heatmaps(tiny_runs):
    files, done, heatmaps = tiny_runs["json"]  # ends with a/scan.jpg, b/scan.jpg; the corrupt file gets none
    assert sorted(p.name for p in heatmaps.iterdir()) == sorted(["Y1.npy", f"{files[2].stem}.npy", "scan.npy",
                                                                 "scan_1.npy"])
    from PIL import Image

    for name, path in zip(["scan.npy", "scan_1.npy"], files[3:]):  # numbered in input order (sizes differ)
        assert np.load(heatmaps / name).shape == np.asarray(Image.open(path).convert("L")).shape


def test_save_masks_writes_each_inputs_outline_where_its_lesion_says(figshare_dir, tmp_path):
    """Issue 21: a segmenting package (band (0, 0): every MRI reads `tumor`) -> DIR/<stem>.png, uint8
    at the original size, 255 exactly on the lesion's pixels; all zero for an input it cannot read;
    numbered where two inputs share a stem."""
    from PIL import Image
    from segmenting import write_segmenting_package

    from mri_core.io import slices as io

    source = sorted((figshare_dir / "glioma").iterdir())[0]
    package = write_segmenting_package(tmp_path / "seg", io.read_file(source)[0].pixels, band=(0.0, 0.0))
    one, two = tmp_path / "a", tmp_path / "b"
    one.mkdir(), two.mkdir()
    (one / "scan.png").symlink_to(source)
    (two / "scan.png").symlink_to(sorted((figshare_dir / "meningioma").iterdir())[0])
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 200), 40, np.uint8)).save(blank)
    masks = tmp_path / "masks"
    done = run_cli("predict", one / "scan.png", two / "scan.png", blank, "--model", package, "--json",
                   "--save-masks", masks)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["verdict"] for line in lines] == ["tumor", "tumor", "cannot_read"]
    assert sorted(p.name for p in masks.iterdir()) == ["blank.png", "scan.png", "scan_1.png"]
    for line, name, path in zip(lines, ["scan.png", "scan_1.png", "blank.png"], [one / "scan.png", two / "scan.png", blank]):
        saved = np.asarray(Image.open(masks / name))
        assert saved.dtype == np.uint8 and saved.shape == np.asarray(Image.open(path).convert("L")).shape
        assert set(np.unique(saved)) <= {0, 255}
        if line["lesion"] is None:
            assert not saved.any(), name
            continue
        ys, xs = np.nonzero(saved)
        assert [xs.min(), ys.min(), xs.max(), ys.max()] == line["lesion"]["box"]
        assert len(xs) == line["lesion"]["area_px"] and line["lesion"]["area_mm2"] is None
    assert lines[0]["lesion"] is not None and lines[2]["lesion"] is None


def test_the_readable_line_leads_with_the_verdict_and_an_old_package_saves_no_masks(tiny_runs):
    _, done, masks = tiny_runs["readable"]
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first.split(": ", 1)[1].startswith(("TUMOR (", "no tumor ("))
    assert second.startswith("blank.png: CANNOT READ (not a brain MRI slice like the training ones) warnings: "
                             "out_of_distribution")
    assert "p(tumor)" not in second  # no tumor call for an input it cannot read
    assert "does not segment" in done.stderr and not masks.exists()


def test_bad_arguments_exit_two_with_a_message(tumor_image_path):
    done = run_cli("predict", tumor_image_path, "--model", "no-such-model", "--json")
    assert done.returncode == 2 and "No model 'no-such-model'" in done.stderr and done.stdout == ""
    assert run_cli("predict", "--cam", "bogus", tumor_image_path).returncode == 2


def _train_then_evaluate(data, home: Path, name: str, activation_flag: str, *evaluate_args):
    """`train` (the quickest architecture: the contract, not the network, is tested), then `evaluate`."""
    done = run_cli("train", data, "--arch", "paper", "--epochs", "1", "--image-size", "48", "--name", name,
                   activation_flag, MRI_HOME=str(home))
    return home, done, run_cli("evaluate", data, *evaluate_args, "--json", MRI_HOME=str(home))


@pytest.fixture(scope="module")
def trained_by_cli(small_kaggle, tmp_path_factory) -> dict:
    """The two activation tests' CLI runs, each `train` then `evaluate` in its own MRI_HOME: "refused"
    (--activate, then evaluate --model cli-model) and "forced" (--activate-anyway, then evaluate with
    no --model). The two chains are independent processes, so they run side by side (one starts
    TensorFlow while the other trains). -> {chain: (home, train process, evaluate process)}."""
    homes = {chain: tmp_path_factory.mktemp(chain) / "home" for chain in ("refused", "forced")}
    with ThreadPoolExecutor(max_workers=2) as pool:
        refused = pool.submit(_train_then_evaluate, small_kaggle, homes["refused"], "cli-model", "--activate",
                              "--model", "cli-model")
        forced = pool.submit(_train_then_evaluate, small_kaggle, homes["forced"], "forced", "--activate-anyway")
        return {"refused": refused.result(), "forced": forced.result()}


def test_train_prints_the_package_path_last_and_evaluate_prints_metrics(trained_by_cli):
    home, done, evaluated = trained_by_cli["refused"]
    # saved, but 60 images make a model the activation rule keeps inactive: the reasons on stderr, exit 1
    assert done.returncode == 1, done.stderr
    package = Path(done.stdout.strip().splitlines()[-1])
    assert (package / "model.keras").is_file() and package.parent.name == "cli-model"
    assert "epoch 1/1" in done.stderr
    assert "warning: No out-of-distribution statistics: " in done.stderr
    assert "warning: cli-model@1 was not activated: it has no out-of-distribution statistics" in done.stderr
    assert "--activate-anyway" in done.stderr and "(not activated: see the warning above)" in done.stderr
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert metrics["n"] == 60 and {"accuracy", "roc_auc", "sensitivity", "specificity", "confusion_matrix", "ece"} <= set(metrics)
    assert metrics["model"] == "cli-model@1"
    from mri_core.package.registry import ACTIVE_FILE

    assert not (home / ACTIVE_FILE).exists(), "the refused model was not activated"


def test_train_activate_anyway_activates_a_model_that_fails_the_rule(trained_by_cli):
    _, done, evaluated = trained_by_cli["forced"]
    assert done.returncode == 0, done.stderr
    assert "warning: No out-of-distribution statistics: " in done.stderr and "was not activated" not in done.stderr
    assert "(active)" in done.stderr
    assert evaluated.returncode == 0, evaluated.stderr  # evaluate with no --model: the activated model
    metrics = json.loads(evaluated.stdout)
    assert metrics["n"] == 60 and metrics["model"] == "forced@1"


def test_training_on_a_bad_data_set_says_why(tmp_path):
    (tmp_path / "yes").mkdir()
    done = run_cli("train", tmp_path, "--epochs", "1")
    assert done.returncode == 2 and "error:" in done.stderr and "Traceback" not in done.stderr


def test_predict_reads_volumes_dicom_folders_and_slices_and_never_prints_patient_tags(kaggle_dir, tmp_path):
    from scans import SECRET_TAGS, dicom_bytes, nifti_bytes, stack_of

    stack = stack_of(sorted((kaggle_dir / "yes").iterdir())[:3], size=128)
    volume = tmp_path / "brain.nii.gz"
    volume.write_bytes(nifti_bytes(stack, gz=True))
    series = tmp_path / "series"
    series.mkdir()
    for i, s in enumerate(stack):  # extensionless DICOM files, full of identifying tags
        (series / f"IM{i}").write_bytes(dicom_bytes(s, position=float(i), **SECRET_TAGS))
    single = tmp_path / "one.dcm"
    single.write_bytes(dicom_bytes(stack[0], **SECRET_TAGS))
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(dicom_bytes(stack[0], **SECRET_TAGS)[:-5000])

    done, chosen = run_cli_side_by_side({  # two independent runs of the active model
        "every": ("predict", volume, series, single, broken, "--json", "--slice", "all",
                  "--save-heatmaps", tmp_path / "maps"),
        "chosen": ("predict", volume, "--json", "--slice", "2")}).values()
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(line["file"], line.get("slice")) for line in lines] == [
        (str(volume), 0), (str(volume), 1), (str(volume), 2),
        (str(series), 0), (str(series), 1), (str(series), 2), (str(single), None), (str(broken), None)]
    assert set(lines[0]) == CONTRACT_KEYS | {"slice"} and lines[3]["series"] == "series (3 files)"
    assert "broken.dcm" in lines[-1]["error"]
    x, y = lines[1]["cam_peak"]
    assert 0 <= x < 128 and 0 <= y < 128  # pixels of the chosen slice
    assert (tmp_path / "maps" / "brain_slice1.npy").exists()
    printed = done.stdout + done.stderr
    for value in SECRET_TAGS.values():
        for part in value.split("^"):
            assert part not in printed, f"identifying value {part!r} was printed"

    assert chosen.returncode == 0, chosen.stderr
    [line] = [json.loads(x) for x in chosen.stdout.splitlines()]
    assert line["slice"] == 2 and line["tumor_probability"] == lines[2]["tumor_probability"]
    assert run_cli("predict", volume, "--slice", "middle").returncode == 2


def _farthest_pair_mm(mask_png: Path, row_mm: float, col_mm: float) -> float:
    """Every pair of tumor pixel centres of a saved mask, compared by brute force, in mm."""
    from PIL import Image

    rows, cols = np.nonzero(np.asarray(Image.open(mask_png)))
    points = np.stack([rows * row_mm, cols * col_mm], axis=1)
    return float(max(np.sqrt(((points - p) ** 2).sum(axis=1)).max() for p in points))


def test_volume_summary_measures_each_series_by_hand(kaggle_dir, tmp_path):
    """--volume-summary: after each volume's slice lines, one line whose volume is the saved masks'
    pixels x the pixel area the file gives x each slice's thickness (NIfTI zooms 0.8 x 0.9 x 2.5 mm;
    DICOM PixelSpacing 0.5 x 0.5 mm, slices at z 0, 3, 4 mm -> 3, 2, 1 mm thick by their midpoints);
    a blank slice reads cannot_read and holds no tumor; a plain image gets no summary line."""
    from scans import dicom_bytes, stack_of
    from segmenting import write_segmenting_package

    import nibabel as nib

    real = stack_of(sorted((kaggle_dir / "yes").iterdir())[:3], size=96)
    stack = np.stack([real[0], np.zeros_like(real[0]), real[1], real[2]])  # slice 1 is blank
    package = write_segmenting_package(tmp_path / "seg", real[0] / 255.0, band=(0.0, 0.0))
    view = np.ascontiguousarray(np.transpose(stack[:, ::-1, ::-1], (2, 1, 0)))  # as scans.nifti_bytes lays it
    volume = tmp_path / "brain.nii"
    nib.save(nib.Nifti1Image(view, np.diag([0.9, 0.8, 2.5, 1.0])), volume)
    series = tmp_path / "series"
    series.mkdir()
    for z, pixels in zip([0.0, 3.0, 4.0], real):
        (series / f"IM{int(z)}").write_bytes(dicom_bytes(pixels, position=z))
    plain = kaggle_dir / "yes" / "Y1.jpg"
    masks = tmp_path / "masks"

    done = run_cli("predict", volume, series, plain, "--model", package, "--json", "--slice", "all",
                   "--volume-summary", "--save-masks", masks)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(line["file"], line.get("slice"), "summary" in line) for line in lines] == [
        (str(volume), 0, False), (str(volume), 1, False), (str(volume), 2, False), (str(volume), 3, False),
        (str(volume), None, True),
        (str(series), 0, False), (str(series), 1, False), (str(series), 2, False), (str(series), None, True),
        (str(plain), None, False)]
    readings = [line for line in lines if "summary" not in line]
    assert all(set(line) >= CONTRACT_KEYS for line in readings)  # every slice line carries its lesion
    assert lines[1]["verdict"] == "cannot_read" and lines[1]["lesion"] is None

    def expected(stem, slices, row_mm, col_mm, thicknesses, source):
        areas = [int(np.count_nonzero(np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(
            masks / f"{stem}_slice{i}.png")))) for i in range(slices)]
        with_tumor = [i for i, area in enumerate(areas) if area]
        return {"volume_ml": pytest.approx(sum(a * row_mm * col_mm * t for a, t in zip(areas, thicknesses)) / 1000),
                "slices_with_tumor": with_tumor,
                "max_diameter_mm": pytest.approx(max(_farthest_pair_mm(masks / f"{stem}_slice{i}.png", row_mm, col_mm)
                                                     for i in with_tumor), abs=1e-6),
                "max_diameter_px": pytest.approx(max(_farthest_pair_mm(masks / f"{stem}_slice{i}.png", 1, 1)
                                                     for i in with_tumor), abs=1e-6),
                "spacing_source": source}

    nifti_summary, dicom_summary = lines[4], lines[8]
    assert set(nifti_summary) == {"file", "series", "summary"} and nifti_summary["series"] == "brain.nii"
    zoom = [float(np.float32(mm)) for mm in (0.8, 0.9)]  # the header stores its zooms as float32
    assert nifti_summary["summary"] == expected("brain", 4, *zoom, [2.5] * 4, "NIfTI zooms")
    assert nifti_summary["summary"]["slices_with_tumor"] == [0, 2, 3]
    assert dicom_summary["series"] == lines[5]["series"]
    assert dicom_summary["summary"] == expected("series", 3, 0.5, 0.5, [3.0, 2.0, 1.0], "ImagePositionPatient")
    assert dicom_summary["summary"]["volume_ml"] > 0


def test_volume_summary_needs_every_slice_and_says_when_the_model_does_not_segment(tiny_model_dir, tiny_runs):
    (plain, volume), done, _ = tiny_runs["cam_none"]  # --slice all --volume-summary, the tiny model
    refused = run_cli("predict", volume, "--model", tiny_model_dir, "--json", "--volume-summary")
    assert refused.returncode == 2 and "--volume-summary needs --slice all" in refused.stderr
    assert refused.stdout == ""
    assert done.returncode == 0, done.stderr
    assert "does not segment tumors" in done.stderr
    alone, *slices, last = [json.loads(line) for line in done.stdout.splitlines()]
    assert alone["file"] == str(plain) and "slice" not in alone  # a plain image: no summary line after it
    assert [line["slice"] for line in slices] == [0, 1]
    assert last == {"file": str(volume), "series": "brain.nii.gz",
                    "summary": {"volume_ml": None, "slices_with_tumor": None, "max_diameter_mm": None,
                                "max_diameter_px": None, "spacing_source": "NIfTI zooms"}}
