"""A series' tumor summary from its streamed readings, without keeping a mask or a voxel.

The stream (`inference.stream`) drops each slice's pixels before the model runs and forgets the
`Volume` once its slices are decoded, so `measure.volume_summary` (masks + Volume) cannot run at
its end. Instead each decoded slice travels with a `SeriesPlace`: which series of its input it
belongs to, its place among the slices read, its thickness (`measure.slice_thicknesses`) and its
pixel spacing. A `SeriesTally` then adds each reading's lesion (area and diameter, already measured
on the full mask) and gives, after the series' last slice, the same summary `volume_summary`
gives. Only a few numbers per slice are kept. Never imports streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mri_core.inference.measure import UNKNOWN_SPACING, combine, positive_spacing, slice_thicknesses
from mri_core.io.reading import Reading
from mri_core.io.volume import Slice, SliceChoice, Volume, volume_slices


@dataclass(frozen=True)
class SeriesPlace:
    """Where a slice lies in its series, and what measuring the series needs of it (no pixels)."""

    series: str  # the volume's source, as the reading's `source` names it
    number: int  # which series of its input (0-based), e.g. of a folder holding two
    ordinal: int  # this slice's place among the slices read of the series (0-based)
    read: int  # how many slices of the series are read
    whole: bool  # every slice of the plane is read (`--slice all`): only then is the series measured
    thickness_mm: float | None  # this slice's thickness along the plane; None when the file does not say
    thickness_source: str  # measure.slice_thicknesses's source: a DICOM tag, "NIfTI zooms" or "unknown"
    pixel_spacing: tuple[float, float] | None  # mm per pixel (row, col), the slice's, as its lesion was measured
    pixel_spacing_source: str | None  # Volume.pixel_spacing_source: where the row and column mm came from

    @property
    def last(self) -> bool:
        return self.ordinal == self.read - 1


def placed_slices(volume: Volume, number: int = 0, choice: SliceChoice = None,
                  plane: str = "axial") -> list[tuple[Slice, SeriesPlace]]:
    """A volume -> its chosen slices (`volume_slices`), each with its SeriesPlace."""
    slices = volume_slices(volume, choice, plane)
    thicknesses, source = slice_thicknesses(volume, plane)
    whole = len(slices) == (slices[0].count if slices else 0)
    return [(s, SeriesPlace(series=volume.source, number=number, ordinal=i, read=len(slices), whole=whole,
                            thickness_mm=None if thicknesses is None else float(thicknesses[s.index]),
                            thickness_source=source, pixel_spacing=s.spacing, pixel_spacing_source=volume.pixel_spacing_source))
            for i, s in enumerate(slices)]


# What a summary holds when the model outlines nothing (it does not segment): nothing is measured.
UNMEASURED = {"volume_ml": None, "slices_with_tumor": None, "max_diameter_mm": None, "max_diameter_px": None,
              "areas_px": None, "areas_mm2": None}


@dataclass
class SeriesTally:
    """The readings of one series' slices, in order -> `measure.volume_summary`'s dict.

    `add` each slice's reading with its place; `summary` once the last has been added. A slice
    whose reading has no lesion (no tumor verdict, or an empty outline) adds 0. A reading without
    a mask (the model does not segment) leaves the summary unmeasured: every figure None.
    """

    areas_px: list = field(default_factory=list)
    diameters: dict = field(default_factory=dict)  # 0-based slice -> (px, mm or None), slices with tumor
    thicknesses: list = field(default_factory=list)
    spacing: tuple[float, float] | None = None
    thickness_source: str = UNKNOWN_SPACING
    segments: bool = True

    def add(self, reading: Reading, place: SeriesPlace) -> None:
        """One slice, in order: its reading and its place."""
        self.spacing = positive_spacing(place.pixel_spacing)
        self.thickness_source = place.thickness_source
        self.thicknesses.append(place.thickness_mm)
        self.segments &= reading.mask is not None
        lesion = reading.lesion
        self.areas_px.append(int(lesion["area_px"]) if lesion else 0)
        if lesion:
            self.diameters[len(self.areas_px) - 1] = (lesion["diameter_px"], lesion["diameter_mm"])

    def summary(self) -> dict:
        """{"volume_ml", "slices_with_tumor" (0-based), "max_diameter_mm", "max_diameter_px",
        "spacing_source", "areas_px", "areas_mm2"}, figured by `measure.combine` as `volume_summary` is."""
        if not self.segments:
            return {**UNMEASURED, "spacing_source": self.thickness_source if self.spacing else UNKNOWN_SPACING}
        return combine(self.areas_px, self.diameters, self.thicknesses, self.thickness_source, self.spacing)
