"""Command line: `python -m mri_core predict | train | evaluate` (the contract in DESIGN.md).

Stdout carries only results (JSON lines for `predict --json`, one JSON object for
`evaluate --json`, the package path for `train`); progress and messages go to stderr.
Exit codes: 0 ok, 1 some input could not be read (the rest were answered) or `train --activate`
saved a model that the activation rule (`mri_core.package.activation`) kept inactive, 2 bad
arguments or settings. Never imports streamlit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ logs off the terminal

from mri_core.io.errors import MriError  # noqa: E402
from mri_core.io.reading import CAM_METHODS, JSON_DECIMALS  # noqa: E402
from mri_core.training.recipes import RECIPES, SPLITS, STRATEGIES, default_arch, settings_for  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mri_core", description="Brain MRI tumor screening (decision support, not a diagnosis).")
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="read scans: label, tumor probability, Grad-CAM peak and box")
    predict.add_argument("files", nargs="+", metavar="FILE")
    predict.add_argument("--model", help="model name, name@version or package folder (default: the active model)")
    predict.add_argument("--cam", default="gradcam", choices=CAM_METHODS,
                         help="heatmap method (default gradcam: the best trade-off, see bench/cams.py)")
    predict.add_argument("--save-heatmaps", metavar="DIR", help="write DIR/<stem>.npy heatmaps at the original size")
    predict.add_argument("--save-masks", metavar="DIR",
                         help="write DIR/<stem>.png tumor masks at the original size (255 = tumor; all 0 when the "
                              "verdict is neither tumor nor uncertain); needs a model that segments")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("--report", metavar="DIR", help="write DIR/<stem>.pdf: a one-page reading report per input")
    predict.add_argument("--json", action="store_true", help="one JSON object per line (the machine-readable contract)")
    predict.add_argument("--slice", type=_slice_choice, default=None, metavar="N|all",
                         help="for DICOM series and NIfTI volumes: slice N (0-based), or all (one line each); "
                              "default: the middle slice")
    predict.add_argument("--plane", default="axial", choices=["axial", "coronal", "sagittal"],
                         help="slice plane for volumes (coronal and sagittal need isotropic voxels)")
    predict.add_argument("--volume-summary", action="store_true",
                         help="needs --slice all: after the lines of each series or volume (of more than one slice), "
                              "one line {file, series, summary: {volume_ml, slices_with_tumor (0-based), "
                              "max_diameter_mm, max_diameter_px, spacing_source}} from the tumor outlines; a plain "
                              "2-D image gets none; with a model that does not segment, the figures are null")

    train = commands.add_parser("train", help="train a model on folder-per-class data")
    train.add_argument("data_dirs", nargs="+", metavar="DATA_DIR")
    train.add_argument("--arch", default=default_arch(), choices=list(RECIPES),
                       help="default: %(default)s, the shipped default model's architecture")
    for flag, kind, text in (
        ("--epochs", int, "number of epochs"),
        ("--image-size", int, "side of the model input in pixels"),
        ("--batch-size", int, "images per batch (per device)"),
        ("--learning-rate", float, "Adam's learning rate (the start of the recipe's schedule)"),
        ("--source-balance", float, "weight (source, class) strata by (median size / size) ** X; 0 = off"),
        ("--box-weight", float, "weight of the loss that keeps the class evidence inside tumor boxes "
                                "(a data folder's boxes.csv); 0 = off"),
        ("--mask-weight", float, "weight of the mask loss on tumor outlines (a data folder's masks/<stem>.png) "
                                 "and healthy slices; adds a segmentation output when the data has outlines; 0 = off"),
    ):
        key = flag[2:].replace("-", "_")
        train.add_argument(flag, type=kind, help=f"{text}; default: {_recipe_defaults(key)}")
    train.add_argument("--group-sampling", action=argparse.BooleanOptionalAction, default=None,
                       help="draw one image per near-duplicate group each epoch; default: "
                            f"{_recipe_defaults('group_sampling')}")
    train.add_argument("--not-mri", metavar="DIR",
                       help="a flat folder of images that are not brain MRI (e.g. head CT): never trained as a class; "
                            "its validation and test images (split by the manifest, else by near-duplicate group) "
                            "measure how often the verdict refuses them")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--name")
    train.add_argument("--activate", action="store_true",
                       help="make the new model the active one if it passes the activation rule (out-of-distribution "
                            "statistics, enough test images per class, sensitivity, accuracy, calibration); "
                            "else it stays inactive, the reasons go to stderr and the exit code is 1")
    train.add_argument("--activate-anyway", action="store_true",
                       help="make the new model the active one even if it fails the activation rule")
    train.add_argument("--strategy", default="auto", choices=list(STRATEGIES))
    train.add_argument("--split", default="grouped", choices=list(SPLITS),
                       help="grouped keeps near-duplicates on one side (default); naive splits per image as the paper did")
    train.add_argument("--manifest", help="follow this split manifest (e.g. bench/splits/shipped.json)")
    train.add_argument("--checkpoint", metavar="DIR",
                       help="save the state after every epoch here; if DIR holds a checkpoint, resume from it")

    evaluate = commands.add_parser("evaluate", help="metrics of a model on folder-per-class data")
    evaluate.add_argument("data_dirs", nargs="+", metavar="DATA_DIR")
    evaluate.add_argument("--model")
    evaluate.add_argument("--manifest", help="evaluate only the images of one part of this split manifest")
    evaluate.add_argument("--part", default="test", choices=["train", "val", "test"])
    evaluate.add_argument("--json", action="store_true")
    return parser


def _recipe_defaults(key: str) -> str:
    """A setting's default in every recipe, e.g. "30 (paper), 36 (default)"."""
    return ", ".join(f"{recipe.defaults[key]:g} ({name})" for name, recipe in RECIPES.items())


