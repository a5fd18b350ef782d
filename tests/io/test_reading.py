"""mri_core.io.reading: the Reading's JSON line (the CLI contract's fields, plain Python types) and
plain words for every warning a reading can carry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from mri_core.io.reading import (IMAGE_LARGE, IMAGE_SMALL, JSON_DECIMALS, LOW_CONFIDENCE, OUT_OF_DISTRIBUTION,
                                 VERDICT_HEADLINE, VERDICT_TEXT, VERDICTS, WARNING_TEXT, Reading, describe_warning)

# DESIGN.md, "The command line": the fields of each JSON line, in the contract's order (the CLI
# adds `slice` for a slice of a volume and `series` for a folder or zip).
READING_FIELDS = ["file", "verdict", "label", "tumor", "tumor_probability", "threshold", "probabilities", "lesion",
                  "cam_peak", "cam_box", "warnings", "model"]
# Every warning io attaches to a slice or volume (raster, dicom, nifti, volume).
IO_WARNINGS = {"converted_from_color", "converted_from_cmyk", "had_alpha", "16_bit", "32_bit", "float",
               "animated_first_frame", "non_finite_voxels", "4d_first_volume", "slice_order_unknown", "orientation_unknown"}


def reading(**changes) -> Reading:
    fields = dict(source="scans/Y1.jpg", label=np.str_("glioma"), tumor=np.bool_(True),
                  tumor_probability=np.float32(0.912345678), threshold=0.5,
                  probabilities={np.str_("glioma"): np.float32(0.9), "notumor": np.float64(0.087654321)},
                  heatmap=np.zeros((218, 180), np.float32), cam_peak=(np.int64(90), np.int64(100)),
                  cam_box=(np.int32(80), 90, 120, 140), warnings=("converted_from_color", LOW_CONFIDENCE),
                  model="default-4class@4", verdict=np.str_("tumor"))
    return Reading(**{**fields, **changes})


def test_to_json_has_the_contract_fields_in_plain_python_types():
    line = reading().to_json()
    assert list(line) == READING_FIELDS
    assert line == {"file": "scans/Y1.jpg", "verdict": "tumor", "label": "glioma", "tumor": True,
                    "tumor_probability": 0.912346, "threshold": 0.5, "probabilities": {"glioma": 0.9, "notumor": 0.087654},
                    "lesion": None, "cam_peak": [90, 100], "cam_box": [80, 90, 120, 140],
                    "warnings": ["converted_from_color", LOW_CONFIDENCE], "model": "default-4class@4"}
    plain = (str, bool, int, float, list, dict, type(None))
    assert all(type(value) in plain for value in line.values())
    assert type(line["verdict"]) is str
    assert type(line["tumor"]) is bool and all(type(v) is int for v in line["cam_peak"] + line["cam_box"])
    assert all(type(k) is str and type(v) is float for k, v in line["probabilities"].items())
    assert json.loads(json.dumps(line)) == line  # the heatmap never goes into the line


def test_slice_appears_only_for_a_slice_of_a_volume_and_no_cam_gives_nulls():
    assert "slice" not in reading().to_json()
    line = reading(slice_index=np.int64(3), heatmap=None, cam_peak=None, cam_box=None, warnings=()).to_json()
    assert line["slice"] == 3 and type(line["slice"]) is int
    assert (line["cam_peak"], line["cam_box"], line["warnings"]) == (None, None, [])
    assert list(line) == READING_FIELDS + ["slice"]


def test_the_lesion_goes_into_the_line_in_plain_types_and_the_mask_never_does():
    mask = np.zeros((218, 180), bool)
    mask[10:20, 30:35] = True
    lesion = {"area_px": np.int64(50), "area_mm2": np.float64(50 * 0.43 * 0.43), "box": (np.int64(30), 10, 34, 19),
              "diameter_px": np.float64(np.hypot(4, 9)), "diameter_mm": None}
    line = reading(lesion=lesion, mask=mask, verdict="uncertain").to_json()
    assert line["verdict"] == "uncertain"
    assert line["lesion"] == {"area_px": 50, "area_mm2": round(50 * 0.43 * 0.43, JSON_DECIMALS), "box": [30, 10, 34, 19],
                              "diameter_px": round(float(np.hypot(4, 9)), JSON_DECIMALS), "diameter_mm": None}
    assert type(line["lesion"]["area_px"]) is int and all(type(v) is int for v in line["lesion"]["box"])
    assert type(line["lesion"]["area_mm2"]) is float
    assert json.loads(json.dumps(line)) == line and "mask" not in line
    no_spacing = reading(lesion={**lesion, "area_mm2": None}, mask=mask).to_json()["lesion"]
    assert no_spacing["area_mm2"] is None


def test_every_verdict_has_a_headline_and_plain_words():
    assert VERDICTS == ("tumor", "no_tumor", "uncertain", "cannot_read")
    for verdict in VERDICTS:
        assert VERDICT_HEADLINE[verdict][0].isupper() and "_" not in VERDICT_HEADLINE[verdict]
        assert VERDICT_TEXT[verdict].endswith(".") and len(VERDICT_TEXT[verdict].split()) >= 6
    assert "reader" in VERDICT_HEADLINE["uncertain"] and "Cannot read" in VERDICT_HEADLINE["cannot_read"]


def test_probabilities_are_rounded_to_the_contract_decimals():
    line = reading(tumor_probability=np.float32(2 / 3), threshold=1 / 3).to_json()
    assert (line["tumor_probability"], line["threshold"]) == (0.666667, round(1 / 3, JSON_DECIMALS))


def test_every_warning_a_reading_can_carry_has_plain_words():
    for name in IO_WARNINGS | {OUT_OF_DISTRIBUTION, LOW_CONFIDENCE, IMAGE_SMALL, IMAGE_LARGE}:
        assert name in WARNING_TEXT, name
        text = describe_warning(name)
        assert text[0].isupper() and text.endswith(".") and "_" not in text and len(text.split()) >= 6, name
    # a caution that fits a tumor call too (a cannot_read reading says why on its own)
    assert "caution" in describe_warning(OUT_OF_DISTRIBUTION)
    assert "not meaningful" not in describe_warning(OUT_OF_DISTRIBUTION)
    assert "radiologist" in describe_warning(LOW_CONFIDENCE)


def test_an_unknown_warning_still_reads_as_words():
    assert describe_warning("new_scanner_quirk") == "New scanner quirk."


def test_importing_reading_loads_neither_tensorflow_nor_a_model():
    code = "import sys, mri_core.io.reading; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "False"
