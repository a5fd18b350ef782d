"""mri_core.present.dicom_seg: the tumor masks of a DICOM series as a DICOM Segmentation a PACS viewer overlays.

Every source is a real figshare slice written as DICOM by the test; every expected value (which
source image a slice is, its UIDs, the masks) comes from that construction, and the object is
read back with highdicom and with pydicom alone.
"""

from __future__ import annotations

import io
import random

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset
from scans import SECRET_TAGS, dicom_bytes, nifti_bytes, stack_of

from mri_core.io import slices
from mri_core.io.errors import ExportRefused
from mri_core.present import dicom_seg

SIZE = 96
MODEL = "default-4class-seg@1"
# Stored out of order and unevenly spaced: the volume's slice i is the i-th of these sorted.
POSITIONS = (4.5, -18.5, -10.0, -21.0, -12.0)
SORTED = sorted(POSITIONS)
SERIES_UID = "1.2.826.0.1.3680043.8.498.1"
# An anonymised but complete series: what a PACS needs to file the object, and things it must not get.
IDENTITY = {"PatientName": "Anon^Patient", "PatientID": "ANON-0001", "PatientBirthDate": "19700101",
            "PatientSex": "O", "StudyID": "S-42", "StudyDate": "20240102", "StudyTime": "101500",
            "AccessionNumber": "A-777", "StudyDescription": "BRAIN", "SeriesDescription": "T1 AX",
            "FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.77", "SliceThickness": 2.0}
NOT_COPIED = {"PatientAddress": SECRET_TAGS["PatientAddress"], "InstitutionName": SECRET_TAGS["InstitutionName"],
              "ReferringPhysicianName": SECRET_TAGS["ReferringPhysicianName"],
              "OtherPatientIDs": SECRET_TAGS["OtherPatientIDs"], "OperatorsName": "Operator^Hidden",
              "PatientComments": "comment that must stay", "Manufacturer": "SCANNERCO", "StationName": "MRSTATION9"}


@pytest.fixture(scope="module")
def stack(figshare_dir):
    return stack_of(sorted((figshare_dir / "glioma").iterdir())[:5], size=SIZE)


def series(stack, **tags) -> list[tuple[str, bytes]]:
    """Five real slices at POSITIONS, one file each, uploaded in a shuffled order."""
    files = [(f"exam/IM{n}", dicom_bytes(stack[n], position=z, instance=n + 1, **tags)) for n, z in enumerate(POSITIONS)]
    return random.Random(7).sample(files, len(files))


def uid_at(files, position: float) -> str:
    """The SOP Instance UID the test's own file at `position` got (read with pydicom)."""
    [match] = [ds for ds in (pydicom.dcmread(io.BytesIO(data)) for _, data in files)
               if float(ds.ImagePositionPatient[2]) == position]
    return str(match.SOPInstanceUID)


def outlines() -> dict[int, np.ndarray]:
    """Two asymmetric masks (a flip or a transpose would show): an L on slice 1, a disc off centre on slice 3."""
    corner = np.zeros((SIZE, SIZE), bool)
    corner[10:60, 20:30] = True
    corner[50:60, 20:70] = True
    rows, cols = np.mgrid[:SIZE, :SIZE]
    disc = (rows - 30) ** 2 + (cols - 65) ** 2 <= 12 ** 2
    return {1: corner, 3: disc}


def read_back(data: bytes) -> tuple[Dataset, hd.seg.Segmentation]:
    return pydicom.dcmread(io.BytesIO(data)), hd.seg.segread(io.BytesIO(data))


def frames_by_source(ds: Dataset) -> dict[str, np.ndarray]:
    """pydicom alone: each frame's pixels by the SOP Instance UID its derivation names."""
    pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    return {str(group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID): pixels[k]
            for k, group in enumerate(ds.PerFrameFunctionalGroupsSequence)}


def test_round_trip_gives_each_source_slice_its_mask_pixel_for_pixel(stack):
    files = series(stack, **IDENTITY)
    [volume] = slices.read_volumes(files)
    masks = outlines()
    data = dicom_seg.segmentation_bytes(files, volume, masks, MODEL)
    ds, seg = read_back(data)
    expected = {uid_at(files, SORTED[index]): mask for index, mask in masks.items()}

    by_highdicom = seg.get_pixels_by_source_instance(list(expected), segment_numbers=[1])
    for k, mask in enumerate(expected.values()):
        np.testing.assert_array_equal(by_highdicom[k, :, :, 0].astype(bool), mask)
    by_pydicom = frames_by_source(ds)
    assert set(by_pydicom) == set(expected)
    for source_uid, mask in expected.items():
        np.testing.assert_array_equal(by_pydicom[source_uid].astype(bool), mask)

    [referenced] = ds.ReferencedSeriesSequence
    assert referenced.SeriesInstanceUID == SERIES_UID
    assert {str(item.ReferencedSOPInstanceUID) for item in referenced.ReferencedInstanceSequence} == set(expected)
    assert {source[2] for source in seg.get_source_image_uids()} == set(expected)


