"""The tumor outline of a DICOM series as a DICOM Segmentation object (highdicom), for a PACS viewer.

`segmentation_bytes(files, volume, masks, model_ref)` takes the uploads the scan was read from
(as `io.slices.read_volumes` got them: zips are opened the same way), one of their DICOM volumes,
and the tumor masks of the slices read so far ({volume slice index from 0: (H, W) bool mask}),
and returns the bytes of one BINARY Segmentation with one segment, "Tumor" (SNOMED CT
Morphologically Abnormal Structure / Neoplasm, AUTOMATIC, the model named as its algorithm). Each
slice of `masks` is one frame, whether or not it holds tumor pixels (a frame with none says the
model found no tumor there); slices not in `masks` were not read and are not referenced. Each
frame refers to its source image (SOP Instance UID, and frame number in a multi-frame file) and
lies on its pixels, so OHIF or 3D Slicer overlay it on the series. Masks are of the slices as
stored (the axial plane of `volume`), as `Reading.mask` gives them at original size.

The object must carry the source's patient and study identity for a PACS to file it (DESIGN.md,
"Errors": the deliberate exception). It copies only `COPIED_TAGS` (what `COPIED_WORDS` says to
the user) and the geometry and UIDs that place and file it; nothing else of the source (no
institution, operator, comments or other IDs). A Type 2 identity tag the source lacks is written
empty, never invented; without a Study, Series, SOP Instance or Frame of Reference UID, or the
slices' position, orientation and pixel spacing, `ExportRefused` says what is missing (tag names,
never values). Built in memory on request, never written to disk or kept; highdicom's logger,
which names UIDs, is kept off every handler. Never imports streamlit.
"""

from __future__ import annotations

import io as _io
import logging
import warnings
from collections.abc import Mapping, Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

import mri_core
from mri_core.io import slices
from mri_core.io.dicom import SeriesSource
from mri_core.io.errors import ExportRefused
from mri_core.io.volume import Volume

# highdicom logs the source's SOP Instance UID at INFO: keep it off every handler (as io.dicom does pydicom's).
logging.getLogger("highdicom").addHandler(logging.NullHandler())
logging.getLogger("highdicom").propagate = False

# Patient and study identity a PACS needs to file the object with its study: copied, or written empty.
COPIED_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
               "StudyDate", "StudyTime", "AccessionNumber", "StudyDescription")
COPIED_WORDS = ("The DICOM Segmentation carries the source's patient name, patient ID, birth date and sex and its "
                "study UID, ID, date, time, accession number and description, so that a PACS files it with the "
                "study, and the source images' UIDs and positions, so that a viewer lays it on them; nothing else "
                "of the source is copied. It is built in memory when you download it and is not kept on the server.")
FILE_NAME = "tumor-segmentation.dcm"
MIME_TYPE = "application/dicom"

SERIES_DESCRIPTION = "Tumor outline (decision support)"
CONTENT_LABEL = "TUMOR"  # CS: upper case, at most 16 characters
CONTENT_DESCRIPTION = "Tumor outline; decision support, not a diagnosis"
SEGMENT_LABEL = "Tumor"
SERIES_NUMBER = 901  # high, so that viewers list it after the scanner's series
MANUFACTURER = "Brain MRI tumor screening (mri_core)"
DEVICE_SERIAL_NUMBER = "none (software)"  # Type 1 in the Enhanced General Equipment module

# Type 1 in the MR image the object refers to: without them it cannot be filed or placed.
_REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "FrameOfReferenceUID")
_PLANE_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
# What places the frames, besides the UIDs, and how the names are encoded: all highdicom gets to read of a source.
_GEOMETRY_TAGS = ("Rows", "Columns", "NumberOfFrames", *_PLANE_TAGS, "SliceThickness", "SpacingBetweenSlices",
                  "PositionReferenceIndicator", "Modality")
_ENCODING_TAGS = ("SpecificCharacterSet",)
_FUNCTIONAL_GEOMETRY = ("PlanePositionSequence", "PlaneOrientationSequence", "PixelMeasuresSequence")


def segmentation_bytes(files: Sequence[tuple[str, bytes]], volume: Volume, masks: Mapping[int, np.ndarray],
                       model_ref: str, plane: str = "axial") -> bytes:
    """Uploads, one of their DICOM volumes and {slice index: (H, W) bool tumor mask} -> DICOM Segmentation
    bytes (Explicit VR Little Endian, Part 10). `model_ref` is "name@version". ExportRefused when the volume
    is not a DICOM series of `files`, a mask is missing or of another size, the plane is not the stored one,
    or the source lacks what a PACS needs to file or place the object."""
    if plane != "axial":
        raise ExportRefused(f"{volume.source}: a DICOM Segmentation is made of the slices as stored; switch the "
                            f"plane back to axial (not {plane}) and read the slices there.")
    indices, stacked = _checked_masks(volume, masks)
    source = slices.dicom_source(files, volume)
    _check_source(source, volume.source)
    thickness = _thickness(source, volume)
    references = [_reference(ds, thickness) for ds in source.datasets]
    if source.frames is None:
        source_images, positions = [references[i] for i in indices], None
    else:
        source_images, positions = references, [_frame_position(source.datasets[0], source.frames[i]) for i in indices]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            segmentation = hd.seg.Segmentation(
                source_images=source_images, pixel_array=stacked,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=[_tumor_segment(model_ref)], series_instance_uid=hd.UID(),
                series_number=SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
                series_description=SERIES_DESCRIPTION, manufacturer=MANUFACTURER, manufacturer_model_name=model_ref,
                software_versions=mri_core.__version__, device_serial_number=DEVICE_SERIAL_NUMBER,
                content_label=CONTENT_LABEL, content_description=CONTENT_DESCRIPTION, plane_positions=positions,
                omit_empty_frames=False)
            buffer = _io.BytesIO()
            segmentation.save_as(buffer, enforce_file_format=True)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # highdicom's own checks; its words may hold UIDs
        raise ExportRefused(f"{volume.source}: this series cannot be written as a DICOM Segmentation "
                            f"({type(exc).__name__} in highdicom); export it from the PACS again as MR images.") from None
    return buffer.getvalue()


