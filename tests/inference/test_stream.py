"""Streaming batch reading on real scans: order, isolation of bad inputs, flat memory, downloads."""

from __future__ import annotations


import numpy as np
import pytest

from mri_core.inference.stream import DEFAULT_BATCH_SIZE, stream_readings
from mri_core.io.errors import MriError, SettingsInvalid, UnreadableImage
from mri_core.inference.read import read_upload


@pytest.fixture(scope="module")
def real_scans(kaggle_dir, typed_dir, figshare_dir):
    """Grey and colour JPEGs (Kaggle, 224 set) and grey PNGs (figshare): the formats users send."""
    return (sorted((kaggle_dir / "yes").iterdir())[:2] + sorted((typed_dir / "glioma").iterdir())[:2]
            + sorted((figshare_dir / "meningioma").iterdir())[:2])


def test_stream_answers_in_input_order_and_isolates_bad_inputs(tiny_model, real_scans, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(real_scans[0].read_bytes()[:400])
    uploads = [(p.name, p.read_bytes()) for p in real_scans[3:]]
    inputs = [real_scans[0], tmp_path / "missing.png", real_scans[1], corrupt, real_scans[2],
              ("notes.txt", b"hello"), *uploads]
    items = list(stream_readings(tiny_model, iter(inputs), batch_size=3))
    assert [item.file for item in items] == [x[0] if isinstance(x, tuple) else str(x) for x in inputs]
    assert [item.position for item in items] == list(range(len(inputs)))
    assert [item.failed for item in items] == [False, True, False, True, False, True, False, False, False]
    assert "missing.png" in str(items[1].outcome) and "corrupt.jpg" in str(items[3].outcome)
    good = [p for p in real_scans]
    singles = [read_upload(tiny_model, p.read_bytes(), p.name)[0] for p in good]
    streamed = [item.outcome for item in items if not item.failed]
    np.testing.assert_allclose([r.tumor_probability for r in streamed],
                               [r.tumor_probability for r in singles], atol=1e-5)
    assert [r.cam_peak for r in streamed] == [r.cam_peak for r in singles]
    assert all(r.heatmap.shape == s.heatmap.shape for r, s in zip(streamed, singles))
    assert tiny_model.gradcam.tracing_count == 1  # batches of 3, 2, 1: one compiled graph serves all


def test_stream_reads_its_inputs_lazily_so_memory_stays_flat(tiny_model, real_scans):
    pulled = []

    def endless():
        while True:
            for path in real_scans:
                pulled.append(path)
                yield path

    stream = stream_readings(tiny_model, endless(), batch_size=4)
    answers = [next(stream) for _ in range(12)]
    stream.close()
    assert all(not a.failed for a in answers)
    assert len(pulled) < 12 + 64  # a few batches ahead, never the whole (endless) input


def test_bad_settings_are_refused_before_any_work(tiny_model, real_scans):
    with pytest.raises(SettingsInvalid, match="Batch size"):
        next(stream_readings(tiny_model, real_scans, batch_size=0))
    with pytest.raises(SettingsInvalid, match="CAM method"):
        next(stream_readings(tiny_model, real_scans, cam="magic"))
    assert DEFAULT_BATCH_SIZE >= 1 and issubclass(UnreadableImage, MriError)


def test_a_segmenting_package_streams_the_masks_and_lesions_a_single_reading_gives(real_scans, tmp_path):
    """Issue 21: the stream drops each slice's pixels before the model runs; the mask still comes
    back at the original size, as reading the slice alone gives it, and so do verdict and lesion."""
    from segmenting import write_segmenting_package

    from mri_core.inference.model import load_model
    from mri_core.io import slices as io

    pixels = io.read_file(real_scans[-1])[0].pixels
    model = load_model(write_segmenting_package(tmp_path / "seg", pixels, band=(0.0, 0.0)))
    items = list(stream_readings(model, real_scans, batch_size=4))
    singles = [read_upload(model, p.read_bytes(), p.name)[0] for p in real_scans]
    for item, single, path in zip(items, singles, real_scans):
        reading = item.outcome
        assert reading.verdict == single.verdict == "tumor"
        assert reading.mask.shape == io.read_file(path)[0].pixels.shape
        # batched as 4 or read alone: the same mask, up to a pixel whose probability sits on the threshold
        assert (reading.mask != single.mask).mean() < 1e-3
        assert (reading.lesion is None) == (single.lesion is None)
        if reading.lesion is not None:
            assert reading.lesion["area_px"] == pytest.approx(single.lesion["area_px"], rel=1e-2)
    assert sum(item.outcome.lesion is not None for item in items) >= 4


def test_the_stream_asks_the_brain_check_as_a_single_reading_does(tiny_model, real_scans, data_root):
    """Issue 21: head CTs read `cannot_read` in the stream too, next to MRI that do not."""
    cts = sorted((data_root / "not-mri" / "head-ct").iterdir())[::101][:3]
    inputs = [cts[0], real_scans[0], cts[1], real_scans[3], cts[2]]
    items = list(stream_readings(tiny_model, inputs, batch_size=2))
    singles = [read_upload(tiny_model, p.read_bytes(), p.name)[0] for p in inputs]
    assert [i.outcome.verdict for i in items] == [s.verdict for s in singles]
    assert [i.outcome.verdict == "cannot_read" for i in items] == [True, False, True, False, True]


def test_an_upload_of_several_dicom_files_is_one_series_in_body_order_and_an_upload_may_carry_its_error(
        tiny_model, figshare_dir):
    """The Batch page's DICOM files uploaded together: one input, its slices ordered by position (not by
    upload order), each answer knowing how many slices its series has; a zip that could not be opened
    answers its error in its place."""
    import functools

    from scans import dicom_bytes, stack_of

    from mri_core.inference.stream import Upload, decode_input

    stack = stack_of(sorted((figshare_dir / "glioma").iterdir())[:4], size=96)
    order = [2, 0, 3, 1]
    series = Upload("IM2: 4 DICOM files", tuple((f"IM{k}", dicom_bytes(stack[k], position=2.0 * k, instance=k + 1))
                                                for k in order))
    refused = Upload("bad.zip", error=UnreadableImage("bad.zip: the zip cannot be opened; zip the folder again."))
    items = list(stream_readings(tiny_model, [series, refused], batch_size=3, thumbnail_side=96,
                                 decode=functools.partial(decode_input, choice="all")))
    assert [item.file for item in items] == ["IM2: 4 DICOM files"] * 4 + ["bad.zip"]
    assert [item.outcome.slice_index for item in items[:4]] == [0, 1, 2, 3]
    assert {item.slice_count for item in items[:4]} == {4} and {item.place.series for item in items[:4]} == {
        "IM2 (4 files)"}
    for k, item in enumerate(items[:4]):  # slice k is the file at position k, whatever the upload order
        closeness = [np.corrcoef(item.thumbnail.ravel(), stack[j].ravel())[0, 1] for j in range(4)]
        assert int(np.argmax(closeness)) == k
    assert items[4].failed and "cannot be opened" in str(items[4].outcome)
    middle = list(stream_readings(tiny_model, [series]))
    assert len(middle) == 1 and middle[0].outcome.slice_index == 2 and middle[0].slice_count == 4