def _slice_choice(text: str) -> int | str:
    if text == "all":
        return "all"
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a slice number (0, 1, ...) or 'all', got {text!r}")


def _load(ref: str | None):
    from mri_core.package import registry
    from mri_core.inference.model import load_model

    return load_model(ref if ref else registry.active())


def _heatmap_path(folder: Path, stem: str, used: set[str], suffix: str = ".npy") -> Path:
    """DIR/<stem><suffix>, with _1, _2, ... where an earlier input of this run took the stem."""
    name, n = stem, 0
    while name in used:
        n += 1
        name = f"{stem}_{n}"
    used.add(name)
    return folder / f"{name}{suffix}"


def _output_stem(file: str, reading) -> str:
    """The stem of an input's saved heatmap or mask: the file's, plus _sliceN for a slice of a volume."""
    stem = Path(file).stem.removesuffix(".nii")
    return f"{stem}_slice{reading.slice_index}" if reading.slice_index is not None else stem


# The human-readable line leads with the verdict, in words.
VERDICT_WORDS = {"tumor": "TUMOR", "no_tumor": "no tumor", "uncertain": "UNCERTAIN, refer to a reader",
                 "cannot_read": "CANNOT READ (not a brain MRI slice like the training ones)"}


def _format_reading(reading) -> str:
    warn = f" warnings: {', '.join(reading.warnings)}" if reading.warnings else ""
    if reading.verdict == "cannot_read":  # no tumor call
        return f"{reading.source}: {VERDICT_WORDS[reading.verdict]}{warn}"
    where = f" peak {list(reading.cam_peak)}" if reading.cam_peak else ""
    lesion = reading.lesion
    if lesion is not None:
        mm2 = f", {lesion['area_mm2']:.1f} mm2" if lesion["area_mm2"] is not None else ""
        across = (f", diameter {lesion['diameter_mm']:.1f} mm" if lesion.get("diameter_mm") is not None
                  else f", diameter {lesion['diameter_px']:.1f} px" if lesion.get("diameter_px") is not None else "")
        where += f" lesion {lesion['area_px']} px{mm2}{across} box {list(lesion['box'])}"
    return (f"{reading.source}: {VERDICT_WORDS.get(reading.verdict, reading.verdict)} ({reading.label}) "
            f"p(tumor)={reading.tumor_probability:.3f} threshold {reading.threshold:.2f}{where}{warn}")


