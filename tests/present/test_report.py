"""The reading report: a PDF that opens and carries the label, probabilities, warnings and the notice."""

from __future__ import annotations

import io as _io
import json

import pytest

from mri_core.io import slices as io
from mri_core.__main__ import main
from mri_core.inference.read import read_slices
from mri_core.present.report import NOTICE, confidence_words, percent, reading_report

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
        assert f"{name}: {percent(probability)}" in text
    assert f"Tumor probability {percent(reading.tumor_probability)}" in text
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
    text = confidence_words(0.9, 0.01)
    assert "roughly 90 would show a tumor and 10 would not" in text and "1.0%" in text
    assert "of 100 scans given about this probability, nearly all would show a tumor." in confidence_words(0.9962, 0.01)
    assert "nearly none would show a tumor." in confidence_words(0.0004, 0.01)


def test_the_probability_is_not_called_calibrated_for_an_image_unlike_the_test_scans():
    """Issue: "a tumor probability of 7 % is calibrated" under a warning that the image looks unlike the
    training scans. Out of distribution, the words say it is a score here."""
    text = confidence_words(0.07, 0.003, ("out_of_distribution",))
    assert text.startswith("A tumor probability of 7.0%.") and "is calibrated" not in text
    assert "this image looks unlike them, so here 7.0% is a score, not a checked rate" in text
    assert "is calibrated" in confidence_words(0.07, 0.003, ("low_confidence",))


def test_percent_never_shows_a_certainty_it_is_not():
    """0.99962 rounds to 100.0 % and 0.0004 to 0.0 %: they read >99.9% and <0.1%; the rest to 0.1 %."""
    assert [percent(p) for p in (0.99962, 0.9995, 0.99949, 1.0, 0.0004, 0.0, 0.0005, 0.0712, 0.5)] == [
        ">99.9%", ">99.9%", "99.9%", ">99.9%", "<0.1%", "<0.1%", "0.1%", "7.1%", "50.0%"]


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

    good, poor, unknown = (confidence_words(0.9, ece) for ece in (MAX_ECE, 0.168, None))
    assert "The tumor probability, 90.0%, is calibrated" in good
    for text in (poor, unknown):
        assert "is calibrated" not in text and "would show a tumor" not in text
    assert "poorly calibrated" in poor and "16.8%" in poor and f"more than the {MAX_ECE:.0%} the app accepts" in poor
    assert "records no calibration error" in unknown


def test_the_caption_names_the_heatmap_method_only_when_a_heatmap_is_shown(tiny_model, tumor_image_path):
    """Issue: no heatmap words in the caption when none is drawn; the box and the peak are named when drawn."""
    import numpy as np

    from mri_core.present.report import heatmap_shown, image_caption

    scan = io.read_file(tumor_image_path)[0]
    [reading] = read_slices(tiny_model, [scan])
    [without] = read_slices(tiny_model, [scan], cam="none")
    # what a model with no evidence for any tumor class gives: an all-zero map, no peak
    flat = reading.__class__(**{**reading.__dict__, "heatmap": np.zeros_like(reading.heatmap),
                                "cam_peak": None, "cam_box": None})
    assert reading.cam_peak is not None
    assert heatmap_shown(reading, "gradcam") and not heatmap_shown(reading, "gradcam", 0.5, ("outline", "box"))
    name = tumor_image_path.name
    assert image_caption(scan, "gradcam", "axial", reading, 0.5) == (
        f"{name} · heatmap (Grad-CAM): evidence for the most likely tumor class · magenta box: where the evidence "
        "is strongest · cross: its peak")  # the tiny model does not segment: no outline words
    assert image_caption(scan, "gradcam", "axial", reading, 0.5, ("heatmap",)) == (
        f"{name} · heatmap (Grad-CAM): evidence for the most likely tumor class")
    assert image_caption(scan, "gradcam", "axial", reading, 0.5, ("box", "peak")) == (
        f"{name} · magenta box: where the evidence is strongest · cross: its peak")
    for caption in (image_caption(scan, "none", "axial", without, 0.5), image_caption(scan, "gradcam", "axial", reading, 0.0,
                                                                                       ("heatmap",)),
                    image_caption(scan, "gradcam", "axial", reading, 0.5, ())):
        assert caption == name, "nothing drawn, nothing said"
    assert image_caption(scan, "gradcam", "axial", flat, 0.5) == f"{name} · the model found no evidence to map on this slice"
    pdf = pdf_text(reading_report(flat, scan.pixels, tiny_model.info, "gradcam"))
    assert "Grad-CAM" not in pdf and "without heatmap (the model's evidence map is empty" in pdf


