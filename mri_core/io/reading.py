"""What one reading of one slice is: the `Reading` pages, the CLI and reports show, the four
verdicts it can end in, and the names and plain words of the warnings it can carry.

Plain data: importing it loads neither TensorFlow nor a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

JSON_DECIMALS = 6
# How a reading may draw its heatmap: the compiled Grad-CAM, two tf-keras-vis methods, or none.
CAM_METHODS = ("gradcam", "gradcam++", "scorecam", "none")
OUT_OF_DISTRIBUTION, LOW_CONFIDENCE = "out_of_distribution", "low_confidence"
IMAGE_SMALL, IMAGE_LARGE = "image_small", "image_large"

# The verdict every reading ends in (DESIGN.md, "Verdict"), and what a reader is told for each.
TUMOR, NO_TUMOR, UNCERTAIN, CANNOT_READ = "tumor", "no_tumor", "uncertain", "cannot_read"
VERDICTS = (TUMOR, NO_TUMOR, UNCERTAIN, CANNOT_READ)
VERDICT_HEADLINE = {
    TUMOR: "Tumor",
    NO_TUMOR: "No tumor",
    UNCERTAIN: "Uncertain: refer to a reader",
    CANNOT_READ: "Cannot read this image",
}
VERDICT_TEXT = {
    TUMOR: "The model finds a tumor at its operating point.",
    NO_TUMOR: "The model finds no tumor at its operating point.",
    UNCERTAIN: "The tumor probability lies in the model's uncertainty band, where it cannot tell reliably; "
               "a radiologist should read this slice.",
    CANNOT_READ: "This does not look like a brain MRI slice like the ones the model was trained on (a photo, "
                 "a document, a head CT, another body part, a blank or unreadable slice?), so no tumor call is made.",
}
# A reading's mask and lesion are kept only for these verdicts (all zero / null otherwise).
LESION_VERDICTS = (TUMOR, UNCERTAIN)

# Plain words for every warning a reading can carry (ours and the ones `io` adds).
WARNING_TEXT = {
    # A caution, whatever the verdict: it also fires on some real MRI (an unusual scanner, contrast
    # or export), whose tumor call stands; a reading that is not a brain MRI at all is `cannot_read`.
    OUT_OF_DISTRIBUTION: "This image looks unlike the brain MRI slices the model was trained on (an unusual "
                         "scanner, contrast, crop or export, or not a brain MRI slice at all?). Treat any "
                         "reading of it with caution and check the image itself.",
    LOW_CONFIDENCE: "The tumor probability is close to the decision threshold: the model cannot tell "
                    "well here; rely on the radiologist's reading.",
    IMAGE_SMALL: "The image is smaller than any the model was trained on; fine detail may be lost.",
    IMAGE_LARGE: "The image is larger than any the model was trained on; it was shrunk to the model's input size.",
    "converted_from_color": "The original image was in colour; it was converted to grey.",
    "had_alpha": "The image had transparent parts; they were shown as black.",
    "16_bit": "A 16-bit image was windowed to its 0.5-99.5 percentile range.",
    "32_bit": "A 32-bit image was windowed to its 0.5-99.5 percentile range.",
    "float": "A floating-point image was windowed to its 0.5-99.5 percentile range.",
    "animated_first_frame": "The file is animated; only its first frame was read.",
    "converted_from_cmyk": "The image was stored in CMYK, a print format rather than a scanner export; it was "
                           "converted to grey, and its contrast may differ from the scan's.",
    "non_finite_voxels": "Some voxels held no number (NaN or infinite); they were shown as black.",
    "4d_first_volume": "The file holds a series of volumes (4-D); only the first volume was read.",
    "slice_order_unknown": "The DICOM files give neither slice positions nor instance numbers, so the slices are "
                           "in file order, which may not be their order in the body.",
    "orientation_unknown": "The file does not say how the volume lies in the body, so the slices shown as axial may "
                           "be sideways or mirrored; check that the slice looks like an axial brain slice before "
                           "relying on the reading.",
}


def describe_warning(name: str) -> str:
    """A warning's name -> one or two plain sentences for a reader."""
    return WARNING_TEXT.get(name, name.replace("_", " ").capitalize() + ".")



def _rounded(value: float) -> float:
    return round(float(value), JSON_DECIMALS)


def _lesion_json(lesion: dict | None) -> dict | None:
    if lesion is None:
        return None
    def mm(key):
        return None if lesion.get(key) is None else _rounded(lesion[key])

    return {"area_px": int(lesion["area_px"]), "area_mm2": mm("area_mm2"), "box": [int(v) for v in lesion["box"]],
            "diameter_px": mm("diameter_px"), "diameter_mm": mm("diameter_mm")}


@dataclass(frozen=True)
class Reading:
    """What a page or the CLI shows for one slice; coordinates are original-image pixels."""

    source: str
    label: str
    tumor: bool
    tumor_probability: float
    threshold: float
    probabilities: dict[str, float]
    heatmap: np.ndarray | None  # (H, W) float32 in [0, 1] at the original size; None = no cam
    cam_peak: tuple[int, int] | None  # (x, y)
    cam_box: tuple[int, int, int, int] | None  # (x0, y0, x1, y1), inclusive
    warnings: tuple[str, ...]
    model: str  # "name@version"
    verdict: str  # one of VERDICTS
    slice_index: int | None = None
    # {"area_px", "area_mm2" (None without pixel spacing), "box": (x0, y0, x1, y1) inclusive}; None when
    # the model does not segment, the mask is empty, or the verdict is neither tumor nor uncertain
    lesion: dict | None = None
    # (H, W) bool tumor mask at the original size (not in JSON); None when the model does not segment,
    # all False unless the verdict is tumor or uncertain
    mask: np.ndarray | None = None

    def to_json(self) -> dict:
        """The CLI's JSON line (DESIGN.md), plain Python types only; the heatmap and mask are not in it."""
        line = {
            "file": str(self.source),
            "verdict": str(self.verdict),
            "label": str(self.label),
            "tumor": bool(self.tumor),
            "tumor_probability": _rounded(self.tumor_probability),
            "threshold": _rounded(self.threshold),
            "probabilities": {str(name): _rounded(p) for name, p in self.probabilities.items()},
            "lesion": _lesion_json(self.lesion),
            "cam_peak": None if self.cam_peak is None else [int(v) for v in self.cam_peak],
            "cam_box": None if self.cam_box is None else [int(v) for v in self.cam_box],
            "warnings": [str(w) for w in self.warnings],
            "model": str(self.model),
        }
        if self.slice_index is not None:
            line["slice"] = int(self.slice_index)
        return line
