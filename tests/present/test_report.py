"""The reading report: a PDF that opens and carries the label, probabilities, warnings and the notice."""

from __future__ import annotations

import io as _io
import json

import pytest

from mri_core.io import slices as io
from mri_core.__main__ import main
from mri_core.inference.read import read_slices
from mri_core.present.report import NOTICE, confidence_words, reading_report

pypdf = pytest.importorskip("pypdf")


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(_io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_report_names_label_probabilities_warnings_and_model(tiny_model, tumor_image_path):
    slice_ = io.read_file(tumor_image_path)[0]
    [reading] = read_slices(tiny_model, [slice_])
    reading = reading.__class__(**{**reading.__dict__, "warnings": ("out_of_distribution", "low_confidence")})
    text = pdf_text(reading_report(reading, slice_.pixels, tiny_model.info, "gradcam"))
    assert reading.label in text
    for name, probability in reading.probabilities.items():
        assert f"{name}: {probability:.1%}" in text
    assert f"Tumor probability {reading.tumor_probability:.1%}" in text
    assert "out_of_distribution" in text and "low_confidence" in text
    assert NOTICE in text
    assert "tiny@1" in text
    assert tumor_image_path.stem not in text  # no file name: it may carry a patient's name


def test_only_a_typed_note_identifies_anything(tiny_model, tumor_image_path):
    slice_ = io.read_file(tumor_image_path)[0]
    [reading] = read_slices(tiny_model, [slice_], cam="none")
    assert "Case 4711" in pdf_text(reading_report(reading, slice_.pixels, tiny_model.info, "none", note="Case 4711"))
    assert "Note" not in pdf_text(reading_report(reading, slice_.pixels, tiny_model.info, "none"))


def test_confidence_words_state_the_frequency_meaning():
    text = confidence_words(0.9, 0.5, 0.01)
    assert "roughly 90 would show a tumor and 10 would not" in text and "1.0%" in text


def test_cli_writes_one_report_per_input(tiny_model_dir, tumor_image_path, no_tumor_image_path, tmp_path, capsys):
    code = main(["predict", str(tumor_image_path), str(no_tumor_image_path), "--model", str(tiny_model_dir),
                 "--report", str(tmp_path / "reports"), "--json"])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2
    for line, path in zip(lines, (tumor_image_path, no_tumor_image_path)):
        text = pdf_text((tmp_path / "reports" / f"{path.stem}.pdf").read_bytes())
        assert line["label"] in text and NOTICE in text


def test_the_page_words_name_peak_model_volume_and_slice(tiny_model, kaggle_dir, tumor_image_path):
    from scans import dicom_bytes, nifti_bytes, stack_of

    from mri_core.inference.read import CAM_METHODS
    from mri_core.present.report import CAM_NAMES, image_caption, model_line, peak_words, volume_words

    assert tuple(CAM_NAMES) == CAM_METHODS, "the Diagnose page offers every method by its name"
    scan = io.read_file(tumor_image_path)[0]
    [reading] = read_slices(tiny_model, [scan])
    x0, y0, x1, y1 = reading.cam_box
    assert peak_words(reading).startswith(f"Heatmap peak at x {reading.cam_peak[0]}, y {reading.cam_peak[1]}; "
                                          f"box x {x0}–{x1}, y {y0}–{y1}")
    assert peak_words(read_slices(tiny_model, [scan], cam="none")[0]) is None
    stack = stack_of(sorted((kaggle_dir / "yes").iterdir())[:3], size=64)
    [volume] = io.read_volumes([("brain.nii", nifti_bytes(stack))])
    [slice_] = io.volume_slices(volume, 1)
    assert model_line("tiny@1", tiny_model.info).startswith("Model **tiny@1** · paper · classes: ")
    assert volume_words(volume, "axial") == "3 axial slice(s)"
    assert image_caption(slice_, "gradcam++", "axial").startswith("brain.nii · axial slice 2 of 3 · heatmap (Grad-CAM++)")

    [dicom] = io.read_volumes([("IM1", dicom_bytes(stack[0], StudyDescription="MR HEAD", SeriesDescription="T1 AX"))])
    assert volume_words(dicom, "axial") == "MR HEAD · T1 AX · 1 axial slice(s)"
    [plain] = io.read_volumes([(tumor_image_path.name, tumor_image_path.read_bytes())])
    assert volume_words(plain, "axial") is None


# --- honest words (issue 19, item 3): "calibrated" only with a good ECE, a method only with a heatmap ----

def test_probabilities_are_called_calibrated_only_when_the_test_ece_is_at_most_the_bound():
    from mri_core.package.activation import MAX_ECE

    good, poor, unknown = (confidence_words(0.9, 0.5, ece) for ece in (MAX_ECE, 0.168, None))
    assert "90% is calibrated" in good
    for text in (poor, unknown):
        assert "is calibrated" not in text and "would show a tumor" not in text and "from 50% up" in text
    assert "poorly calibrated" in poor and "16.8%" in poor and f"more than the {MAX_ECE:.0%} the app accepts" in poor
    assert "records no calibration error" in unknown


def test_the_caption_names_the_heatmap_method_only_when_a_heatmap_is_shown(tiny_model, tumor_image_path):
    import numpy as np

    from mri_core.present.report import heatmap_shown, image_caption

    scan = io.read_file(tumor_image_path)[0]
    [reading] = read_slices(tiny_model, [scan])
    [without] = read_slices(tiny_model, [scan], cam="none")
    # what a model with no evidence for any tumor class gives: an all-zero map, no peak
    flat = reading.__class__(**{**reading.__dict__, "heatmap": np.zeros_like(reading.heatmap),
                                "cam_peak": None, "cam_box": None})
    if reading.cam_peak is not None:
        assert heatmap_shown(reading, "gradcam")
        assert image_caption(scan, "gradcam", "axial", reading, 0.5).endswith(
            "· heatmap (Grad-CAM): evidence for the most likely tumor class")
    for caption, why in ((image_caption(scan, "none", "axial", without, 0.5), "none was asked for"),
                         (image_caption(scan, "gradcam", "axial", flat, 0.5), "the model's evidence map is empty"),
                         (image_caption(scan, "gradcam", "axial", reading, 0.0), "its opacity is 0")):
        assert "Grad-CAM" not in caption and "heatmap (" not in caption
        assert caption.startswith(f"{tumor_image_path.name} · no heatmap: {why}")
    pdf = pdf_text(reading_report(flat, scan.pixels, tiny_model.info, "gradcam"))
    assert "Grad-CAM" not in pdf and "without heatmap (the model's evidence map is empty" in pdf


def test_the_outline_alone_is_captioned_without_naming_a_heatmap(tiny_model, tumor_image_path):
    """The Diagnose page's "Show: outline": the caption names the outline, or why there is none, never a heatmap."""
    import numpy as np

    from mri_core.present.report import heatmap_shown, image_caption

    scan = io.read_file(tumor_image_path)[0]
    [reading] = read_slices(tiny_model, [scan])  # the tiny model does not segment: mask None
    empty = reading.__class__(**{**reading.__dict__, "mask": np.zeros(scan.pixels.shape, bool), "lesion": None})
    outlined = reading.__class__(**{**empty.__dict__, "lesion": {"area_px": 9, "area_mm2": None, "box": (1, 1, 3, 3)}})
    for shown, words in ((reading, "this model does not outline tumors"), (empty, "no tumor outlined on this slice"),
                         (outlined, "white line: the tumor's outline as the model segments it")):
        caption = image_caption(scan, "gradcam", "axial", shown, 0.5, show="outline")
        assert caption == f"{tumor_image_path.name} · {words}" and "heatmap" not in caption.lower()
        assert not heatmap_shown(shown, "gradcam", 0.5, show="outline")


def test_the_report_of_a_poorly_calibrated_model_does_not_call_it_calibrated(tiny_model, tumor_image_path):
    from mri_core.package.activation import is_calibrated

    scan = io.read_file(tumor_image_path)[0]
    [reading] = read_slices(tiny_model, [scan])
    info = {**tiny_model.info, "test_metrics": {**tiny_model.info["test_metrics"], "ece_tumor": 0.168}}
    text = pdf_text(reading_report(reading, scan.pixels, info, "gradcam"))
    assert not is_calibrated(info["test_metrics"])
    assert "calibrated)" not in text and "Class probabilities:" in text and "poorly calibrated" in text


def test_the_banner_names_the_active_model_the_default_and_the_reasons():
    from mri_core.present.report import model_banner

    plain = model_banner("clinic@2", "default-4class@4", [])
    assert plain.startswith("Reading with **clinic@2**, not the shipped default model default-4class@4")
    assert "activation checks" not in plain
    flagged = model_banner("clinic@2", "default-4class@4", ["it has no out-of-distribution statistics"])
    assert flagged.endswith("does not pass the activation checks: it has no out-of-distribution statistics.")


def test_the_report_leads_with_the_verdict_outlines_the_lesion_and_makes_no_call_it_cannot_read(
        tiny_model, tumor_image_path, tmp_path):
    """Issue 21: the result line is the verdict; a segmenting model's lesion is put in words; an image
    that cannot be read gets no tumor call, no type and no heatmap."""
    import numpy as np
    from segmenting import write_segmenting_package

    from mri_core.inference.model import load_model
    from mri_core.present.report import image_caption, lesion_words

    scan = io.read_file(tumor_image_path)[0]
    model = load_model(write_segmenting_package(tmp_path / "seg", scan.pixels, band=(0.0, 0.0)))
    [reading] = read_slices(model, [scan])
    words = lesion_words(reading)
    x0, y0, x1, y1 = reading.lesion["box"]
    assert words == (f"Tumor outline: {reading.lesion['area_px']:,} pixels (the file gives no pixel spacing, so no mm); "
                     f"largest diameter {reading.lesion['diameter_px']:,.1f} pixels; "
                     f"box x {x0}–{x1}, y {y0}–{y1} (original pixels, x right, y down).")
    text = pdf_text(reading_report(reading, scan.pixels, model.info, "gradcam"))
    assert "Result: TUMOR - reported class" in text and "Tumor outline:" in text and "white line outlines" in text
    in_mm = reading.__class__(**{**reading.__dict__, "lesion": {**reading.lesion, "area_mm2": 1234.56, "diameter_mm": 52.04}})
    assert lesion_words(in_mm).startswith("Tumor outline: 1,234.6 mm² (")
    assert "; largest diameter 52.0 mm; box" in lesion_words(in_mm)

    blank = io.Slice(pixels=np.full((200, 200), 0.3, np.float32), source="blank.png")
    [unreadable] = read_slices(tiny_model, [blank])
    assert unreadable.verdict == "cannot_read" and lesion_words(unreadable) is None
    text = pdf_text(reading_report(unreadable, blank.pixels, tiny_model.info, "gradcam"))
    assert "Result: CANNOT READ THIS IMAGE" in text and "no tumor call is made" in text
    assert "reported class" not in text and "Tumor probability" not in text and "Grad-CAM" not in text
    assert image_caption(blank, "gradcam", "axial", unreadable).endswith("no heatmap: the image cannot be read")


def test_summary_words_count_slices_from_one_and_say_why_a_figure_is_missing():
    from mri_core.present.report import summary_words

    summary = {"volume_ml": 12.3456, "slices_with_tumor": [2, 3, 4, 8], "max_diameter_mm": 41.25,
               "max_diameter_px": 80.0, "spacing_source": "ImagePositionPatient", "areas_px": [], "areas_mm2": []}
    assert summary_words(summary) == ("Tumor volume 12.35 mL (slice thickness from ImagePositionPatient); "
                                      "tumor on 4 slices (3–5, 9); largest diameter 41.2 mm within a slice.")
    no_thickness = {**summary, "volume_ml": None, "slices_with_tumor": [0]}
    assert summary_words(no_thickness).startswith("No tumor volume: the file gives no slice thickness")
    assert "tumor on 1 slice (1);" in summary_words(no_thickness)
    no_spacing = {**no_thickness, "areas_mm2": None, "max_diameter_mm": None}
    assert summary_words(no_spacing) == ("No tumor volume: the file gives no pixel spacing; tumor on 1 slice (1); "
                                         "largest diameter 80.0 pixels within a slice.")
    assert summary_words({**summary, "slices_with_tumor": []}).startswith("No slice holds an outlined tumor")


def test_the_report_draws_the_outline_and_gives_its_measurements_spacing_source_and_the_series(tmp_path, capsys,
                                                                                             tumor_image_path):
    """A DICOM slice (PixelSpacing 0.5 x 0.5 mm) read by a segmenting package: the overlay in the PDF
    carries the outline's white line along the mask's contour; the text gives the area in mm² (pixels x
    0.25) and the diameter, where the pixel spacing came from, and the series' summary when given one.
    `predict --report` names the DICOM PixelSpacing too."""
    import cv2
    import numpy as np
    import pypdf
    from scans import dicom_bytes, grey_uint8
    from segmenting import write_segmenting_package

    from mri_core.inference.model import load_model
    from mri_core.present.report import spacing_words

    grey = grey_uint8(tumor_image_path)
    scan_file = tmp_path / "scan.dcm"
    scan_file.write_bytes(dicom_bytes(grey))
    scan = io.read_file(scan_file)[0]
    package = write_segmenting_package(tmp_path / "seg", scan.pixels, band=(0.0, 0.0))
    [reading] = read_slices(load_model(package), [scan])
    assert reading.lesion is not None and reading.lesion["area_mm2"] == pytest.approx(reading.lesion["area_px"] * 0.25)
    summary = {"volume_ml": 1.5, "slices_with_tumor": [4, 5], "max_diameter_mm": 20.0, "max_diameter_px": 40.0,
               "spacing_source": "ImagePositionPatient", "areas_px": [], "areas_mm2": []}
    data = reading_report(reading, scan.pixels, json.loads((package / "model.json").read_text()), "gradcam",
                          spacing_source="DICOM PixelSpacing", summary=summary)
    text = " ".join(pdf_text(data).split())
    assert f"Tumor outline: {reading.lesion['area_mm2']:,.1f} mm" in text
    assert f"largest diameter {reading.lesion['diameter_mm']:,.1f} mm" in text
    assert "Pixel spacing from the DICOM PixelSpacing." in text
    assert "Whole series:" in text and "Tumor volume 1.50 mL (slice thickness from ImagePositionPatient)" in text
    assert "tumor on 2 slices (5-6)" in text  # counted from 1, as pages count

    images = [np.asarray(image.image.convert("RGB")) for image in pypdf.PdfReader(_io.BytesIO(data)).pages[0].images]
    overlay = next(image for image in images if not (image[..., 0] == image[..., 1]).all())  # the coloured one
    assert overlay.shape[:2] == scan.pixels.shape
    contours, _ = cv2.findContours(reading.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    edge = np.concatenate([c.reshape(-1, 2) for c in contours])  # (x, y) of the outline's pixels
    white = (overlay[edge[:, 1], edge[:, 0]] == 255).all(axis=1)
    assert white.mean() > 0.9  # the white line runs along the outline (the box or the peak may cross it)

    assert spacing_words(None) == "Pixel spacing: not given by the file, so sizes are in pixels."
    assert spacing_words("NIfTI zooms") == "Pixel spacing from the NIfTI zooms."
    unsegmented = " ".join(pdf_text(reading_report(reading, scan.pixels, {}, "none", summary={
        **summary, "slices_with_tumor": None, "volume_ml": None})).split())
    assert "does not outline tumors, so the series' tumor volume is not measured" in unsegmented

    from scans import nifti_bytes

    volume = tmp_path / "brain.nii"  # two slices, 1 mm voxels: one report per slice, each of its own slice
    volume.write_bytes(nifti_bytes(np.stack([grey, grey[:, ::-1]])))
    assert main(["predict", str(scan_file), str(volume), "--model", str(package), "--report",
                 str(tmp_path / "reports"), "--slice", "all", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line.get("slice") for line in lines] == [None, 0, 1]
    reports = tmp_path / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["brain_slice0.pdf", "brain_slice1.pdf", "scan.pdf"]
    assert "Pixel spacing from the DICOM PixelSpacing." in pdf_text((reports / "scan.pdf").read_bytes())
    for line in lines[1:]:
        text = " ".join(pdf_text((reports / f"brain_slice{line['slice']}.pdf").read_bytes()).split())
        assert "Pixel spacing from the NIfTI zooms." in text
        assert f"({line['lesion']['area_px']:,} pixels)" in text  # the report of that slice
