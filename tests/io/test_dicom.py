"""DICOM reading: real files written with pydicom from shared slices, and pydicom's own sample files."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom.data
import pytest
from pydicom import uid
from scans import SECRET_TAGS, dicom_bytes, grey_uint8, stack_of

from mri_core.io import dicom
from mri_core.io.errors import DecoderMissing, MriError, NoImageData, UnreadableImage

PYDICOM_SAMPLES = Path(pydicom.data.__file__).parent / "test_files"
LOSSLESS = [uid.ExplicitVRLittleEndian, uid.RLELossless, uid.JPEG2000Lossless]


def only_volume(files):
    [volume] = dicom.read_dicom(files)
    return volume


@pytest.mark.parametrize("syntax", LOSSLESS + [uid.JPEGBaseline8Bit], ids=lambda s: s.name)
def test_slice_written_as_dicom_reads_back_as_the_source_pixels(syntax, tumor_image_path):
    source = grey_uint8(tumor_image_path)
    volume = only_volume([("Y1.dcm", dicom_bytes(source, syntax))])
    levels = volume.voxels[0] * 255.0
    assert volume.voxels.shape == (1, *source.shape)
    difference = np.abs(levels - source)
    if syntax in LOSSLESS:
        assert difference.max() < 0.01
    else:  # JPEG baseline is lossy: a few grey levels at edges, well under one on average
        assert difference.mean() < 1.0 and difference.max() <= 12


def test_file_without_preamble_reads_like_one_with_it(tumor_image_path):
    source = grey_uint8(tumor_image_path)
    bare = dicom_bytes(source, preamble=False)
    assert not bare.startswith(b"\x00" * 128) and dicom.looks_like_dicom(bare)
    np.testing.assert_array_equal(only_volume([("IM0001", bare)]).voxels,
                                  only_volume([("IM0001", dicom_bytes(source))]).voxels)


def test_shuffled_series_is_sorted_by_position_then_instance_number(kaggle_dir):
    stack = stack_of(sorted((kaggle_dir / "yes").iterdir())[:6], size=96)
    by_position = [(f"IM{i}", dicom_bytes(s, position=-40.0 + 5 * i)) for i, s in enumerate(stack)]
    by_number = [(f"IM{i}", dicom_bytes(s, instance=i + 1)) for i, s in enumerate(stack)]
    for files in (by_position, by_number):
        shuffled = random.Random(3).sample(files, len(files))
        volume = only_volume(shuffled)
        np.testing.assert_allclose(volume.voxels * 255.0, stack, atol=0.01)
    assert only_volume(random.Random(3).sample(by_position, 6)).spacing == (5.0, 0.5, 0.5)


def test_series_without_order_tags_keeps_upload_order_and_warns(kaggle_dir):
    stack = stack_of(sorted((kaggle_dir / "no").iterdir())[:2], size=64)
    volume = only_volume([(f"IM{i}", dicom_bytes(s)) for i, s in enumerate(stack)])
    assert volume.count == 2 and "slice_order_unknown" in volume.warnings


def test_two_series_are_kept_apart_with_their_descriptions(kaggle_dir):
    stack = stack_of(sorted((kaggle_dir / "yes").iterdir())[:4], size=64)
    files = [(f"a{i}", dicom_bytes(s, series_uid="1.2.3.1", position=i, SeriesDescription="T1 axial",
                                   StudyDescription="BRAIN")) for i, s in enumerate(stack[:3])]
    files.append(("b0", dicom_bytes(stack[3], series_uid="1.2.3.2", position=0, SeriesDescription="FLAIR")))
    volumes = sorted(dicom.read_dicom(files), key=lambda v: v.count)
    assert [v.count for v in volumes] == [1, 3]
    assert volumes[1].label == "BRAIN · T1 axial (3 slices)" and volumes[0].series_description == "FLAIR"


def test_multi_frame_file_gives_its_frames_as_slices(kaggle_dir):
    stack = stack_of(sorted((kaggle_dir / "yes").iterdir())[:3], size=64)
    volume = only_volume([("enhanced.dcm", dicom_bytes(stack))])
    np.testing.assert_allclose(volume.voxels * 255.0, stack, atol=0.01)


def test_monochrome1_is_inverted_so_bright_means_signal(tumor_image_path):
    source = grey_uint8(tumor_image_path)
    volume = only_volume([("cr.dcm", dicom_bytes(255 - source, photometric="MONOCHROME1"))])
    np.testing.assert_allclose(volume.voxels[0] * 255.0, source, atol=0.01)


def test_rescale_and_stored_window_are_applied(tumor_image_path):
    source = grey_uint8(tumor_image_path).astype(np.int16)
    stored = (source * 4).astype(np.int16)  # rescaled (slope 2, intercept -1000): 8 * source - 1000
    volume = only_volume([("ct.dcm", dicom_bytes(stored, RescaleSlope=2, RescaleIntercept=-1000,
                                                 WindowCenter=20, WindowWidth=2040))])
    # the window spans exactly the rescaled range, so the source's grey levels come back
    np.testing.assert_allclose(volume.voxels[0] * 255.0, source, atol=0.01)


def test_sixteen_bit_series_without_window_gets_a_robust_window(tumor_image_path):
    source = grey_uint8(tumor_image_path).astype(np.uint16) * 16  # a 12-bit scanner range
    source[0, 0] = 65535  # one hot pixel must not darken the rest
    volume = only_volume([("mr.dcm", dicom_bytes(source))])
    assert volume.voxels.max() == 1.0 and np.percentile(volume.voxels, 99) > 0.5


def test_file_without_pixel_data_says_what_it_is():
    report = (PYDICOM_SAMPLES / "test-SR.dcm").read_bytes()
    with pytest.raises(NoImageData, match=r"report\.dcm: .*SR.* holds no image"):
        dicom.read_dicom([("report.dcm", report)])


def test_dicomdir_is_refused_but_skipped_next_to_images(tumor_image_path):
    index = (PYDICOM_SAMPLES / "dicomdirtests" / "DICOMDIR").read_bytes()
    with pytest.raises(NoImageData, match="DICOMDIR"):
        dicom.read_dicom([("DICOMDIR", index)])
    image = dicom_bytes(grey_uint8(tumor_image_path))
    assert only_volume_skipping([("DICOMDIR", index), ("IM1", image)]).count == 1


def only_volume_skipping(files):
    [volume] = dicom.read_dicom(files, skip_non_images=True)
    return volume


def test_compressed_syntax_without_decoder_names_it_and_what_to_do(tumor_image_path):
    # No pydicom plugin (installed or installable) decodes MPEG-4 video: the decoder is absent.
    data = dicom_bytes(grey_uint8(tumor_image_path), uid.MPEG4HP41)
    with pytest.raises(DecoderMissing) as caught:
        dicom.read_dicom([("cine.dcm", data)])
    message = str(caught.value)
    assert "cine.dcm" in message and "MPEG-4 AVC/H.264" in message and "export" in message


def test_every_listed_decoder_package_is_installed_and_named():
    from pydicom.pixels import get_decoder

    for syntax, package in dicom.DECODER_PACKAGES.items():
        assert get_decoder(syntax).is_available, syntax.name  # requirements.txt pins them
        assert package.startswith("pylibjpeg and pylibjpeg-") and "pip install" in package


def test_truncated_file_is_unreadable_and_names_no_tag_value(tumor_image_path):
    data = dicom_bytes(grey_uint8(tumor_image_path), **SECRET_TAGS)
    with pytest.raises(UnreadableImage) as caught:
        dicom.read_dicom([("cut.dcm", data[: len(data) - 3000])])
    assert "cut.dcm" in str(caught.value)
    assert not any(value.split("^")[0] in str(caught.value) for value in SECRET_TAGS.values())


def test_only_study_and_series_descriptions_leave_the_reader(tumor_image_path):
    data = dicom_bytes(grey_uint8(tumor_image_path), StudyDescription="MR BRAIN", SeriesDescription="T2 axial",
                       **SECRET_TAGS)
    volume = only_volume([("scan.dcm", data)])
    shown = repr({k: v for k, v in vars(volume).items() if k != "voxels"}) + volume.label
    assert "MR BRAIN" in shown and "T2 axial" in shown
    assert not any(value.split("^")[0] in shown for value in SECRET_TAGS.values())


def sample_files():
    skip = (".txt", ".json", ".dump", ".icc", ".md", ".gz")
    return sorted(p for p in PYDICOM_SAMPLES.rglob("*") if p.is_file() and not p.name.endswith(skip)
                  and "README" not in p.name)


def test_pydicom_sample_files_are_read_or_refused_with_a_clear_error(capfd):
    samples = sample_files()
    assert len(samples) > 50, "pydicom ships its sample files"
    outcomes = {}
    for path in samples:
        name = str(path.relative_to(PYDICOM_SAMPLES))
        try:
            volumes = dicom.read_dicom([(name, path.read_bytes())])
            assert all(v.voxels.dtype == np.float32 and 0 <= v.voxels.min() <= v.voxels.max() <= 1 for v in volumes)
            outcomes[name] = "read"
        except MriError as exc:  # anything else is a traceback: the test fails
            assert name in str(exc) and len(str(exc)) > len(name) + 30
            outcomes[name] = type(exc).__name__
    for name in ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "JPGExtended.dcm", "image_dfl.dcm",
                 "examples_ybr_color.dcm", "SC_rgb_rle_2frame.dcm", "CT_small.dcm", "693_J2KI.dcm"):
        assert outcomes[name] == "read", name
    for name in ("rtplan.dcm", "test-SR.dcm", "waveform_ecg.dcm", "dicomdirtests/DICOMDIR"):
        assert outcomes[name] == "NoImageData", name
    assert outcomes["MR_truncated.dcm"] == "UnreadableImage"
    assert sum(v == "read" for v in outcomes.values()) >= 60
    assert capfd.readouterr().err == ""  # nothing printed behind the reader's back
