"""A DICOM series, segmented by the shipped default model, exported as a DICOM Segmentation and read back.

Writes --slices real figshare glioma slices (512x512, stored as 16-bit MR images) as a DICOM series
in memory, stored out of order with uneven slice positions and a complete anonymised identity;
reads it as the Diagnose page does (`io.slices.read_volumes`), reads every slice with the shipped
default model ("scan all": no heatmaps), builds the Segmentation (`present.dicom_seg`), reads it
back with highdicom and checks that each source slice's frame equals the model's mask pixel for
pixel and that the referenced SOP Instance UIDs are the series' own (known here, from building it).
Prints one JSON object; --write also stores it as section "dicom_seg" of bench/results.json.

    python bench/dicom_seg_roundtrip.py [--slices 24] [--write]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from pathlib import Path

import highdicom as hd
import numpy as np
from PIL import Image
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset, FileMetaDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DEFAULT_DATA  # noqa: E402
from bench.results_store import update_results  # noqa: E402
from mri_core.inference import read as pipeline  # noqa: E402
from mri_core.inference.model import load_model  # noqa: E402
from mri_core.io import slices  # noqa: E402
from mri_core.package import registry  # noqa: E402
from mri_core.present import dicom_seg  # noqa: E402

DATA = DEFAULT_DATA / "figshare-boxes" / "glioma"
SIZE = 512
STUDY_UID, SERIES_UID, FRAME_OF_REFERENCE_UID = dicom_uid.generate_uid(), dicom_uid.generate_uid(), dicom_uid.generate_uid()
IDENTITY = {"PatientName": "Anonymous^Bench", "PatientID": "BENCH-0001", "PatientBirthDate": "19700101",
            "PatientSex": "O", "StudyID": "1", "StudyDate": "20240102", "StudyTime": "101500", "AccessionNumber": "B1",
            "StudyDescription": "BRAIN", "SeriesDescription": "T1 AX (bench)"}


def mr_slice(pixels: np.ndarray, position: float, instance: int) -> tuple[str, bytes]:
    """(H, W) uint16 -> (SOP Instance UID, DICOM MR image bytes) at z = position."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = dicom_uid.MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = dicom_uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = dicom_uid.ExplicitVRLittleEndian
    ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID = "MR", STUDY_UID, SERIES_UID
    ds.FrameOfReferenceUID, ds.InstanceNumber = FRAME_OF_REFERENCE_UID, instance
    ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [-128.0, -128.0, position]
    ds.PixelSpacing, ds.SliceThickness = [0.5, 0.5], 3.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for keyword, value in IDENTITY.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return str(ds.SOPInstanceUID), buffer.getvalue()


def build_series(n_slices: int) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Real slices at uneven positions, uploaded shuffled -> (files, SOP Instance UIDs in slice order)."""
    paths = sorted(DATA.iterdir())[:n_slices]
    rng = random.Random(0)
    positions = np.cumsum([rng.choice((2.5, 3.0, 4.0)) for _ in paths])
    made = [mr_slice(np.asarray(Image.open(p).convert("L").resize((SIZE, SIZE)), np.uint16) * 16, float(z), n + 1)
            for n, (p, z) in enumerate(zip(paths, positions))]
    files = [(f"series/IM{n:04d}", data) for n, (_, data) in enumerate(made)]
    return rng.sample(files, len(files)), [uid for uid, _ in made]  # positions rise with n: slice order is n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--write", action="store_true", help="store the figures in bench/results.json")
    args = parser.parse_args()
    files, source_uids = build_series(args.slices)
    [volume] = slices.read_volumes(files)
    scan_model = load_model(registry.default_shipped())
    readings = pipeline.read_volume(scan_model, volume, "all", cam="none")
    masks = {reading.slice_index: reading.mask for reading in readings}
    started = time.perf_counter()
    data = dicom_seg.segmentation_bytes(files, volume, masks, scan_model.ref)
    build_s = time.perf_counter() - started
    segmentation = hd.seg.segread(io.BytesIO(data))
    frames = segmentation.get_pixels_by_source_instance(source_uids, segment_numbers=[1])[..., 0].astype(bool)
    referenced = {str(item.ReferencedSOPInstanceUID) for series in segmentation.ReferencedSeriesSequence
                  for item in series.ReferencedInstanceSequence}
    figures = {
        "model": scan_model.ref, "slices": volume.count, "slice_shape": list(volume.voxels.shape[1:]),
        "frames_in_seg": int(segmentation.NumberOfFrames), "frames_with_tumor": int(frames.any(axis=(1, 2)).sum()),
        "tumor_pixels": int(frames.sum()), "seg_bytes": len(data), "build_s": round(build_s, 3),
        "read_back_equal": bool(np.array_equal(frames, np.stack([masks[i] for i in range(volume.count)]))),
        "referenced_uids_equal": referenced == set(source_uids)
        and [str(s.SeriesInstanceUID) for s in segmentation.ReferencedSeriesSequence] == [SERIES_UID],
        "command": "python bench/dicom_seg_roundtrip.py",
    }
    print(json.dumps(update_results("dicom_seg", figures) if args.write else figures, indent=2))


if __name__ == "__main__":
    main()
