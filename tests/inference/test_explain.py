"""Grad-CAM (compiled vs tf-keras-vis on real slices), peak and box, and the Reading's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from mri_core.training.recipes import RECIPES, build
from mri_core.io.errors import ModelInvalid
from mri_core.inference.explain import GradCam, cam_peak_and_box, gradcam_reference
from mri_core.io.reading import Reading

IMAGE_SIZE = 128
N_TRAIN_PER_CLASS = 20
N_CHECK_PER_CLASS = 4
CAM_GRID = {"paper": (61, 61), "default": (16, 16)}  # the Grad-CAM layer's grid at 128 px


def load_slices(paths: list[Path]) -> np.ndarray:
    """Real JPEG/PNG slices -> (N, 128, 128, 1) float32 in [0, 1]."""
    slices = [
        np.asarray(Image.open(p).convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR),
                   dtype=np.float32) / 255.0
        for p in paths
    ]
    return np.stack(slices)[..., None]


@pytest.fixture(scope="module")
def kaggle_slices(kaggle_dir: Path) -> dict[str, np.ndarray]:
    """40 training slices (20 no, 20 yes) and 8 other slices to explain."""
    n_used = N_TRAIN_PER_CLASS + N_CHECK_PER_CLASS
    no_paths = sorted((kaggle_dir / "no").iterdir())[:n_used]
    yes_paths = sorted((kaggle_dir / "yes").iterdir())[:n_used]
    split = N_TRAIN_PER_CLASS
    return {
        "train_x": load_slices(no_paths[:split] + yes_paths[:split]),
        "train_y": np.array([0] * split + [1] * split),
        "check_x": load_slices(no_paths[split:] + yes_paths[split:]),
    }


@pytest.fixture(scope="module", params=["paper", "default"])
def trained_model(request, kaggle_slices) -> tuple[str, keras.Model]:
    """An architecture trained for 2 epochs on 40 real slices, so its gradients mean something."""
    arch = request.param
    keras.utils.set_random_seed(0)
    model = build(arch, IMAGE_SIZE, 2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(kaggle_slices["train_x"], kaggle_slices["train_y"], epochs=2, batch_size=8, verbose=0)
    return arch, model


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def assert_cams_agree(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape
    for i, (cam, ref) in enumerate(zip(ours, reference)):
        if cam.max() == 0 or ref.max() == 0:  # nothing positive: both must say so
            np.testing.assert_allclose(cam, ref, atol=1e-4, err_msg=f"image {i}")
        else:
            assert pearson(cam, ref) >= 0.99, f"image {i}: r = {pearson(cam, ref):.4f}"


def test_compiled_gradcam_matches_tf_keras_vis_on_real_slices(trained_model, kaggle_slices):
    arch, model = trained_model
    images = kaggle_slices["check_x"]
    gradcam = GradCam(model, RECIPES[arch].gradcam_layer)

    probabilities, cams = gradcam(images)

    top_classes = probabilities.argmax(axis=1)
    reference = gradcam_reference(model, RECIPES[arch].gradcam_layer, images, top_classes)
    assert cams.shape == (len(images), *CAM_GRID[arch])
    assert cams.dtype == np.float32 and cams.min() >= 0.0 and cams.max() <= 1.0
    assert sum(cam.max() == 1.0 for cam in cams) >= len(images) // 2, "maps are mostly empty"
    assert_cams_agree(cams, reference)


def test_explicit_target_class_matches_tf_keras_vis(trained_model, kaggle_slices):
    arch, model = trained_model
    images = kaggle_slices["check_x"]
    gradcam = GradCam(model, RECIPES[arch].gradcam_layer)
    # The class the model did NOT pick: its evidence map differs from the top class's.
    other_classes = 1 - gradcam(images)[0].argmax(axis=1)

    _, cams = gradcam(images, other_classes)

    assert_cams_agree(cams, gradcam_reference(model, RECIPES[arch].gradcam_layer, images, other_classes))


def test_probabilities_are_the_models_own(trained_model, kaggle_slices):
    arch, model = trained_model
    images = kaggle_slices["check_x"]

    probabilities, _ = GradCam(model, RECIPES[arch].gradcam_layer)(images)

    np.testing.assert_allclose(probabilities, model.predict(images, verbose=0), atol=1e-5)


def test_any_batch_size_reuses_one_compiled_trace(trained_model, kaggle_slices):
    arch, model = trained_model
    images = kaggle_slices["check_x"]
    gradcam = GradCam(model, RECIPES[arch].gradcam_layer)

    _, single = gradcam(images[:1])
    _, five = gradcam(images[:5])
    gradcam(images[:3], np.array([0, 1, 0]))

    assert gradcam.tracing_count == 1
    np.testing.assert_allclose(single[0], five[0], atol=1e-5)  # batching changes no image's map


def test_mirror_reading_gives_a_slice_and_its_mirror_mirrored_maps(trained_model, kaggle_slices):
    arch, model = trained_model
    images = kaggle_slices["check_x"]
    gradcam = GradCam(model, RECIPES[arch].gradcam_layer, mirror=True)

    probabilities, cams = gradcam(images)
    mirror_probabilities, mirror_cams = gradcam(images[:, :, ::-1])

    both = model.predict(np.concatenate([images, images[:, :, ::-1]]), verbose=0)
    np.testing.assert_allclose(probabilities, (both[:len(images)] + both[len(images):]) / 2, atol=1e-5)
    np.testing.assert_allclose(mirror_probabilities, probabilities, atol=1e-5)
    np.testing.assert_allclose(mirror_cams, cams[:, :, ::-1], atol=1e-5)
    assert cams.shape == (len(images), *CAM_GRID[arch]) and cams.max() == pytest.approx(1.0)


def test_smoothed_maps_are_the_upsampled_cam_under_a_gaussian(trained_model, kaggle_slices):
    import cv2
    from scipy import ndimage

    arch, model = trained_model
    images = kaggle_slices["check_x"]
    _, plain = GradCam(model, RECIPES[arch].gradcam_layer)(images)

    _, smooth = GradCam(model, RECIPES[arch].gradcam_layer, smoothing_sigma=2.0)(images)

    size = images.shape[1]
    assert smooth.shape == (len(images), size, size)
    for cam, smoothed in zip(plain, smooth):
        expected = ndimage.gaussian_filter(cv2.resize(cam, (size, size), interpolation=cv2.INTER_LINEAR), 2.0)
        if expected.max() > 0:
            expected /= expected.max()
        np.testing.assert_allclose(smoothed, expected, atol=2e-3)


@pytest.fixture(scope="module")
def segmenting_network():
    """The default architecture with its mask output (issue 21), seeded weights, at 128 px."""
    keras.utils.set_random_seed(1)
    return build("default", IMAGE_SIZE, 3, segment=True)


def test_one_pass_gives_probabilities_class_heatmap_and_the_mask_read_as_calibration_reads_it(
        segmenting_network, kaggle_slices):
    from mri_core.inference.explain import class_output_view
    from mri_core.inference.model import forward, mask_output_index
    from mri_core.training.calibrate import predict_masks

    network, images = segmenting_network, kaggle_slices["check_x"]
    index = mask_output_index(network, "mask")
    gradcam = GradCam(network, "last_conv", mirror=True, smoothing_sigma=2.0, mask_output=index)

    probabilities, cams, masks = gradcam.read(images)

    assert masks.shape == (len(images), IMAGE_SIZE, IMAGE_SIZE) and masks.dtype == np.float32
    # the mask: the slice's and its mirror's (flipped back), averaged, as the calibration chose its threshold on
    np.testing.assert_allclose(masks, predict_masks(network, images, mirror=True)[..., 0], atol=1e-5)
    assert not np.allclose(masks, masks[:, :, ::-1], atol=1e-3)  # not symmetric: the flip back matters
    np.testing.assert_allclose(probabilities, forward(network, images, mirror=True), atol=1e-5)
    # the heatmap explains the class output, exactly as for the network without its mask
    _, class_cams = GradCam(class_output_view(network), "last_conv", mirror=True, smoothing_sigma=2.0)(images)
    np.testing.assert_allclose(cams, class_cams, atol=1e-5)
    assert gradcam.tracing_count == 1
    assert GradCam(network, "last_conv").read(images[:2])[2] is None  # no mask output named: no mask


def test_library_cams_of_a_segmenting_network_explain_its_class_output(segmenting_network, kaggle_slices):
    from mri_core.inference.explain import class_output_view, library_cams

    images, targets = kaggle_slices["check_x"][:2], np.array([0, 1])
    cams = library_cams(segmenting_network, "last_conv", images, targets, "gradcam++")
    view = class_output_view(segmenting_network)
    assert len(view.outputs) == 1 and view.get_layer("logits") is segmenting_network.get_layer("logits")
    np.testing.assert_allclose(cams, library_cams(view, "last_conv", images, targets, "gradcam++"), atol=1e-5)


def test_bad_inputs_say_what_was_expected():
    model = build("paper", 64, 2)
    with pytest.raises(ModelInvalid, match="no layer named 'conv9'"):
        GradCam(model, "conv9")
    gradcam = GradCam(model, "conv2")
    with pytest.raises(ValueError, match=r"shape \(N, 64, 64, 1\)"):
        gradcam(np.zeros((1, 128, 128, 1), np.float32))
    with pytest.raises(ValueError, match="target classes in 0..1"):
        gradcam(np.zeros((2, 64, 64, 1), np.float32), np.array([0, 2]))


def blob(shape: tuple[int, int], center_xy: tuple[int, int], radius: float, height: float = 1.0):
    """A Gaussian bump (H, W) peaking at `center_xy` = (x, y)."""
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    d2 = (xs - center_xy[0]) ** 2 + (ys - center_xy[1]) ** 2
    return (height * np.exp(-d2 / (2 * radius**2))).astype(np.float32)


def test_peak_and_box_land_on_the_blob():
    heatmap = blob((200, 300), center_xy=(210, 60), radius=10)  # wide image: x and y differ

    peak, box = cam_peak_and_box(heatmap)

    assert peak == (210, 60)
    x0, y0, x1, y1 = box
    assert x0 < 210 < x1 and y0 < 60 < y1
    # Half-maximum of a Gaussian lies at 1.18 sigma: the box hugs the blob.
    assert 20 <= x1 - x0 <= 26 and 20 <= y1 - y0 <= 26


def test_box_encloses_only_the_peaks_blob():
    strong = blob((120, 160), center_xy=(30, 40), radius=6)
    weaker = blob((120, 160), center_xy=(120, 90), radius=6, height=0.8)

    peak, (x0, y0, x1, y1) = cam_peak_and_box(np.maximum(strong, weaker))

    assert peak == (30, 40)
    assert x1 < 60 and y1 < 70, "the box must not stretch to the second blob"
    assert x0 <= 30 <= x1 and y0 <= 40 <= y1


def test_all_zero_map_has_no_peak_or_box():
    assert cam_peak_and_box(np.zeros((64, 64), np.float32)) == (None, None)


def test_reading_json_is_exactly_the_cli_contract():
    reading = Reading(
        source="scan.png", label="glioma", tumor=np.bool_(True),
        tumor_probability=np.float32(0.91234567), threshold=0.5,
        probabilities={"glioma": np.float32(0.7), "meningioma": 0.2, "notumor": 0.0876543, "pituitary": 0.0123457},
        heatmap=np.zeros((10, 12), np.float32), cam_peak=(np.int64(3), np.int64(4)),
        cam_box=(1, 2, np.int64(5), 6), warnings=("low_confidence",), model="default@3", verdict="tumor",
    )

    line = reading.to_json()

    assert set(line) == {"file", "verdict", "label", "tumor", "tumor_probability", "threshold",
                         "probabilities", "lesion", "cam_peak", "cam_box", "warnings", "model"}
    assert json.loads(json.dumps(line)) == line
    assert line["tumor"] is True and line["cam_peak"] == [3, 4] and line["cam_box"] == [1, 2, 5, 6]
    assert line["tumor_probability"] == pytest.approx(0.912346, abs=1e-9)
    assert line["warnings"] == ["low_confidence"] and line["model"] == "default@3"


def test_reading_json_without_cam_and_with_slice():
    reading = Reading(
        source="brain.nii.gz", label="notumor", tumor=False, tumor_probability=0.1, threshold=0.5,
        probabilities={"notumor": 0.9, "tumor": 0.1}, heatmap=None, cam_peak=None, cam_box=None,
        warnings=(), model="paper@1", verdict="no_tumor", slice_index=np.int64(12),
    )

    line = reading.to_json()

    assert line["cam_peak"] is None and line["cam_box"] is None
    assert line["slice"] == 12 and line["warnings"] == []
    assert json.loads(json.dumps(line)) == line


# --- Grad-CAM++ and Score-CAM (tf-keras-vis) through the reading path, on boxed figshare slices ---

BOXED_FILES = ["glioma", "meningioma", "pituitary"]


def boxed_slices(figshare_dir: Path, per_class: int = 2):
    import csv

    from mri_core.io import slices as io

    with open(figshare_dir / "boxes.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = []
    for tumor_class in BOXED_FILES:
        chosen += [r for r in rows if r["file"].startswith(tumor_class + "/")][:per_class]
    return ([io.read_file(figshare_dir / r["file"])[0] for r in chosen],
            [tuple(int(r[k]) for k in ("x_min", "y_min", "x_max", "y_max")) for r in chosen])


@pytest.fixture(scope="module")
def shipped_model():
    from mri_core.package import registry
    from mri_core.inference.model import load_model

    return load_model(registry.default_shipped())


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_each_cam_method_gives_an_original_size_map_in_0_1(shipped_model, figshare_dir, method, capfd, recwarn):
    from mri_core.inference.read import read_slices

    slices, boxes = boxed_slices(figshare_dir)
    readings = read_slices(shipped_model, slices, cam=method)
    for slice_, reading in zip(slices, readings):
        assert reading.heatmap.shape == slice_.pixels.shape and reading.heatmap.dtype == np.float32
        assert reading.heatmap.min() >= 0.0 and 0.5 < reading.heatmap.max() <= 1.0
        x, y = reading.cam_peak
        assert reading.heatmap[y, x] == pytest.approx(reading.heatmap.max())
    # the evidence sits on the head, and on the tumor for some of these slices (the shipped
    # model's pointing game is ~0.18 on the whole boxed test split, bench/cams.py)
    hits = [x0 <= r.cam_peak[0] <= x1 and y0 <= r.cam_peak[1] <= y1 for r, (x0, y0, x1, y1) in zip(readings, boxes)]
    assert any(hits)
    captured = capfd.readouterr()
    assert captured.out == ""  # the CLI's stdout carries only its JSON lines
    assert "━" not in captured.err and "/step" not in captured.err  # no Keras progress bar (Score-CAM's predict)
    assert not [w for w in recwarn if "structure of `inputs`" in str(w.message)]  # nor Keras's input warning


def test_score_cam_through_the_quiet_view_is_tf_keras_vis_score_cam_of_the_model(shipped_model, figshare_dir):
    import contextlib
    import sys
    import warnings

    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    from mri_core.inference.explain import _normalise_per_image, class_output_view, library_cams
    from mri_core.io import preprocess

    slices, _ = boxed_slices(figshare_dir, per_class=1)
    images = np.stack([preprocess.prepare(s.pixels, shipped_model.image_size).image for s in slices[:2]])
    targets = shipped_model.tumor_indices[:2]
    layer = shipped_model.info["gradcam_layer"]
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the model itself, as tf-keras-vis calls it: Keras warns
        # the class output of the model (the shipped default also has a mask output, which Score-CAM must not score)
        direct = Scorecam(class_output_view(shipped_model.keras_model), clone=False)(
            CategoricalScore(targets), images, penultimate_layer=layer, seek_penultimate_conv_layer=False,
            expand_cam=False, normalize_cam=False)
    direct = np.asarray(_normalise_per_image(np.maximum(np.asarray(direct, np.float32), 0.0)))
    np.testing.assert_allclose(library_cams(shipped_model.keras_model, layer, images, targets, "scorecam"),
                               direct, atol=1e-6)