def test_it_files_with_the_source_study_in_a_new_series(stack):
    files = series(stack, **IDENTITY)
    [volume] = slices.read_volumes(files)
    ds, _ = read_back(dicom_seg.segmentation_bytes(files, volume, outlines(), MODEL))
    source = pydicom.dcmread(io.BytesIO(files[0][1]))
    for tag in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate", "StudyTime",
                "AccessionNumber", "StudyDescription", "FrameOfReferenceUID"):
        assert str(ds[tag].value) == str(IDENTITY[tag]), tag
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.SeriesInstanceUID != SERIES_UID and ds.SOPInstanceUID not in {uid_at(files, z) for z in POSITIONS}
    assert uid.UID(ds.SeriesInstanceUID).is_valid and uid.UID(ds.SOPInstanceUID).is_valid
    assert ds.SOPClassUID == uid.SegmentationStorage and ds.Modality == "SEG" and ds.SegmentationType == "BINARY"
    assert ds.SeriesDescription == "Tumor outline (decision support)"
    [segment] = ds.SegmentSequence
    assert segment.SegmentLabel == "Tumor" and segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Neoplasm"
    [algorithm] = segment.SegmentationAlgorithmIdentificationSequence
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("default-4class-seg", "1")
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"


def test_only_the_identity_a_pacs_needs_is_copied(stack):
    files = series(stack, **IDENTITY, **NOT_COPIED)
    [volume] = slices.read_volumes(files)
    data = dicom_seg.segmentation_bytes(files, volume, outlines(), MODEL)
    for tag, value in NOT_COPIED.items():
        assert value.split("^")[0].encode() not in data, tag
    ds, _ = read_back(data)
    assert ds.ReferringPhysicianName == ""  # Type 2: present, empty
    for tag in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"):
        assert str(IDENTITY[tag]).encode() in data, tag


def test_a_name_outside_ascii_keeps_its_character_set(stack):
    files = series(stack, **dict(IDENTITY, PatientName="Müller^Jürgen", SpecificCharacterSet="ISO_IR 100"))
    [volume] = slices.read_volumes(files)
    ds, _ = read_back(dicom_seg.segmentation_bytes(files, volume, outlines(), MODEL))
    assert ds.SpecificCharacterSet == "ISO_IR 100" and str(ds.PatientName) == "Müller^Jürgen"


def test_a_slice_read_without_tumor_is_an_empty_frame_and_unread_slices_are_not_referenced(stack):
    files = series(stack, **IDENTITY)
    [volume] = slices.read_volumes(files)
    masks = {0: np.zeros((SIZE, SIZE), bool), 4: outlines()[3]}
    ds, _ = read_back(dicom_seg.segmentation_bytes(files, volume, masks, MODEL))
    frames = frames_by_source(ds)
    assert set(frames) == {uid_at(files, SORTED[0]), uid_at(files, SORTED[4])}
    assert not frames[uid_at(files, SORTED[0])].any()
    np.testing.assert_array_equal(frames[uid_at(files, SORTED[4])].astype(bool), masks[4])


def test_a_series_without_identity_or_thickness_gets_empty_identity_never_invented(stack):
    files = series(stack, FrameOfReferenceUID=IDENTITY["FrameOfReferenceUID"])
    [volume] = slices.read_volumes(files)
    ds, seg = read_back(dicom_seg.segmentation_bytes(files, volume, outlines(), MODEL))
    for tag in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyDate"):
        assert tag in ds and str(ds[tag].value) == "", tag
    # no SliceThickness: the frames are as thick as the median distance between the slices
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert float(measures.SliceThickness) == pytest.approx(float(np.median(np.diff(SORTED))))
    pixels = seg.get_pixels_by_source_instance([uid_at(files, SORTED[1])], segment_numbers=[1])
    np.testing.assert_array_equal(pixels[0, :, :, 0].astype(bool), outlines()[1])