def _save_mask(folder: Path, file: str, reading, used: set[str]) -> None:
    from PIL import Image

    from mri_core.inference.segmentation import mask_uint8

    Image.fromarray(mask_uint8(reading.mask)).save(_heatmap_path(folder, _output_stem(file, reading), used, ".png"))


def _write_report(folder: Path, file: str, reading, scan_model, cam: str, used: set[str], place,
                  plane: str = "axial") -> None:
    from mri_core.io import slices as io
    from mri_core.present.report import reading_report

    # decoded again (readings keep no pixels): the reading's slice, of its series among the file's
    pixels = io.read_file(file, reading.slice_index, plane)[place.number].pixels
    path = _heatmap_path(folder, Path(file).stem + (f"_slice{reading.slice_index}" if reading.slice_index is not None else ""), used)
    path.with_suffix(".pdf").write_bytes(reading_report(reading, pixels, scan_model.info, cam,
                                                        spacing_source=place.pixel_spacing_source))


def _summary_json(summary: dict) -> dict:
    """A series' summary (`series.SeriesTally`) -> the JSON line's `summary`, floats rounded as a reading's."""
    def rounded(value):
        return None if value is None else round(float(value), JSON_DECIMALS)

    slices = summary["slices_with_tumor"]
    return {"volume_ml": rounded(summary["volume_ml"]),
            "slices_with_tumor": None if slices is None else [int(i) for i in slices],
            "max_diameter_mm": rounded(summary["max_diameter_mm"]),
            "max_diameter_px": rounded(summary["max_diameter_px"]),
            "spacing_source": summary["spacing_source"]}


def _format_summary(series: str, summary: dict) -> str:
    from mri_core.present.report import summary_words

    if summary["slices_with_tumor"] is None:
        return f"{series}: no tumor volume: the model does not segment tumors"
    return f"{series}: volume summary (slices counted from 1): {summary_words(summary)}"


def run_predict(args) -> int:
    import numpy as np

    from mri_core.inference.series import SeriesTally
    from mri_core.inference.stream import read_path_items

    scan_model = _load(args.model)
    if args.volume_summary and not scan_model.segments:
        print(f"note: {scan_model.ref} does not segment tumors, so --volume-summary has no outline to measure: "
              "its summary lines carry null figures", file=sys.stderr)
    folder = Path(args.save_heatmaps) if args.save_heatmaps else None
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
    masks = Path(args.save_masks) if args.save_masks else None
    if masks and not scan_model.segments:
        print(f"note: {scan_model.ref} does not segment tumors, so --save-masks writes no masks", file=sys.stderr)
        masks = None
    if masks:
        masks.mkdir(parents=True, exist_ok=True)
    reports = Path(args.report) if args.report else None
    if reports:
        reports.mkdir(parents=True, exist_ok=True)
    used_stems: set[str] = set()
    used_mask_stems: set[str] = set()
    used_report_stems: set[str] = set()
    failed = False
    tally = None  # the series being read, when --volume-summary measures it
    for item in read_path_items(scan_model, args.files, cam=args.cam, batch_size=args.batch_size,
                                choice=args.slice, plane=args.plane):
        file, outcome, place = item.file, item.outcome, item.place
        if isinstance(outcome, MriError):
            failed = True
            line = json.dumps({"file": file, "error": str(outcome)}) if args.json else f"{file}: ERROR {outcome}"
        else:
            record = outcome.to_json()
            record["file"] = file
            if outcome.source != Path(file).name:  # a folder or zip: name the series (a file name, never a tag)
                record["series"] = outcome.source
            if folder and outcome.heatmap is not None:
                np.save(_heatmap_path(folder, _output_stem(file, outcome), used_stems), outcome.heatmap.astype(np.float32))
            if masks and outcome.mask is not None:
                _save_mask(masks, file, outcome, used_mask_stems)
            if reports:
                _write_report(reports, file, outcome, scan_model, args.cam, used_report_stems, place, args.plane)
            line = json.dumps(record) if args.json else _format_reading(outcome)
        print(line, flush=True)
        # a series of more than one slice, every one read: measured once its last slice is in
        if args.volume_summary and place is not None and place.whole and outcome.slice_index is not None:
            tally = SeriesTally() if place.ordinal == 0 else tally
            tally.add(outcome, place)
            if place.last:
                summary = tally.summary()
                print(json.dumps({"file": file, "series": place.series, "summary": _summary_json(summary)})
                      if args.json else _format_summary(place.series, summary), flush=True)
    return 1 if failed else 0


