"""A stack of slices (a DICOM series or a NIfTI volume), the planes a reader can page through,
and the `Slice` every reading starts from.

A `Volume` holds float32 (Z, H, W) voxels in [0, 1], already windowed, as axial slices
ordered inferior to superior with each slice in radiological view (patient's right on the
image's left, anterior at the top), like the 2-D training images. `plane_slice` cuts one
slice out of it along the axial, coronal or sagittal plane; the two reformatted planes are
offered only for isotropic volumes, where they are not squashed; `volume_slices` gives the
chosen ones as `Slice`s. Identifying DICOM tags never reach a `Volume`: it keeps only the
study and series descriptions. No file formats here (`raster`, `dicom` and `nifti` decode
them). Never imports streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mri_core.io.errors import NotASlice, UnreadableImage

PLANES = ("axial", "coronal", "sagittal")
# The warning a reader attaches when the file cannot say how the volume lies in the body (e.g. a
# NIfTI whose qform and sform codes are both 0): its "axial" slices may be sideways or mirrored.
ORIENTATION_UNKNOWN = "orientation_unknown"
# Voxels whose sides differ by at most this ratio are isotropic: reformatting looks right.
ISOTROPIC_RATIO = 1.1
# Smaller than this is a thumbnail, an icon or a line, not a slice a model can read (for
# plain images too: `raster` uses this bound).
MIN_SIDE = 16
# Robust window for volumes without a stored display range; a few hot voxels must not
# darken the rest. Estimated on at most this many voxels (a strided sample) to stay fast.
WINDOW_PERCENTILES = (0.5, 99.5)
WINDOW_SAMPLE_VOXELS = 2_000_000


# Where a volume's slice thickness comes from, best first (DICOM tags by name; NIfTI's voxel sizes)
FROM_POSITIONS = "ImagePositionPatient"
NIFTI_ZOOMS = "NIfTI zooms"
THICKNESS_SOURCES = (FROM_POSITIONS, "SpacingBetweenSlices", "SliceThickness", NIFTI_ZOOMS)
# Where a volume's pixel spacing (row, col) comes from: `dicom` reads it only from PixelSpacing, `nifti` from the zooms
DICOM_PIXEL_SPACING = "DICOM PixelSpacing"

SliceChoice = int | str | None  # None: the middle slice; N: slice N; "all": every slice


@dataclass(frozen=True)
class Slice:
    pixels: np.ndarray  # float32 (H, W) in [0, 1]
    source: str  # file name to show the user (no directories)
    spacing: tuple[float, float] | None = None  # mm per pixel (row, col) when known
    index: int = 0  # which slice of how many (for volumes)
    count: int = 1
    warnings: tuple[str, ...] = ()  # e.g. "converted_from_color", "had_alpha", "16_bit"


@dataclass(frozen=True)
class Volume:
    voxels: np.ndarray  # float32 (Z, H, W) in [0, 1]: axial slices, inferior -> superior
    source: str  # file or folder name to show the user (no directories)
    spacing: tuple[float, float, float] | None = None  # mm (slice, row, col) when known
    # Where spacing[0], the distance between axial slices, came from: one of THICKNESS_SOURCES, None when unknown
    thickness_source: str | None = None
    # Each axial slice's position along the slice normal in mm (DICOM ImagePositionPatient), when the
    # file gives every one: a series may be unevenly spaced, and measuring a volume needs each gap
    slice_positions: tuple[float, ...] | None = None
    study_description: str = ""  # the only DICOM descriptions shown; never names or IDs
    series_description: str = ""
    warnings: tuple[str, ...] = ()  # e.g. "4d_first_volume", "non_finite_voxels", "orientation_unknown"

    @property
    def count(self) -> int:
        return int(self.voxels.shape[0])

    @property
    def pixel_spacing_source(self) -> str | None:
        """Where `spacing`'s row and column mm came from (DICOM_PIXEL_SPACING or NIFTI_ZOOMS); None when not given."""
        if self.spacing is None:
            return None
        return NIFTI_ZOOMS if self.thickness_source == NIFTI_ZOOMS else DICOM_PIXEL_SPACING

    @property
    def label(self) -> str:
        """What a series picker shows: descriptions (or the file name) and the slice count."""
        described = " · ".join(d for d in (self.study_description, self.series_description) if d)
        return f"{described or self.source} ({self.count} slice{'s' if self.count != 1 else ''})"


