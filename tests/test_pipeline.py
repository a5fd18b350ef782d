"""The reading path: real scans in, Readings out, in order, bad files isolated."""

import numpy as np
import pytest

from mri_core import io
from mri_core.errors import MriError, SettingsInvalid, UnreadableImage
from mri_core.pipeline import prepare_paths, read_paths, read_slices, read_upload


def test_a_real_scan_gives_a_consistent_reading_with_heatmap_at_original_size(tiny_model, tumor_image_path):
    data = tumor_image_path.read_bytes()
    original = io.decode_image(data, tumor_image_path.name).pixels
    [reading] = read_upload(tiny_model, data, tumor_image_path.name)
    height, width = original.shape
    assert reading.heatmap.shape == (height, width) and reading.heatmap.dtype == np.float32
    assert 0.0 <= reading.heatmap.min() and reading.heatmap.max() <= 1.0
    x, y = reading.cam_peak
    assert 0 <= x < width and 0 <= y < height
    assert reading.heatmap[y, x] == pytest.approx(reading.heatmap.max())
    x0, y0, x1, y1 = reading.cam_box
    assert 0 <= x0 <= x <= x1 < width and 0 <= y0 <= y <= y1 < height
    assert sum(reading.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert reading.tumor_probability == pytest.approx(1 - reading.probabilities["notumor"], abs=1e-5)
    assert reading.tumor == (reading.tumor_probability >= reading.threshold)
    assert (reading.label == "notumor") != reading.tumor
    assert reading.model == "tiny@1"


def test_cam_none_skips_the_heatmap_but_not_the_answer(tiny_model, tumor_image_path):
    data = tumor_image_path.read_bytes()
    [with_cam] = read_upload(tiny_model, data, "a.jpg")
    [without] = read_upload(tiny_model, data, "a.jpg", cam="none")
    assert without.heatmap is None and without.cam_peak is None and without.cam_box is None
    assert without.tumor_probability == pytest.approx(with_cam.tumor_probability, abs=1e-5)


def test_batches_answer_in_input_order_and_isolate_a_bad_file(tiny_model, kaggle_dir, tmp_path):
    good = sorted((kaggle_dir / "yes").iterdir())[:3] + sorted((kaggle_dir / "no").iterdir())[:2]
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(good[0].read_bytes()[:500])
    files = [good[0], good[1], corrupt, good[2], good[3], good[4]]
    outcomes = list(read_paths(tiny_model, files, batch_size=2))
    assert [file for file, _ in outcomes] == [str(f) for f in files]
    assert isinstance(outcomes[2][1], UnreadableImage) and "corrupt.jpg" in str(outcomes[2][1])
    singles = [read_upload(tiny_model, f.read_bytes(), f.name)[0].tumor_probability for f in good]
    batched = [o.tumor_probability for _, o in outcomes if not isinstance(o, MriError)]
    np.testing.assert_allclose(batched, singles, atol=1e-4)  # batching does not change answers


def test_prepare_paths_gives_uint8_model_inputs(kaggle_dir):
    files = sorted((kaggle_dir / "no").iterdir())[:4]
    images = prepare_paths(files, 64)
    assert images.shape == (4, 64, 64, 1) and images.dtype == np.uint8
    assert images.max() > 200  # normalised to the full range


def test_unknown_cam_method_is_refused(tiny_model, tumor_image_path):
    with pytest.raises(SettingsInvalid, match="CAM method"):
        read_slices(tiny_model, [io.read_file(tumor_image_path)[0]], cam="magic")