def test_the_outline_alone_is_captioned_without_naming_a_heatmap(tiny_model, tumor_image_path):
    """The Diagnose page's Outline checkbox alone: the caption names the outline, or why there is none, never a heatmap."""
    import numpy as np

    from mri_core.present.report import heatmap_shown, image_caption

    scan = io.read_file(tumor_image_path)[0]
    [reading] = read_slices(tiny_model, [scan])  # the tiny model does not segment: mask None
    empty = reading.__class__(**{**reading.__dict__, "mask": np.zeros(scan.pixels.shape, bool), "lesion": None})
    outlined = reading.__class__(**{**empty.__dict__, "lesion": {"area_px": 9, "area_mm2": None, "box": (1, 1, 3, 3)}})
    for shown, words in ((reading, "this model does not outline tumors"), (empty, "no tumor outlined on this slice"),
                         (outlined, "white line: the tumor's outline as the model segments it")):
        caption = image_caption(scan, "gradcam", "axial", shown, 0.5, ("outline",))
        assert caption == f"{tumor_image_path.name} · {words}" and "heatmap" not in caption.lower()
        assert not heatmap_shown(shown, "gradcam", 0.5, ("outline",))
    assert image_caption(scan, "gradcam", "axial", outlined, 0.5).endswith(
        "cross: its peak · white line: the tumor's outline as the model segments it")


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
    assert "Result: TUMOR" in text and "Tumor outline:" in text and "white line outlines" in text
    in_mm = reading.__class__(**{**reading.__dict__, "lesion": {**reading.lesion, "area_mm2": 1234.56, "diameter_mm": 52.04}})
    assert lesion_words(in_mm).startswith("Tumor outline: 1,234.6 mm² (")
    assert "; largest diameter 52.0 mm; box" in lesion_words(in_mm)

    blank = io.Slice(pixels=np.full((200, 200), 0.3, np.float32), source="blank.png")
    [unreadable] = read_slices(tiny_model, [blank])
    assert unreadable.verdict == "cannot_read" and lesion_words(unreadable) is None
    text = pdf_text(reading_report(unreadable, blank.pixels, tiny_model.info, "gradcam"))
    assert "Result: CANNOT READ THIS IMAGE" in text and "no tumor call is made" in text
    assert "type" not in text and "Tumor probability" not in text and "Grad-CAM" not in text
    assert "calibrated" not in text and '"tumor" call' not in text
    assert image_caption(blank, "gradcam", "axial", unreadable) == "blank.png · not read, so nothing is drawn over it"


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


# --- the verdict first, the operating point, the words of the page (the "trust at a glance" issue) ----

def _reading(verdict: str, label: str = "glioma", warnings=(), probability: float = 0.9):
    from mri_core.io.reading import Reading

    return Reading(source="scan.png", label=label, tumor=verdict == "tumor", tumor_probability=probability,
                   threshold=0.085, probabilities={label: probability}, heatmap=None, cam_peak=None, cam_box=None,
                   warnings=tuple(warnings), model="m@1", verdict=verdict)


def test_the_verdict_words_name_a_tumor_type_only_under_a_tumor_verdict():
    from mri_core.io.reading import VERDICT_TEXT
    from mri_core.present.report import verdict_words

    assert verdict_words(_reading("tumor")) == ("Tumor", "Most likely type: glioma.")
    assert verdict_words(_reading("tumor", "tumor")) == ("Tumor", VERDICT_TEXT["tumor"]), "a model without types"
    for verdict in ("uncertain", "no_tumor", "cannot_read"):
        headline, line = verdict_words(_reading(verdict))
        assert line == VERDICT_TEXT[verdict] and "glioma" not in headline + line
    assert verdict_words(_reading("uncertain"))[0] == "Uncertain: refer to a reader"
    assert verdict_words(_reading("cannot_read"))[0] == "Cannot read this image"


def test_a_warning_that_qualifies_the_call_is_named_under_the_headline():
    """Issue: the headline contradicted the warnings. The line under it says to read it with caution."""
    from mri_core.present.report import verdict_words

    _, line = verdict_words(_reading("no_tumor", "notumor", ("out_of_distribution", "image_small")))
    assert line.endswith("Read it with caution: the image looks unlike the scans the model was trained on "
                         "(see the warnings).")
    _, line = verdict_words(_reading("tumor", warnings=("low_confidence", "out_of_distribution")))
    assert line == ("Most likely type: glioma. Read it with caution: the image looks unlike the scans the model was "
                    "trained on and the probability is close to the decision threshold (see the warnings).")
    assert "caution" not in verdict_words(_reading("cannot_read", warnings=("out_of_distribution",)))[1]


BAND_INFO = {"threshold": 0.085, "uncertainty_band": [0.0036, 0.705],
             "operating_point": {"validation": {"all": {"tumors": 1500, "healthy": 300, "missed": 0.002,
                                                        "healthy_called_tumor": 0.02, "deferred": 0.07}}},
             "test_metrics": {"n": 1815, "sensitivity": 0.999339, "specificity": 0.953642}}