def enhanced_mr(stack, stored_positions) -> bytes:
    """One Enhanced MR file: frame k (from 1) at stored_positions[k-1], placed by per-frame functional groups."""
    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(stack, **IDENTITY)))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = uid.EnhancedMRImageStorage
    del ds.PixelSpacing
    shared, orientation, measures = Dataset(), Dataset(), Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing, measures.SliceThickness = [0.5, 0.5], 2.0
    shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = [orientation], [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for z in stored_positions:
        group, position = Dataset(), Dataset()
        position.ImagePositionPatient = [0, 0, z]
        group.PlanePositionSequence = [position]
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_multi_frame_enhanced_mr_is_referred_to_frame_by_frame(stack):
    files = [("enhanced.dcm", enhanced_mr(stack, POSITIONS))]
    [volume] = slices.read_volumes(files)
    masks = outlines()
    ds, seg = read_back(dicom_seg.segmentation_bytes(files, volume, masks, MODEL))
    source_uid = str(pydicom.dcmread(io.BytesIO(files[0][1])).SOPInstanceUID)
    frame_numbers = [POSITIONS.index(SORTED[index]) + 1 for index in masks]  # where the test stored each slice
    pixels = seg.get_pixels_by_source_frame(source_uid, frame_numbers, segment_numbers=[1])
    for k, mask in enumerate(masks.values()):
        np.testing.assert_array_equal(pixels[k, :, :, 0].astype(bool), mask)
    referenced = {int(group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
                  for group in ds.PerFrameFunctionalGroupsSequence}
    assert referenced == set(frame_numbers)


def refusal(files, masks=None, **options) -> str:
    volume = slices.read_volumes(files)[0]
    with pytest.raises(ExportRefused) as refused:
        dicom_seg.segmentation_bytes(files, volume, outlines() if masks is None else masks, MODEL, **options)
    return str(refused.value)


def test_a_nifti_volume_or_a_plain_image_is_refused(stack):
    assert "not a DICOM upload" in refusal([("head.nii.gz", nifti_bytes(stack, gz=True))])
    assert "not a DICOM upload" in refusal([("slice.png", _png(stack[0]))], masks={0: np.zeros((SIZE, SIZE), bool)})


def test_a_volume_from_other_files_is_refused(stack):
    files = series(stack, **IDENTITY)
    [other] = slices.read_volumes([("other.nii", nifti_bytes(stack))])
    with pytest.raises(ExportRefused, match="not one of the DICOM series"):
        dicom_seg.segmentation_bytes(files, other, outlines(), MODEL)


def test_masks_of_another_size_or_none_or_no_slice_read_are_refused(stack):
    files = series(stack, **IDENTITY)
    assert "slice 2 is (64, 64) pixels, the slice (96, 96)" in refusal(files, masks={1: np.zeros((64, 64), bool)})
    assert "slice 3 has no tumor outline" in refusal(files, masks={2: None})
    assert "no slice has been read" in refusal(files, masks={})
    assert "slice 6 does not exist" in refusal(files, masks={5: np.zeros((SIZE, SIZE), bool)})
    assert "switch the plane back to axial" in refusal(files, plane="coronal")


def test_what_a_pacs_or_viewer_needs_is_named_when_missing_and_no_value_is(stack):
    no_frame_of_reference = refusal(series(stack, PatientID=SECRET_TAGS["PatientID"]))
    assert "FrameOfReferenceUID" in no_frame_of_reference and SECRET_TAGS["PatientID"] not in no_frame_of_reference
    by_number_only = [(f"IM{n}", dicom_bytes(s, instance=n + 1, **IDENTITY)) for n, s in enumerate(stack)]
    assert "ImagePositionPatient, ImageOrientationPatient" in refusal(by_number_only)


def test_a_multi_frame_file_without_frame_positions_is_refused(stack):
    assert "does not give each frame its own position" in refusal([("legacy.dcm", dicom_bytes(stack, **IDENTITY))])
    same_place = [("echoes.dcm", enhanced_mr(stack, (0.0, 0.0, 5.0, 5.0, 10.0)))]  # two echoes per position
    assert "does not give each frame its own position" in refusal(same_place)


def test_the_page_words_say_what_is_copied_and_that_nothing_is_kept():
    words = dicom_seg.COPIED_WORDS
    for said in ("patient name", "patient ID", "birth date", "sex", "study UID", "accession number",
                 "built in memory", "not kept on the server"):
        assert said in words
    assert len(dicom_seg.COPIED_TAGS) == 10 and dicom_seg.FILE_NAME.endswith(".dcm")


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()
