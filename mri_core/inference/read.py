"""The reading path end to end: bytes or files -> `io` -> `preprocess` -> model + Grad-CAM -> `Reading`.

Pages and the CLI call `read_upload` / `read_paths` and only format the `Reading`s they
get back. Batches go through the model together (one compiled Grad-CAM call per batch).
Whether a slice is a brain MRI at all is asked of the brain-MRI check (`brain_check`, the
shipped one unless a caller passes another, or None for none), whatever model reads it.
Never imports streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mri_core.io import slices as io

from mri_core.inference import ood

from mri_core.io import preprocess
from mri_core.io.errors import SettingsInvalid
from mri_core.inference.verdict import cannot_read_flags, decide, verdicts
from mri_core.inference.explain import cam_peak_and_box
from mri_core.inference.segmentation import lesion_of, mask_to_original
from mri_core.io.reading import CAM_METHODS, LESION_VERDICTS, Reading
from mri_core.io.volume import Volume

DEFAULT_BATCH_SIZE = 32
# The `check` a reading uses unless told otherwise: the brain-MRI check shipped in
# assets/checks/brain-mri (none there: the cheap image checks alone decide `cannot_read`).
SHIPPED_CHECK = "shipped"


def brain_check_of(check):
    """SHIPPED_CHECK -> the shipped brain-MRI check (loaded once per process; None when none is
    shipped); a `brain_check.BrainCheck` or None -> itself."""
    if isinstance(check, str) and check == SHIPPED_CHECK:
        from mri_core.inference.brain_check import load_brain_check

        return load_brain_check()
    return check


@dataclass(frozen=True)
class SliceNotes:
    """What a reading needs of a slice's full-size pixels, taken while they are at hand (the
    stream drops them before the model runs)."""

    warnings: tuple[str, ...]  # ood.pixel_warnings
    unreadable: bool  # the cheap checks found a blank or unreadable slice (ood.CANNOT_READ_REASONS)
    # the brain check's own reduced copy of the pixels (`brain_check.work_image`, 128 px a side;
    # the check reads it exactly as the full slice); None when no check is used
    check_view: np.ndarray | None = None


def slice_notes(scan_model, slice_: io.Slice, check=None) -> SliceNotes:
    """A slice with its full-size pixels -> its SliceNotes (`check`: a BrainCheck, or None)."""
    warnings, unreadable = ood.pixel_findings(scan_model, slice_)
    view = None
    if check is not None:
        from mri_core.inference.brain_check import work_image

        view = work_image(slice_.pixels)
    return SliceNotes(warnings, unreadable, view)


def read_slices(scan_model, slices: Sequence[io.Slice], cam: str = "gradcam", check=SHIPPED_CHECK) -> list[Reading]:
    """Slices -> one Reading each, in order, in one batch through the model."""
    batch, prepared = preprocess.prepare_batch([s.pixels for s in slices], scan_model.image_size)
    return read_prepared(scan_model, batch, prepared, slices, cam, check=check)


def read_prepared(scan_model, batch: np.ndarray, prepared: Sequence[preprocess.Prepared],
                  slices: Sequence[io.Slice], cam: str = "gradcam",
                  pixel_notes: Sequence[SliceNotes] | None = None, check=SHIPPED_CHECK) -> list[Reading]:
    """(N, S, S, 1) float32 model batch + its Prepared + the Slices it came from -> Readings.

    One pass through the network gives the class probabilities, the heatmap (from the class
    output) and, for a segmenting package, the tumor mask. With `pixel_notes` (each slice's
    `slice_notes`, taken while its pixels were at hand, with the same `check`) only the slices'
    names, spacings, warnings and indexes are used: their pixels may be dropped. A slice is
    `cannot_read` when the cheap checks find it blank or misshapen, or the brain-MRI `check`
    says it is not a brain MRI slice (alone, or at a lower level when the model's
    out-of-distribution detector agrees: `verdict.cannot_read_flags`).
    """
    if cam not in CAM_METHODS:
        raise SettingsInvalid(f"Unknown CAM method {cam!r}; choose one of {', '.join(CAM_METHODS)}.")
    if not len(slices):
        return []
    check = brain_check_of(check)
    if pixel_notes is None:
        pixel_notes = [slice_notes(scan_model, slice_, check) for slice_ in slices]
    out_of_distribution = ood.out_of_distribution_flags(scan_model, slices, batch,
                                                        [notes.warnings for notes in pixel_notes])
    cannot_read = np.array([notes.unreadable for notes in pixel_notes], bool)
    if check is not None:
        views = [notes.check_view for notes in pixel_notes]
        if any(view is None for view in views):
            raise ValueError("The slices' notes were taken without the brain-MRI check; take them with the same check.")
        cannot_read |= cannot_read_flags(check.not_mri_probability(views), check.threshold, out_of_distribution)
    if cam == "none":
        raw, masks = scan_model.predict_with_masks(batch)
        cams = None
    elif cam == "gradcam":
        raw, cams, masks = scan_model.gradcam.read(batch)  # evidence for the most likely tumor class
    else:
        raw, cams, masks = scan_model.library_cams_with_masks(batch, cam)
    probabilities = scan_model.calibrate(raw)
    labels, tumor, tumor_probability = decide(
        probabilities, scan_model.class_names, scan_model.no_tumor_classes, scan_model.threshold)
    verdict = verdicts(tumor_probability, scan_model.threshold, scan_model.uncertainty_band, cannot_read)
    extra_warnings = ood.reading_warnings(scan_model, slices, batch, tumor_probability,
                                          [notes.warnings for notes in pixel_notes], flags=out_of_distribution,
                                          no_call=cannot_read)
    readings = []
    for i, (slice_, prep) in enumerate(zip(slices, prepared)):
        heatmap = peak = box = None
        if cams is not None:
            heatmap = preprocess.heatmap_to_original(cams[i], prep)
            peak, box = cam_peak_and_box(heatmap)
        mask = lesion = None
        if masks is not None:
            if verdict[i] in LESION_VERDICTS:
                mask = mask_to_original(masks[i], prep, scan_model.mask_threshold, scan_model.mask_cleanup)
                lesion = lesion_of(mask, slice_.spacing)
            else:
                mask = np.zeros(prep.original_shape, bool)
        readings.append(Reading(
            source=slice_.source,
            label=labels[i],
            tumor=bool(tumor[i]),
            tumor_probability=float(tumor_probability[i]),
            threshold=scan_model.threshold,
            probabilities={c: float(p) for c, p in zip(scan_model.class_names, probabilities[i])},
            heatmap=heatmap,
            cam_peak=peak,
            cam_box=box,
            warnings=tuple(slice_.warnings) + extra_warnings[i],
            model=scan_model.ref,
            verdict=str(verdict[i]),
            slice_index=slice_.index if slice_.count > 1 else None,
            lesion=lesion,
            mask=mask,
        ))
    return readings


def read_upload(scan_model, data: bytes, name: str, cam: str = "gradcam",
                choice: io.SliceChoice = None, plane: str = "axial", check=SHIPPED_CHECK) -> list[Reading]:
    """Uploaded bytes (kept in memory) -> readings of the chosen slices of each series; MriError for a bad file."""
    volumes = io.read_volumes([(name, data)])
    return read_slices(scan_model, [s for v in volumes for s in io.volume_slices(v, choice, plane)], cam, check)


def read_volume(scan_model, volume: Volume, choice: io.SliceChoice = None, plane: str = "axial",
                cam: str = "gradcam", batch_size: int = DEFAULT_BATCH_SIZE, check=SHIPPED_CHECK) -> list[Reading]:
    """One series -> readings of the middle slice (None), slice N, or every slice ("all"), in slice order.

    Slices go through the model `batch_size` at a time ("scan all" of 155 slices is 5 batches).
    """
    slices = io.volume_slices(volume, choice, plane)
    check = brain_check_of(check)
    return [r for start in range(0, len(slices), batch_size)
            for r in read_slices(scan_model, slices[start:start + batch_size], cam, check)]


def most_suspicious_slice(readings: Sequence[Reading]) -> int:
    """The slice index with the highest tumor probability (the first of equals)."""
    best = max(range(len(readings)), key=lambda i: (readings[i].tumor_probability, -i))
    return readings[best].slice_index or 0