def test_the_operating_point_is_explained_with_the_models_own_figures():
    """With a band: its ends, and on the 1,800 validation scans 0.002 x 1500 = 3 tumors missed,
    0.02 x 300 = 6 healthy called tumor, 0.07 x 1800 = 126 deferred; the test figures at the threshold.
    Without: the threshold, the share of tumors caught and of healthy scans called tumor (1 - 0.6 = 40 %)."""
    from mri_core.present.report import decision_metrics, operating_point_words

    assert operating_point_words(BAND_INFO) == (
        'A "tumor" call means a tumor probability of at least 70.5%, a "no tumor" call one below 0.4%; in between '
        "the model defers (uncertain: refer to a reader). On the 1,800 validation scans that set these limits it "
        'called 3 of 1,500 tumors "no tumor" and 6 of 300 healthy scans "tumor" (2.0%), and deferred 126 (7.0%). '
        "Counting every probability from its threshold, 8.5%, as tumor, its 1,815 held-out test scans gave "
        "sensitivity 99.9% and specificity 95.4%.")
    plain = {"threshold": 0.02, "test_metrics": {"n": 1136, "sensitivity": 0.997, "specificity": 0.6}}
    assert operating_point_words(plain) == (
        'A "tumor" call means a tumor probability of at least 2.0%: on its 1,136 held-out test scans, calls at that '
        "level caught 99.7% of the tumors and called 40.0% of the healthy scans tumor.")
    assert operating_point_words({"threshold": 0.5}) == (
        'A "tumor" call means a tumor probability of at least 50.0%; this model records no test sensitivity or specificity.')
    assert decision_metrics(BAND_INFO) == [("Tumor call from", "70.5%"), ("No tumor below", "0.4%")]
    assert decision_metrics(plain) == [("Decision threshold", "2.0%")]


def test_the_shipped_defaults_operating_point_words_use_its_model_json():
    from mri_core.io.errors import MriError
    from mri_core.package import registry
    from mri_core.present.report import decision_metrics, operating_point_words

    try:
        info = registry.default_shipped().info
    except MriError as exc:
        pytest.skip(f"no shipped default model: {exc}")
    words = operating_point_words(info)
    for _, value in decision_metrics(info):  # the band's ends (or the threshold) the page shows beside it
        assert value in words
    assert f"{info['test_metrics']['sensitivity']:.1%}" in words


def test_reliability_words_say_which_bins_are_left_out():
    from mri_core.present.report import reliability_words

    bins = [{"n": 289}, {"n": 1}, {"n": 9}, {"n": 4}, {"n": 1496}]
    assert reliability_words(bins).endswith(" 3 groups with fewer than 10 scans (14 scans in all) are not drawn: "
                                            "so few scans give a rate that is mostly chance.")
    assert "not drawn" not in reliability_words([{"n": 10}])
    assert "1 group with fewer than 10 scans (1 scan in all) is not drawn" in reliability_words([{"n": 1}])


def test_scan_labels_list_images_by_name_and_a_dicom_series_as_one_entry(kaggle_dir):
    from scans import dicom_bytes, nifti_bytes, stack_of

    from mri_core.present.report import scan_label

    paths = sorted((kaggle_dir / "yes").iterdir())[:3]
    stack = stack_of(paths, size=64)
    files = [(paths[0].name, paths[0].read_bytes()), ("head.nii", nifti_bytes(stack)), ("LONE", dicom_bytes(stack[0]))]
    files += [(f"IM{i}", dicom_bytes(stack[i], series_uid="1.2.4", position=float(i), StudyDescription="MR HEAD",
                                     SeriesDescription="T1 AX")) for i in range(2)]
    assert [scan_label(scan) for scan in io.read_uploads(files)] == [
        paths[0].name, "head.nii · NIfTI volume · 3 slices", "LONE · DICOM image", "DICOM series · MR HEAD · T1 AX · 2 slices"]


def test_the_report_counts_slices_from_one_and_names_no_type_under_uncertain(tiny_model, kaggle_dir):
    """Issue: "Slice {slice_index}" was 0-based. An uncertain reading's report names no type and explains the band."""
    import numpy as np

    from mri_core.io.reading import Reading

    pixels = np.full((64, 64), 0.4, np.float32)
    reading = Reading(source="brain.nii", label="meningioma", tumor=True, tumor_probability=0.99962, threshold=0.085,
                      probabilities={"glioma": 0.0003, "meningioma": 0.99962, "notumor": 0.00008}, heatmap=None,
                      cam_peak=None, cam_box=None, warnings=(), model="m@1", verdict="uncertain", slice_index=4)
    info = {**tiny_model.info, **BAND_INFO}
    text = " ".join(pdf_text(reading_report(reading, pixels, info, "none", slice_count=9, plane="axial")).split())
    assert "axial slice 5 of 9" in text
    assert "Result: UNCERTAIN: REFER TO A READER" in text and "type" not in text.replace("types", "")
    assert "Tumor probability >99.9% (tumor call from 70.5%, no tumor below 0.4%)" in text
    assert "meningioma: >99.9%" in text and "notumor: <0.1%" in text and "100.0%" not in text
    assert 'A "tumor" call means a tumor probability of at least 70.5%' in text
    assert text.index("Result:") < text.index("Left: the scan as read"), "the verdict first"
    tumor = reading.__class__(**{**reading.__dict__, "verdict": "tumor"})
    assert "Most likely type: meningioma." in " ".join(pdf_text(reading_report(tumor, pixels, info, "none")).split())
