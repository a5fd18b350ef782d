"""Measuring the tumor the model outlines: a slice's largest diameter, each slice's thickness, and a
series' tumor volume.

- Diameter: the greatest distance between the centres of two tumor pixels within one slice, scaled
  by the pixel spacing (row, col) when known. The farthest pair always lies on the convex hull of
  the pixel centres (an axis scaling keeps the hull's corners), so only those are compared.
- Slice thickness: for a series whose every slice has a position along the normal (DICOM
  ImagePositionPatient), each slice spans from the midpoint to its lower neighbour to the midpoint
  to its upper one (an end slice mirrors its one gap), so unevenly spaced series are measured as
  they lie. Else every slice gets the volume's spacing between slices (DICOM SpacingBetweenSlices,
  then SliceThickness, or the NIfTI zooms); coronal and sagittal slices of an isotropic volume get
  the voxel side across them.
- Volume: the sum over slices of the tumor area (pixels x pixel area) times the slice's thickness,
  in mL (1 mL = 1000 mm^3).

Plain NumPy and OpenCV. Never imports streamlit.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from mri_core.io.volume import FROM_POSITIONS, PLANES, Volume, plane_count, plane_spacing

UNKNOWN_SPACING = "unknown"


def positive_spacing(spacing: Sequence[float] | None) -> tuple[float, float] | None:
    """(row, col) mm per pixel when both are positive and finite, else None (unknown)."""
    if spacing is None:
        return None
    row_mm, col_mm = (float(v) for v in spacing)
    return (row_mm, col_mm) if row_mm > 0 and col_mm > 0 and np.isfinite(row_mm * col_mm) else None


def max_diameter(mask: np.ndarray, spacing: Sequence[float] | None = None) -> tuple[float, float | None] | None:
    """(H, W) bool mask -> (diameter in pixels, diameter in mm or None without spacing); None when
    the mask is empty. A single pixel measures 0."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"Expected a 2-D mask (H, W), got shape {mask.shape}.")
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    points = np.stack([cols, rows], axis=1).astype(np.int32)
    hull = cv2.convexHull(points).reshape(-1, 2).astype(np.float64) if len(points) > 2 else points.astype(np.float64)

    def farthest(scale_x: float, scale_y: float) -> float:
        scaled = hull * np.array([scale_x, scale_y])
        gaps = scaled[:, None, :] - scaled[None, :, :]
        return float(np.sqrt((gaps ** 2).sum(axis=-1)).max())

    mm = positive_spacing(spacing)
    return farthest(1.0, 1.0), (farthest(mm[1], mm[0]) if mm else None)


def slice_thicknesses(volume: Volume, plane: str = "axial") -> tuple[np.ndarray | None, str]:
    """Each slice's thickness in mm along `plane` and where it came from (a DICOM tag name,
    "NIfTI zooms", or "unknown" with None when the file does not say)."""
    if plane not in PLANES:
        raise ValueError(f"Unknown plane {plane!r}; choose one of {', '.join(PLANES)}.")
    count = plane_count(volume, plane)
    positions = volume.slice_positions
    if plane == "axial" and positions is not None and len(positions) == count and count > 1:
        along = np.asarray(positions, dtype=np.float64)
        gaps = np.diff(along)
        if (gaps > 0).all():
            halves = np.concatenate([[gaps[0]], gaps, [gaps[-1]]]) / 2  # mirrored gaps at the two ends
            return halves[:-1] + halves[1:], FROM_POSITIONS
    if volume.spacing is None:
        return None, UNKNOWN_SPACING
    along_mm, rows_mm, cols_mm = (float(v) for v in volume.spacing)
    if plane == "axial":
        if volume.thickness_source is None or not along_mm > 0:
            return None, UNKNOWN_SPACING
        return np.full(count, along_mm), volume.thickness_source
    # coronal slices are stacked along the rows of the axial slices, sagittal along their columns
    across = rows_mm if plane == "coronal" else cols_mm
    source = volume.thickness_source if volume.thickness_source else UNKNOWN_SPACING
    if not across > 0 or source == UNKNOWN_SPACING:
        return None, UNKNOWN_SPACING
    return np.full(count, across), source


def volume_summary(masks: Sequence[np.ndarray | None], volume: Volume, plane: str = "axial") -> dict:
    """One bool mask per slice of `plane` (None or all zero where there is no tumor) ->
    {"volume_ml", "slices_with_tumor" (0-based), "max_diameter_mm", "max_diameter_px",
    "spacing_source", "areas_px", "areas_mm2"}. `volume_ml` is None unless both the pixel
    spacing and the slice thickness are known; the mm figures None without pixel spacing."""
    count = plane_count(volume, plane)
    if len(masks) != count:
        raise ValueError(f"{volume.source}: expected one mask per {plane} slice ({count}), got {len(masks)}.")
    spacing = positive_spacing(plane_spacing(volume, plane))
    thickness, source = slice_thicknesses(volume, plane)
    areas_px = [0 if mask is None else int(np.count_nonzero(mask)) for mask in masks]
    diameters = {i: max_diameter(mask, spacing) for i, mask in enumerate(masks) if areas_px[i]}
    return combine(areas_px, diameters, None if thickness is None else list(thickness), source, spacing)


def combine(areas_px: Sequence[int], diameters: dict[int, tuple[float, float | None]],
            thicknesses: Sequence[float | None] | None, thickness_source: str,
            spacing: tuple[float, float] | None) -> dict:
    """Per-slice facts -> `volume_summary`'s dict: each slice's tumor area in pixels, the
    (px, mm) diameter of each slice that holds tumor (by 0-based index), each slice's thickness
    (None where unknown), where the thickness came from, and the pixel spacing (row, col) mm.
    The one place the volume and the largest diameter are figured."""
    with_tumor = sorted(i for i, area in enumerate(areas_px) if area)
    pixel_mm2 = spacing[0] * spacing[1] if spacing else None
    areas_mm2 = [a * pixel_mm2 for a in areas_px] if pixel_mm2 else None
    volume_ml = None
    if areas_mm2 is not None and thicknesses is not None and None not in thicknesses:
        volume_ml = float(np.dot(areas_mm2, thicknesses)) / 1000.0
    return {"volume_ml": volume_ml, "slices_with_tumor": with_tumor,
            "max_diameter_mm": max((diameters[i][1] or 0.0 for i in with_tumor), default=0.0)
            if spacing and with_tumor else None,
            "max_diameter_px": max(diameters[i][0] for i in with_tumor) if with_tumor else None,
            "spacing_source": thickness_source if spacing else UNKNOWN_SPACING,
            "areas_px": list(areas_px), "areas_mm2": areas_mm2}
