"""The 60 real inputs of the CLI recording (tests/golden/cli_default_4class.jsonl).

Picked by name from ../shared/data (every run picks the same files); the DICOM and NIfTI
inputs are written at test time from real slices, never committed. `python
tests/golden/inputs.py OUT_DIR` writes them, then `python -m mri_core predict OUT_DIR/* --model
default-4class@4 --json` gives the lines the recording holds.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydicom import uid as dicom_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from scans import dicom_bytes, grey_uint8, nifti_bytes, stack_of  # noqa: E402

# (folder under the data root, how many, every k-th file of the sorted listing)
RASTER_PICKS = (
    ("kaggle-brain-mri/yes", 8, 19), ("kaggle-brain-mri/no", 9, 10),
    ("brain-tumor-mri-224/glioma", 2, 601), ("brain-tumor-mri-224/meningioma", 2, 599),
    ("brain-tumor-mri-224/pituitary", 2, 611), ("brain-tumor-mri-224/notumor", 3, 307),
    ("brisc2025/notumor", 6, 167), ("brisc2025/glioma", 2, 503), ("brisc2025/meningioma", 2, 571),
    ("figshare-boxes/glioma", 2, 700), ("figshare-boxes/meningioma", 1, 1), ("figshare-boxes/pituitary", 1, 1),
    ("br35h-extra/yes", 4, 61), ("not-mri/head-ct", 5, 101),
)  # 49 raster files, then 6 DICOM and 5 NIfTI: 60 inputs


def _picked(folder: Path, count: int, step: int) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return files[::step][:count]


def write_inputs(data_root: Path, out: Path) -> list[Path]:
    """Write (links to) the 60 inputs into `out`, in the recording's order; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for sub, count, step in RASTER_PICKS:
        for source in _picked(data_root / sub, count, step):
            link = out / f"{len(paths):02d}_{source.name.replace(' ', '_')}"
            link.symlink_to(source)
            paths.append(link)
    tumors = _picked(data_root / "kaggle-brain-mri/yes", 3, 31)
    healthy = _picked(data_root / "brain-tumor-mri-224/notumor", 3, 97)
    dicoms = (
        (tumors[0], dicom_uid.ExplicitVRLittleEndian), (tumors[1], dicom_uid.JPEGBaseline8Bit),
        (tumors[2], dicom_uid.RLELossless), (healthy[0], dicom_uid.ExplicitVRLittleEndian),
        (healthy[1], dicom_uid.JPEG2000Lossless), (healthy[2], dicom_uid.ExplicitVRLittleEndian),
    )
    for source, syntax in dicoms:
        path = out / f"{len(paths):02d}_{source.stem}.dcm"
        path.write_bytes(dicom_bytes(grey_uint8(source), syntax, series_uid=f"1.2.826.0.1.3680043.8.498.{len(paths)}"))
        paths.append(path)
    for i, group in enumerate((tumors, healthy, tumors[::-1] + healthy)):
        stack = stack_of(list(group))
        for gz in ((False, True) if i < 2 else (True,)):
            path = out / f"{len(paths):02d}_volume{i}.nii{'.gz' if gz else ''}"
            path.write_bytes(nifti_bytes(stack, gz=gz))
            paths.append(path)
    return paths


if __name__ == "__main__":
    data = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    for p in write_inputs(data, Path(sys.argv[1])):
        print(p)