def make_volume(voxels: np.ndarray, source: str, **fields) -> Volume:
    """(Z, H, W) float32 in [0, 1] -> Volume; NotASlice when its axial slices are not slices."""
    if voxels.ndim != 3 or voxels.shape[0] < 1:
        raise NotASlice(f"{source}: expected a stack of 2-D slices, got an array of shape {voxels.shape}.")
    height, width = voxels.shape[1:]
    if (height < MIN_SIDE or width < MIN_SIDE) and voxels.shape[0] == 1:
        raise NotASlice(f"{source}: the image is {width}x{height} pixels; a slice must be at least "
                        f"{MIN_SIDE}x{MIN_SIDE} pixels. Upload the full-size scan, not a thumbnail.")
    if height < MIN_SIDE or width < MIN_SIDE:
        raise NotASlice(
            f"{source}: its axial slices are only {width}x{height} pixels ({voxels.shape[0]} slices); "
            f"a slice must be at least {MIN_SIDE}x{MIN_SIDE}. The volume is probably too thin in "
            f"this direction or its orientation header is wrong; export it with axial slices.")
    return Volume(voxels=np.ascontiguousarray(voxels, dtype=np.float32), source=source, **fields)


def available_planes(volume: Volume) -> tuple[str, ...]:
    """Axial always; coronal and sagittal too when the voxels are isotropic and the stack is deep."""
    if volume.spacing is None or volume.count < MIN_SIDE:
        return PLANES[:1]
    spacing = np.asarray(volume.spacing, dtype=np.float64)
    if spacing.min() <= 0 or spacing.max() / spacing.min() > ISOTROPIC_RATIO:
        return PLANES[:1]
    return PLANES


def plane_count(volume: Volume, plane: str = "axial") -> int:
    """How many slices the volume has along `plane`."""
    axis = _plane_axis(volume, plane)
    return int(volume.voxels.shape[axis])


def middle_index(volume: Volume, plane: str = "axial") -> int:
    return plane_count(volume, plane) // 2


def plane_slice(volume: Volume, index: int, plane: str = "axial") -> np.ndarray:
    """Slice `index` of `plane` -> float32 (H, W) in [0, 1], superior / anterior / right at the top-left."""
    count = plane_count(volume, plane)
    if not 0 <= index < count:
        raise NotASlice(f"{volume.source}: there is no {plane} slice {index}; choose 0 to {count - 1}.")
    if plane == "axial":
        return np.ascontiguousarray(volume.voxels[index])
    # The stack runs inferior -> superior: flip so that superior is at the top.
    if plane == "coronal":
        return np.ascontiguousarray(volume.voxels[::-1, index, :])
    return np.ascontiguousarray(volume.voxels[::-1, :, index])


def volume_slices(volume: Volume, choice: SliceChoice = None, plane: str = "axial") -> list[Slice]:
    """The slices to read: the middle one (None), slice N (0-based), or every slice ("all")."""
    count = plane_count(volume, plane)
    if choice == "all":
        indices = range(count)
    elif choice is None:
        indices = [middle_index(volume, plane)]
    else:
        indices = [int(choice)]
    return [Slice(pixels=plane_slice(volume, i, plane), source=volume.source,
                  spacing=plane_spacing(volume, plane), index=i, count=count, warnings=volume.warnings)
            for i in indices]


def plane_spacing(volume: Volume, plane: str = "axial") -> tuple[float, float] | None:
    """mm per pixel (row, col) of a slice along `plane`, when known."""
    if volume.spacing is None:
        return None
    along, rows, cols = volume.spacing
    return {"axial": (rows, cols), "coronal": (along, cols), "sagittal": (along, rows)}[plane]


def _plane_axis(volume: Volume, plane: str) -> int:
    if plane not in available_planes(volume):
        if plane in PLANES:
            raise NotASlice(f"{volume.source}: {plane} slices are only offered for isotropic volumes "
                            f"(equal voxel sides, at least {MIN_SIDE} slices); use axial.")
        raise NotASlice(f"Unknown plane {plane!r}; choose one of {', '.join(PLANES)}.")
    return PLANES.index(plane)


def window_volume(values: np.ndarray, source: str, display_range: tuple[float, float] | None = None
                  ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Any-range voxels -> (float32 same shape in [0, 1], warnings); NaN/inf become 0.

    `display_range` (low, high) is the stored window when the file has one; otherwise a
    robust percentile window over the whole volume, so every slice shares one scale.
    """
    values = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(values)
    all_finite = bool(finite.all())
    if not finite.any():
        raise UnreadableImage(f"{source}: every voxel is NaN or infinite, so there is no image to "
                              f"read; export the volume again from the scanner or the processing tool.")
    if display_range is not None and display_range[1] > display_range[0]:
        low, high = display_range
    else:
        low, high = _percentile_range(values if all_finite else values[finite])
    scaled = np.clip((values - np.float32(low)) / np.float32(max(high - low, 1e-12)), 0.0, 1.0)
    if not all_finite:
        scaled = np.where(finite, scaled, np.float32(0.0))
    return scaled.astype(np.float32, copy=False), () if all_finite else ("non_finite_voxels",)


def _percentile_range(values: np.ndarray) -> tuple[float, float]:
    flat = values.reshape(-1)
    sample = flat[:: max(1, flat.size // WINDOW_SAMPLE_VOXELS)]
    low, high = (float(v) for v in np.percentile(sample, WINDOW_PERCENTILES))
    if high <= low:  # a nearly flat volume: use its full range instead
        low, high = float(flat.min()), float(flat.max())
    return low, high