def _checked_masks(volume: Volume, masks: Mapping[int, np.ndarray]) -> tuple[list[int], np.ndarray]:
    """{slice index: mask} -> (sorted slice indices, (N, H, W) bool masks in that order); ExportRefused when wrong."""
    if not masks:
        raise ExportRefused(f"{volume.source}: no slice has been read yet; read at least one slice first.")
    height, width = volume.voxels.shape[1:]
    indices = sorted(masks)
    for index in indices:
        if not 0 <= index < volume.count:
            raise ExportRefused(f"{volume.source}: slice {index + 1} does not exist; the series has {volume.count}.")
        if masks[index] is None:
            raise ExportRefused(f"{volume.source}: slice {index + 1} has no tumor outline (the model does not outline "
                                f"tumors); choose a model that segments.")
        if np.shape(masks[index]) != (height, width):
            raise ExportRefused(f"{volume.source}: the outline of slice {index + 1} is {np.shape(masks[index])} pixels, "
                                f"the slice ({height}, {width}); read the slice again.")
    return indices, np.stack([np.asarray(masks[i]).astype(bool) for i in indices])


def _check_source(source: SeriesSource, name: str) -> None:
    """ExportRefused, naming the tags (never their values), when the source cannot be filed or placed."""
    for ds in source.datasets:
        missing = [tag for tag in _REQUIRED_UIDS if not str(ds.get(tag, "") or "").strip()]
        if source.frames is None:
            missing += [tag for tag in _PLANE_TAGS if ds.get(tag) is None]
        if missing:
            raise ExportRefused(
                f"{name}: the series has no {', '.join(missing)}, which a PACS needs to file a DICOM Segmentation "
                f"with the study and a viewer to place it on the slices; upload the series as the scanner or PACS "
                f"exported it (MR images).")
    if source.frames is None:
        return
    positions = [_frame_position(source.datasets[0], frame) for frame in source.frames]
    if any(p is None for p in positions) or len({tuple(p[0].ImagePositionPatient) for p in positions}) < len(positions):
        raise ExportRefused(f"{name}: this multi-frame file does not give each frame its own position "
                            f"(PerFrameFunctionalGroupsSequence / PlanePositionSequence), so its frames cannot be "
                            f"referred to; export the series as one file per slice, or as an Enhanced MR image.")


def _frame_position(ds: Dataset, frame: int) -> hd.PlanePositionSequence | None:
    """The position of `frame` (from 1) of a multi-frame image, from its per-frame functional groups."""
    groups = ds.get("PerFrameFunctionalGroupsSequence") or []
    plane = groups[frame - 1].get("PlanePositionSequence") if len(groups) >= frame else None
    if not plane or plane[0].get("ImagePositionPatient") is None:
        return None
    return hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT, [float(v) for v in plane[0].ImagePositionPatient])


def _reference(ds: Dataset, thickness: float) -> Dataset:
    """What highdicom reads of a source image: its UIDs, geometry and `COPIED_TAGS` (Type 2: empty when
    absent), with `thickness` where the source gives no slice thickness (highdicom cannot read it back without)."""
    reference = Dataset()
    for tag in (*_REQUIRED_UIDS, *_GEOMETRY_TAGS, *_ENCODING_TAGS, *COPIED_TAGS):
        if tag in ds:
            reference[tag] = ds[tag]
    for tag in COPIED_TAGS:
        if tag not in reference:
            setattr(reference, tag, None)
    if not _positive(reference.get("SliceThickness")):
        reference.SliceThickness = thickness
    for sequence in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        if sequence in ds:
            setattr(reference, sequence, [_geometry_only(item, thickness) for item in ds[sequence].value])
    return reference


def _geometry_only(group: Dataset, thickness: float) -> Dataset:
    """A functional group item with only where the frame lies and its pixel size."""
    item = Dataset()
    for tag in _FUNCTIONAL_GEOMETRY:
        if tag in group:
            item[tag] = group[tag]
    if "PixelMeasuresSequence" in item:
        measures = Dataset()
        for element in item.PixelMeasuresSequence[0]:
            measures.add(element)
        if not _positive(measures.get("SliceThickness")):
            measures.SliceThickness = thickness
        item.PixelMeasuresSequence = [measures]
    return item


def _thickness(source: SeriesSource, volume: Volume) -> float:
    """The slice thickness in mm: the source's, else the distance between slices; ExportRefused when neither is known."""
    first = source.datasets[0]
    shared = (first.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    measures = (shared.get("PixelMeasuresSequence") or [Dataset()])[0]
    for value in (first.get("SliceThickness"), measures.get("SliceThickness"),
                  volume.spacing[0] if volume.spacing else None):
        if _positive(value):
            return float(value)
    raise ExportRefused(f"{volume.source}: the series gives no SliceThickness and no distance between its slices, "
                        f"which a viewer needs to place a DICOM Segmentation; upload the series as the scanner or "
                        f"PACS exported it (MR images).")


def _positive(value) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def _tumor_segment(model_ref: str) -> hd.seg.SegmentDescription:
    name, _, version = model_ref.partition("@")
    algorithm = hd.AlgorithmIdentificationSequence(name=name, family=codes.cid7162.ArtificialIntelligence,
                                                   version=version or "unknown")
    return hd.seg.SegmentDescription(
        segment_number=1, segment_label=SEGMENT_LABEL,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm)