class ProgressBar:
    """Draws training events on stderr: a bar inside the epoch, a line per finished epoch."""

    def __init__(self, stream=sys.stderr, width: int = 30):
        self.stream, self.width = stream, width

    def __call__(self, event) -> None:
        from mri_core.training.events import DataReady, EpochEnd, PartFailed, StepEnd

        if isinstance(event, DataReady):
            self.stream.write(f"data: {event.n_train} train / {event.n_val} val / {event.n_test} test images, "
                              f"classes {', '.join(event.class_names)}, {event.skipped} unreadable skipped, "
                              f"{event.duplicate_groups} near-duplicate groups\n")
        elif isinstance(event, StepEnd):
            filled = int(self.width * event.step / event.steps)
            self.stream.write(f"\repoch {event.epoch} [{'=' * filled}{' ' * (self.width - filled)}] {event.step}/{event.steps}")
        elif isinstance(event, EpochEnd):
            self.stream.write(f"\repoch {event.epoch}/{event.epochs} loss {event.loss:.4f} acc {event.accuracy:.3f} "
                              f"val_loss {event.val_loss:.4f} val_acc {event.val_accuracy:.3f} "
                              f"elapsed {event.elapsed_s:.0f}s eta {event.eta_s:.0f}s\n")
        elif isinstance(event, PartFailed):
            self.stream.write(f"warning: {event.message}\n")
        self.stream.flush()


def run_train(args) -> int:
    from mri_core.package import registry
    from mri_core.training.train import train_and_save

    settings = settings_for(args.arch, epochs=args.epochs, image_size=args.image_size,
                            batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                            name=args.name, strategy=args.strategy, split=args.split, manifest=args.manifest,
                            source_balance=args.source_balance, box_weight=args.box_weight,
                            mask_weight=args.mask_weight, group_sampling=args.group_sampling, not_mri=args.not_mri)
    started = time.monotonic()
    asked = args.activate or args.activate_anyway
    entry = train_and_save(args.data_dirs, settings, on_event=ProgressBar(), activate=asked,
                           checkpoint_dir=args.checkpoint, confirm=args.activate_anyway)
    if entry is None:
        print("worker finished; the chief saves the model", file=sys.stderr)
        return 0
    metrics = entry.info.get("test_metrics", {})
    is_active = asked and registry.active().path.resolve() == entry.path.resolve()
    state = " (active)" if is_active else " (not activated: see the warning above)" if asked else ""
    print(f"saved {entry.ref} in {time.monotonic() - started:.0f}s; test accuracy {metrics.get('accuracy')}{state}",
          file=sys.stderr)
    print(entry.path)
    return 1 if asked and not is_active else 0


def run_evaluate(args) -> int:
    from mri_core.training.evaluate import evaluate_dirs

    scan_model = _load(args.model)
    metrics = evaluate_dirs(scan_model, args.data_dirs, manifest=args.manifest, part=args.part)
    print(json.dumps(metrics) if args.json else json.dumps(metrics, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    handlers = {"predict": run_predict, "train": run_train, "evaluate": run_evaluate}
    try:
        parser = _parser()
        args = parser.parse_args(argv)  # the --arch default is read from the shipped default model
        if args.command == "predict" and args.volume_summary and args.slice != "all":
            parser.error("predict --volume-summary needs --slice all: a series is measured over every slice")
        return handlers[args.command](args)
    except MriError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
