"""mri_core.io.reading: the Reading's JSON line (the CLI contract's fields, plain Python types) and
plain words for every warning a reading can carry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from mri_core.io.reading import (IMAGE_LARGE, IMAGE_SMALL, JSON_DECIMALS, LOW_CONFIDENCE, OUT_OF_DISTRIBUTION,
                                 WARNING_TEXT, Reading, describe_warning)

# DESIGN.md, "The command line": the fields a Reading contributes to each JSON line (the
# verdict and the lesion are added by the inference layer).
READING_FIELDS = {"file", "label", "tumor", "tumor_probability", "threshold", "probabilities", "cam_peak",
                  "cam_box", "warnings", "model"}
# Every warning io attaches to a slice or volume (raster, dicom, nifti, volume).
IO_WARNINGS = {"converted_from_color", "converted_from_cmyk", "had_alpha", "16_bit", "32_bit", "float",
               "animated_first_frame", "non_finite_voxels", "4d_first_volume", "slice_order_unknown", "orientation_unknown"}


def reading(**changes) -> Reading:
    fields = dict(source="scans/Y1.jpg", label=np.str_("glioma"), tumor=np.bool_(True),
                  tumor_probability=np.float32(0.912345678), threshold=0.5,
                  probabilities={np.str_("glioma"): np.float32(0.9), "notumor": np.float64(0.087654321)},
                  heatmap=np.zeros((218, 180), np.float32), cam_peak=(np.int64(90), np.int64(100)),
                  cam_box=(np.int32(80), 90, 120, 140), warnings=("converted_from_color", LOW_CONFIDENCE),
                  model="default-4class@4")
    return Reading(**{**fields, **changes})


def test_to_json_has_the_contract_fields_in_plain_python_types():
    line = reading().to_json()
    assert set(line) == READING_FIELDS
    assert line == {"file": "scans/Y1.jpg", "label": "glioma", "tumor": True, "tumor_probability": 0.912346,
                    "threshold": 0.5, "probabilities": {"glioma": 0.9, "notumor": 0.087654}, "cam_peak": [90, 100],
                    "cam_box": [80, 90, 120, 140], "warnings": ["converted_from_color", LOW_CONFIDENCE],
                    "model": "default-4class@4"}
    plain = (str, bool, int, float, list, dict)
    assert all(type(value) in plain for value in line.values())
    assert type(line["tumor"]) is bool and all(type(v) is int for v in line["cam_peak"] + line["cam_box"])
    assert all(type(k) is str and type(v) is float for k, v in line["probabilities"].items())
    assert json.loads(json.dumps(line)) == line  # the heatmap never goes into the line


def test_slice_appears_only_for_a_slice_of_a_volume_and_no_cam_gives_nulls():
    assert "slice" not in reading().to_json()
    line = reading(slice_index=np.int64(3), heatmap=None, cam_peak=None, cam_box=None, warnings=()).to_json()
    assert line["slice"] == 3 and type(line["slice"]) is int
    assert (line["cam_peak"], line["cam_box"], line["warnings"]) == (None, None, [])
    assert set(line) == READING_FIELDS | {"slice"}


def test_probabilities_are_rounded_to_the_contract_decimals():
    line = reading(tumor_probability=np.float32(2 / 3), threshold=1 / 3).to_json()
    assert (line["tumor_probability"], line["threshold"]) == (0.666667, round(1 / 3, JSON_DECIMALS))


def test_every_warning_a_reading_can_carry_has_plain_words():
    for name in IO_WARNINGS | {OUT_OF_DISTRIBUTION, LOW_CONFIDENCE, IMAGE_SMALL, IMAGE_LARGE}:
        assert name in WARNING_TEXT, name
        text = describe_warning(name)
        assert text[0].isupper() and text.endswith(".") and "_" not in text and len(text.split()) >= 6, name
    assert "not meaningful" in describe_warning(OUT_OF_DISTRIBUTION)
    assert "radiologist" in describe_warning(LOW_CONFIDENCE)


def test_an_unknown_warning_still_reads_as_words():
    assert describe_warning("new_scanner_quirk") == "New scanner quirk."


def test_importing_reading_loads_neither_tensorflow_nor_a_model():
    code = "import sys, mri_core.io.reading; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "False"
