"""Model cards: a plain-Markdown summary of a package, written from its `model.json` alone.

The card states intended use ("decision support, not a diagnosis"), the data and split,
test metrics, calibration and the operating point, and the command that reproduces the
model. Never imports streamlit or tensorflow.
"""

from __future__ import annotations

INTENDED_USE = (
    "Decision support for clinicians reading brain MRI, not a diagnosis. It reads one 2-D "
    "slice at a time and was trained on public web-gathered data sets; a reading must be "
    "checked against the full study by a qualified reader."
)


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(rows: list[tuple[str, str]]) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def _confusion(metrics: dict) -> list[str]:
    confusion = metrics.get("confusion_matrix") or {}
    labels, matrix = confusion.get("labels", []), confusion.get("matrix", [])
    if not labels:
        return []
    lines = ["", "Confusion matrix (rows: true class, columns: reported label):", "",
             "| true \\ reported | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(map(str, row)) + " |" for label, row in zip(labels, matrix)]
    return lines


def _rate(figure: dict | None) -> str:
    if not figure or figure.get("rate") is None:
        return "n/a"
    return f"{figure['rate']:.3f} [{figure['low']:.3f}, {figure['high']:.3f}] (n={figure['n']})"


def evaluation_section(evaluation: dict) -> list[str]:
    """Figures of the audit on `bench/splits/shipped.json` that `bench/accuracy.py` ran until issue 21
    (`bench/results.json` -> accuracy) for this model (95% confidence intervals)."""
    auc = evaluation.get("roc_auc") or {}
    ece = evaluation.get("ece") or {}
    place = evaluation.get("localisation") or {}
    rows = [
        ("accuracy (all test images; unknown-type tumors judged tumor vs no tumor)", _rate(evaluation.get("accuracy"))),
        ("ROC AUC, tumor vs no tumor", f"{auc.get('value', float('nan')):.4f} [{auc.get('low', float('nan')):.4f}, {auc.get('high', float('nan')):.4f}]" if auc else "n/a"),
        ("sensitivity", _rate(evaluation.get("sensitivity"))),
        ("specificity", _rate(evaluation.get("specificity"))),
    ]
    for source, figures in sorted((evaluation.get("per_source") or {}).items()):
        rows.append((f"sensitivity, {source}", _rate(figures.get("sensitivity"))))
        if figures.get("specificity"):
            rows.append((f"specificity, {source}", _rate(figures.get("specificity"))))
    if ece:
        rows.append(("ECE (15 bins), before -> after temperature", f"{ece['before']:.3f} -> {ece['after']:.3f}"))
    if place:
        rows.append(("Grad-CAM pointing game (centre-of-brain baseline)",
                     f"{_rate(place.get('pointing_game'))} ({place['pointing_game_centre']['rate']:.3f})"))
        rows.append(("Grad-CAM mean IoU of cam_box (centre baseline)",
                     f"{place['iou']['mean']:.3f} ({place['iou_centre']['mean']:.3f})"))
    return ["", "## Evaluation on the committed test split", "",
            "From the audit that `python bench/accuracy.py` ran on `bench/splits/shipped.json` until issue 21 "
            "(95% Wilson or bootstrap intervals):", "", *_table(rows)]


def _decision(info: dict) -> str:
    band = info.get("uncertainty_band")
    if band:
        return (f"no_tumor below {band[0]:.3f}, uncertain (refer to a reader) from {band[0]:.3f} to {band[1]:.3f}, "
                f"tumor at or above {band[1]:.3f} (calibrated tumor probability); threshold {info['threshold']:.3f}")
    return f"tumor_probability >= {info['threshold']:.2f}"


def _band(info: dict, point: dict) -> list[str]:
    low, high = info["uncertainty_band"]
    lines = ["", "## Operating point and uncertainty band", "",
             f"{_decision(info)}. Rule: {point['rule']}.",
             f"The low end was set by {point['set_by']['low']}, the high end by {point['set_by']['high']}.",
             "", "On validation (rates of that stratum's images):", "",
             "| stratum | tumors | missed (no_tumor) | healthy | healthy called tumor | deferred |",
             "|---|---|---|---|---|---|"]
    for stratum, figures in (point.get("validation") or {}).items():
        lines.append(f"| {stratum} | {figures['tumors']} | {_fmt(figures['missed'])} | {figures['healthy']} | "
                     f"{_fmt(figures['healthy_called_tumor'])} | {_fmt(figures['deferred'])} |")
    return lines


def _operating_point(info: dict) -> list[str]:
    point = info.get("operating_point")
    if not point:
        return []
    if info.get("uncertainty_band"):
        return _band(info, point)
    lines = ["", "## Operating point", "",
             f"Tumor when the calibrated tumor probability is >= {info['threshold']:.3f}. Rule: {point['rule']}."]
    per_source = point.get("validation") or {}
    if per_source:
        lines += ["", "On validation, at that threshold:", "",
                  "| source | sensitivity (tumors) | specificity (no-tumor images) |", "|---|---|---|"]
        for source, figures in sorted(per_source.items()):
            sens = "n/a" if figures["sensitivity"] is None else f"{figures['sensitivity']:.3f}"
            spec = "n/a" if figures["specificity"] is None else f"{figures['specificity']:.3f}"
            lines.append(f"| {source} | {sens} ({figures['tumors']}) | {spec} ({figures['healthy']}) |")
    return lines


def _segmentation(segmentation: dict | None) -> str:
    if not segmentation:
        return "none (a classifier only; the heatmap shows where the evidence lies)"
    text = (f"a second output `{segmentation['output']}`: per-pixel tumor probability, tumor at >= "
            f"{segmentation['threshold']:.2f} (validation Dice at the model's resolution "
            f"{_fmt(segmentation.get('validation_dice_model_resolution'))} on {segmentation.get('validation_outlines')} "
            "outlines)")
    cleanup = segmentation.get("cleanup") or {}
    steps = ([f"the threshold falls to {cleanup['relative']:.0%} of the slice's highest mask probability where that "
              "is lower (so a faint mask still outlines)"] if cleanup.get("relative") else []) \
        + ([f"parts whose own peak is under {cleanup['component_peak']:.0%} of the slice's highest are dropped"]
           if cleanup.get("component_peak") else []) \
        + (["holes inside a part are filled"] if cleanup.get("fill_holes") else [])
    if steps:
        text += (f"; then, chosen on the same outlines ({_fmt(segmentation.get('validation_dice_model_resolution_cleaned'))}"
                 f" with it): {'; '.join(steps)}")
    return text + "; the heatmap still comes from the class output"


def strata_section(figures: dict) -> list[str]:
    """Figures of `bench/accuracy.py` for this model: every rate and ROC AUC with its 95 % interval."""
    verdicts = figures["verdicts"]
    rows = [(f"missed tumors (verdict no_tumor), {source}", _rate(entry["missed"]))
            for source, entry in verdicts["tumor_sources"].items()]
    rows += [(f"healthy called tumor, {stratum}", _rate(entry["called_tumor"]))
             for stratum, entry in verdicts["healthy_strata"].items()]
    rows += [("healthy called tumor, all", _rate(verdicts["healthy_called_tumor_all"])),
             ("deferred MRI (uncertain or cannot_read)", _rate(verdicts["deferred_mri"]))]
    rows += [(f"deferred, {stratum}", _rate(entry)) for stratum, entry in verdicts["deferred_strata"].items()]
    rows += [("MRI read as cannot_read", _rate(verdicts["mri_cannot_read"])),
             ("head CT read as cannot_read", _rate(verdicts.get("not_mri_cannot_read"))),
             ("head CT called tumor", _rate(verdicts.get("not_mri_called_tumor"))),
             ("4-class accuracy among readings not deferred", _rate(verdicts["four_class_accuracy_not_deferred"]))]
    rows += [(f"ROC AUC, tumor vs healthy MRI, {group}", f"{auc['auc']:.3f} [{auc['low']:.3f}, {auc['high']:.3f}] "
              f"({auc['tumors']} tumors, {auc['healthy']} healthy)") for group, auc in figures.get("roc_auc", {}).items()]
    for source, entry in figures.get("segmentation", {}).items():
        for key, what in (("mask", "mask"), ("cam", "Grad-CAM at half its peak, as a mask")):
            if key not in entry:
                continue
            d = entry[key]
            rows.append((f"Dice of the {what}, {source} (mean [95%]; pooled)",
                         f"{d['mean_dice']:.3f} [{d['low']:.3f}, {d['high']:.3f}]; {d['pooled_dice']:.3f} (n={entry['n']})"))
    rows += [(f"Grad-CAM pointing game, {source}", _rate(entry)) for source, entry in figures.get("pointing_game", {}).items()]
    calibration = figures.get("calibration", {})
    if calibration:
        rows.append(("ECE (15 bins): tumor probability; top label",
                     f"{calibration['ece_tumor_probability']:.3f}; {calibration['ece_top_label']:.3f}"))
    return ["", "## Figures per source, class and plane (test split)", "",
            f"From `python bench/accuracy.py` on {figures['images']} test images read through the CLI's reading path "
            "(95% Wilson intervals; ROC AUC and Dice: bootstrap). The test split shares the styles of the training data: an upper "
            "bound.", "", *_table(rows)]


def _reading(reading: dict) -> str:
    parts = []
    if reading.get("mirror_average"):
        parts.append("probabilities and Grad-CAM averaged over the slice and its left-right mirror")
    if reading.get("heatmap_sigma"):
        parts.append(f"heatmap smoothed by a Gaussian of {float(reading['heatmap_sigma']):g} model-input px")
    return "; ".join(parts) or "plain (one pass, heatmap at the layer's grid)"


def _training_recipe(info: dict) -> list[str]:
    settings, data = info.get("settings", {}), info.get("data", {})
    rows = [(k, _fmt(settings.get(k))) for k in ("epochs", "batch_size", "learning_rate", "image_size", "seed")
            if k in settings]
    if "source_balance" in settings:
        rows.append(("source balance (loss weight of each source/class stratum = (median size / size) ** x)",
                     _fmt(settings["source_balance"])))
    if settings.get("box_weight"):
        rows.append(("box loss weight (class evidence kept inside tumor boxes)",
                     f"{_fmt(settings['box_weight'])} on {data.get('boxed_train_images', 'n/a')} boxed training images"))
    if settings.get("mask_weight") and info.get("segmentation"):
        rows.append(("mask loss weight (binary cross-entropy + Dice on outlines, empty outlines of healthy slices)",
                     f"{_fmt(settings['mask_weight'])} on {data.get('outlined_train_images', 'n/a')} outlined and "
                     f"{data.get('healthy_zero_mask_train_images', 'n/a')} healthy training images"))
    if settings.get("group_sampling"):
        rows.append(("one image per near-duplicate group per epoch", f"{data.get('train_groups', 'n/a')} groups"))
    return ["", *_table(rows)] if rows else []


def model_card(info: dict, evaluation: dict | None = None, failure_modes: str | None = None,
               strata: dict | None = None) -> str:
    """model.json content (+ optional benchmark figures, figures per stratum and known failure
    modes) -> MODEL_CARD.md text."""
    data, metrics = info.get("data", {}), info.get("test_metrics", {})
    history = info.get("history", [])
    sizes = data.get("split_sizes", {})
    lines = [
        f"# Model card: {info['name']}@{info['version']}",
        "",
        "## Intended use",
        "",
        INTENDED_USE,
        "",
        "## Model",
        "",
        *_table([
            ("architecture", f"`{info['architecture']}`"),
            ("input", f"{info['input']['size']}x{info['input']['size']} grey, brain-cropped, normalised to [0, 1]"),
            ("classes (output order)", ", ".join(info["class_names"])),
            ("no-tumor classes", ", ".join(info["no_tumor_classes"])),
            ("tumor decision", _decision(info)),
            ("segmentation", _segmentation(info.get("segmentation"))),
            ("calibration temperature", _fmt(info.get("temperature"))),
            ("Grad-CAM layer", f"`{info['gradcam_layer']}`"),
            ("reading", _reading(info.get("reading", {}))),
            ("created", info.get("created", "n/a")),
        ]),
        "",
        "## Data",
        "",
        *_table([
            ("roots", ", ".join(data.get("roots", []))),
            ("images per class", ", ".join(f"{k} {v}" for k, v in data.get("counts_per_class", {}).items())),
            ("split", f"{data.get('split', 'n/a')} (seed {data.get('split_seed', 'n/a')}; manifest {data.get('manifest') or 'none'})"),
            ("train / val / test", f"{sizes.get('train', 'n/a')} / {sizes.get('val', 'n/a')} / {sizes.get('test', 'n/a')}"),
            ("near-duplicate groups", _fmt(data.get("duplicate_groups"))),
            ("test images with a near-duplicate in train", _fmt(data.get("test_leakage"))),
        ]),
        "",
        "## Test metrics",
        "",
        *_table([
            ("n", _fmt(metrics.get("n"))),
            ("accuracy", _fmt(metrics.get("accuracy"))),
            ("ROC AUC (tumor vs no tumor)", _fmt(metrics.get("roc_auc"))),
            ("sensitivity", _fmt(metrics.get("sensitivity"))),
            ("specificity", _fmt(metrics.get("specificity"))),
            ("expected calibration error (15 bins)", _fmt(metrics.get("ece"))),
        ]),
        *_confusion(metrics),
        *_operating_point(info),
        *(strata_section(strata) if strata else []),
        *(evaluation_section(evaluation) if evaluation else []),
        *(["", "## Known failure modes", "", failure_modes.strip()] if failure_modes else []),
        "",
        "## Training",
        "",
        f"{len(history)} epochs; the weights of the epoch with the lowest validation loss are kept"
        + (f" (best validation loss {min(h['val_loss'] for h in history):.3f})." if history else "."),
        *_training_recipe(info),
        "",
        "Reproduce:",
        "",
        "```",
        info.get("command", "n/a"),
        "```",
        "",
        "## Limitations",
        "",
        "- One 2-D slice at a time; no use of neighbouring slices or other sequences.",
        "- Public web-gathered training data of mixed provenance and known label noise; "
        "performance on a given scanner or protocol is unknown until measured there.",
        "- Grad-CAM shows roughly where the evidence lies; it is not a segmentation"
        + (" (the mask output is)." if info.get("segmentation") else "."),
        "",
    ]
    return "\n".join(lines)
