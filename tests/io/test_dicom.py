"""DICOM reading: real files written with pydicom from shared slices, and pydicom's own sample files."""

from __future__ import annotations

import io
import random
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom import uid
from pydicom.pixels import apply_color_lut
from scans import SECRET_TAGS, dicom_bytes, grey_uint8, stack_of

from mri_core.io import dicom, slices
from mri_core.io.errors import DecoderMissing, ExportRefused, MriError, NoImageData, NotASlice, UnreadableImage
from mri_core.io.volume import MIN_SIDE, Volume

PYDICOM_SAMPLES = Path(pydicom.data.__file__).parent / "test_files"
REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"  # the README links its DICOM details there
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


def test_series_sources_are_read_dicoms_series_in_its_slice_order(kaggle_dir):
    """The parsed files behind each volume: same series order, and slice i is the file (or frame) read as slice i."""
    stack = stack_of(sorted((kaggle_dir / "yes").iterdir())[:7], size=64)
    stored = (2.0, -6.0, 9.0, -1.0)  # a multi-frame file whose per-frame positions are out of order
    frames = pydicom.dcmread(io.BytesIO(dicom_bytes(stack[3:], position=0.0)))
    frames.PerFrameFunctionalGroupsSequence = [_plane_position(z) for z in stored]
    buffer = io.BytesIO()
    frames.save_as(buffer, enforce_file_format=True)
    files = random.Random(5).sample([(f"IM{i}", dicom_bytes(s, position=4.0 * i)) for i, s in enumerate(stack[:3])], 3)
    files.append(("enhanced.dcm", buffer.getvalue()))
    volumes, sources = dicom.read_dicom(files), dicom.series_sources(files)
    assert [(s.source, s.count) for s in sources] == [(v.source, v.count) for v in volumes] == [
        ("enhanced.dcm", 4), ("IM2 (3 files)", 3)]
    assert sources[0].frames == tuple(stored.index(z) + 1 for z in sorted(stored))
    assert [float(ds.ImagePositionPatient[2]) for ds in sources[1].datasets] == [0.0, 4.0, 8.0]
    np.testing.assert_allclose(volumes[0].voxels * 255.0, stack[3:][[f - 1 for f in sources[0].frames]], atol=0.01)
    np.testing.assert_allclose(volumes[1].voxels * 255.0, [ds.pixel_array for ds in sources[1].datasets], atol=0.01)
    assert "PID" not in repr(sources[1])  # the datasets (and every tag in them) stay out of its repr


def test_volume_source_tells_alike_series_apart_by_their_pixels(kaggle_dir):
    """Two series in one folder, same size, count and descriptions: only their pixels differ."""
    stack = stack_of(sorted((kaggle_dir / "yes").iterdir())[:4], size=64)
    series_uids = {"a": "1.2.3.1", "b": "1.2.3.2"}
    files = [(f"exam/{series}{i}", dicom_bytes(stack[2 * (series == "b") + i], series_uid=series_uids[series],
                                               instance=i + 1, **SECRET_TAGS)) for series in "ab" for i in range(2)]
    volumes = dicom.read_dicom(files)
    assert volumes[0].source == volumes[1].source == "exam (2 files)"
    for volume, series_uid in zip(volumes, series_uids.values()):
        source = dicom.volume_source(files, volume)
        assert {ds.SeriesInstanceUID for ds in source.datasets} == {series_uid}
    [other] = dicom.read_dicom([("exam/x", dicom_bytes(stack[0][::-1].copy()))])
    with pytest.raises(ExportRefused, match="not one of the DICOM series") as refused:
        dicom.volume_source(files, other)
    assert not any(value in str(refused.value) for value in SECRET_TAGS.values())


def _plane_position(z: float) -> pydicom.Dataset:
    group, position = pydicom.Dataset(), pydicom.Dataset()
    position.ImagePositionPatient = [0, 0, z]
    group.PlanePositionSequence = [position]
    return group


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
    """Every file bundled in pydicom's data/test_files (not get_testdata_files, which would download)."""
    skip = (".txt", ".json", ".dump", ".icc", ".md", ".gz")
    return sorted(p for p in PYDICOM_SAMPLES.rglob("*") if p.is_file() and not p.name.endswith(skip)
                  and "README" not in p.name)


@dataclass(frozen=True)
class Decoded:
    """pydicom's own decoding of a file: float32 (F, H, W) values and the photometric interpretation."""

    values: np.ndarray
    photometric: str

    @property
    def grey(self) -> bool:
        return self.photometric.startswith("MONOCHROME")


def pydicom_values(path: Path) -> Decoded | None:
    """pydicom's own decoding of a file, read plainly (no force): its pixel_array after
    RescaleSlope/Intercept, colour as ITU-R 601-2 luma of its RGB; None where pydicom gives no image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            array = ds.pixel_array
    except Exception:  # noqa: BLE001 - whatever pydicom raises, it gives no image: the reader must refuse it
        return None
    photometric = ds.PhotometricInterpretation
    if photometric == "PALETTE COLOR":
        array = apply_color_lut(array, ds)
    if array.shape[-1] == 3 and (int(ds.SamplesPerPixel) == 3 or photometric == "PALETTE COLOR"):
        values = array.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    else:
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        values = (array.astype(np.float64) * slope + intercept).astype(np.float32)
    return Decoded(values.reshape(-1, int(ds.Rows), int(ds.Columns)), str(photometric))


def assert_read_pixel_for_pixel(name: str, data: bytes, expected: Decoded) -> Volume:
    """The file reads (through format sniffing) to one volume whose values before the display window
    are pydicom's pixel for pixel, and whose shown voxels are the window of exactly those values."""
    [volume] = slices.read_volumes([(name, data)])
    [values] = dicom.modality_values([(name, data)])
    np.testing.assert_array_equal(values, expected.values, err_msg=name)
    assert volume.voxels.shape == values.shape, name
    # The display window is one monotone map of these values (falling for MONOCHROME1):
    order = np.argsort(values, axis=None, kind="stable")
    shown, stored = volume.voxels.reshape(-1)[order], values.reshape(-1)[order]
    steps = np.diff(shown) * (-1 if expected.photometric == "MONOCHROME1" else 1)
    assert (steps >= 0).all() and (steps[np.diff(stored) == 0] == 0).all(), name
    return volume


# pydicom test files with an image that pydicom itself cannot decode, and why; the reader refuses
# them with UnreadableImage. Every other file with an image must be read (or, under MIN_SIDE
# pixels a side, refused as NotASlice), and files without pixel data are NoImageData.
PYDICOM_FAILS_TOO = {
    "JPEG-lossy.dcm": "12-bit JPEG Extended stream libjpeg rejects (a misplaced marker) and Pillow cannot do",
    "JPEG2000-embedded-sequence-delimiter.dcm": "a sequence delimiter inside the JPEG 2000 fragments",
    "MR_truncated.dcm": "pixel data cut short",
    "badVR.dcm": "a non-numeric value in a numeric element",
    "meta_missing_tsyntax.dcm": "no transfer syntax and no image elements besides Pixel Data",
    "nested_priv_SQ.dcm": "Pixel Data without Rows, Columns or Bits Allocated",
}
# Bare datasets without preamble or meta whose first element is neither group 0002 nor 0008
# little endian: not sniffed as DICOM; they hold no image either.
NOT_SNIFFED = {"no_meta.dcm", "ExplVR_BigEndNoMeta.dcm"}
PIXEL_CHECK_MIN_SIDE = 48


@pytest.fixture(scope="module")
def sample_outcomes() -> dict[str, tuple[str, int, bool]]:
    """name -> (outcome, smallest side of pydicom's image or 0, grey): every bundled pydicom file read
    through `slices.read_volumes`, each one read compared with pydicom pixel for pixel."""
    outcomes = {}
    for path in sample_files():
        name, data = str(path.relative_to(PYDICOM_SAMPLES)), path.read_bytes()
        expected = pydicom_values(path)
        side = min(expected.values.shape[1:]) if expected is not None else 0
        grey = expected is not None and expected.grey
        try:
            if expected is None:
                slices.read_volumes([(name, data)])
                raise AssertionError(f"{name}: read, though pydicom decodes no image from it")
            assert_read_pixel_for_pixel(name, data, expected)
            outcomes[name] = ("read", side, grey)
        except MriError as exc:  # anything else is a traceback or a pixel mismatch: the test fails
            assert Path(name).name in str(exc) and len(str(exc)) > len(Path(name).name) + 30, str(exc)
            outcomes[name] = (type(exc).__name__, side, grey)
    return outcomes


def test_every_pydicom_sample_it_decodes_is_read_pixel_for_pixel(sample_outcomes, capfd):
    assert len(sample_outcomes) > 100, "pydicom ships its sample files"
    for name, (outcome, side, _) in sample_outcomes.items():
        if side >= MIN_SIDE:
            assert outcome == "read", f"{name}: pydicom decodes it, we say {outcome}"
        elif side:
            assert outcome == "NotASlice", f"{name}: {side} px is below the {MIN_SIDE} px of a slice"
        elif Path(name).name in PYDICOM_FAILS_TOO:
            assert outcome == "UnreadableImage", name
        elif name in NOT_SNIFFED:
            assert outcome == "UnsupportedFormat", name
        else:
            assert outcome == "NoImageData", f"{name}: pydicom finds no image, we say {outcome}"
    big_grey = [n for n, (o, side, grey) in sample_outcomes.items() if grey and side >= PIXEL_CHECK_MIN_SIDE]
    assert len(big_grey) >= 17 and "MR_small.dcm" in big_grey and "CT_small.dcm" in big_grey
    assert capfd.readouterr().err == ""  # nothing printed behind the reader's back


def sample_counts(outcomes) -> dict[str, int]:
    """The numbers the issue's closing note quotes (see test_sample_counts)."""
    counts: dict[str, int] = defaultdict(int)
    for outcome, side, grey in outcomes.values():
        counts[outcome] += 1
        if outcome == "read" and side >= PIXEL_CHECK_MIN_SIDE:
            counts["checked grey >= 48 px" if grey else "checked colour >= 48 px"] += 1
    return dict(counts)


def test_sample_counts(sample_outcomes):
    """What pydicom 3.0's 167 bundled files give today: 78 read, every one compared with pydicom pixel
    for pixel (17 grey and 30 colour images of at least 48 px a side, 31 grey 16x16 ones); refused: 70
    without pixel data (DICOMDIRs, reports, RT plans, stripped images), 11 under 16 px a side (RT dose
    grids, 3x3 test cards, two 10 px wide JPEG-LS strips), 6 pydicom cannot decode either, and 2 bare
    datasets without an image that are not sniffed as DICOM."""
    assert sample_counts(sample_outcomes) == {
        "read": 78, "checked grey >= 48 px": 17, "checked colour >= 48 px": 30,
        "NoImageData": 70, "NotASlice": 11, "UnreadableImage": 6, "UnsupportedFormat": 2}


# One real file per transfer syntax docs/reference.md claims, and what it must equal besides pydicom:
# the MR_small.dcm family holds one 64x64 MR slice in many syntaxes (lossless: equal to the
# uncompressed file), the SC_rgb family one colour test card (equal to its RLE, lossless, copy).
SYNTAX_FILES = {
    uid.ImplicitVRLittleEndian: ("MR_small_implicit.dcm", "MR_small.dcm", 0),
    uid.ExplicitVRLittleEndian: ("CT_small.dcm", None, None),
    uid.ExplicitVRBigEndian: ("MR_small_bigendian.dcm", "MR_small.dcm", 0),
    uid.DeflatedExplicitVRLittleEndian: ("image_dfl.dcm", None, None),
    uid.RLELossless: ("MR_small_RLE.dcm", "MR_small.dcm", 0),
    uid.JPEGBaseline8Bit: ("SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", 2),
    uid.JPEGExtended12Bit: ("JPGExtended.dcm", None, None),
    uid.JPEGLosslessSV1: ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm", 0),
    uid.JPEGLSLossless: ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm", 0),
    uid.JPEGLSNearLossless: ("SC_rgb_jls_lossy_line.dcm", "SC_rgb_rle.dcm", 2),
    uid.JPEG2000Lossless: ("MR_small_jp2klossless.dcm", "MR_small.dcm", 0),
    uid.JPEG2000: ("693_J2KI.dcm", None, None),
}


@pytest.mark.parametrize("syntax", list(SYNTAX_FILES), ids=lambda s: s.name)
def test_each_claimed_transfer_syntax_reads_a_real_file_pixel_for_pixel(syntax):
    name, original, tolerance = SYNTAX_FILES[syntax]
    path = PYDICOM_SAMPLES / name
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    assert_read_pixel_for_pixel(name, path.read_bytes(), pydicom_values(path))
    if original is not None:  # the same image stored another way: equal, or within the lossy codec's error
        [values] = dicom.modality_values([(name, path.read_bytes())])
        [reference] = dicom.modality_values([(original, (PYDICOM_SAMPLES / original).read_bytes())])
        assert np.abs(values - reference).max() <= tolerance


def test_grey_jpeg_ls_near_lossless_decodes_pixel_for_pixel_though_too_small_to_read():
    """pydicom's only grey near-lossless files are 10 px wide: decoded right, refused as no slice."""
    for name in ("JPEGLSNearLossless_08.dcm", "JPEGLSNearLossless_16.dcm"):
        path = PYDICOM_SAMPLES / name
        [values] = dicom.modality_values([(name, path.read_bytes())])
        np.testing.assert_array_equal(values, pydicom_values(path).values)
        with pytest.raises(NotASlice, match=name):
            dicom.read_dicom([(name, path.read_bytes())])


def test_no_htj2k_file_or_encoder_is_installed_so_the_readme_claims_none():
    """HTJ2K would decode (pylibjpeg-openjpeg), but no real file is at hand to prove it: not claimed."""
    from pydicom.pixels import get_encoder

    htj2k = (uid.HTJ2K, uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metas = [pydicom.dcmread(p, stop_before_pixels=True, force=True).get("file_meta") for p in sample_files()]
    assert not any(str(meta.get("TransferSyntaxUID", "")) in htj2k for meta in metas if meta is not None)
    for syntax in htj2k:
        with pytest.raises(NotImplementedError):
            get_encoder(syntax)
    formats_lines = REFERENCE.read_text().split("## DICOM", 1)[1].split("\n## ", 1)[0]
    assert "HTJ2K" not in formats_lines and "High-Throughput" not in formats_lines


def test_read_dicom_series_names_the_files_of_each_series(kaggle_dir):
    """Two series whose files come interleaved: each volume with the places of its own files."""
    from scans import dicom_bytes, stack_of

    from mri_core.io.dicom import read_dicom, read_dicom_series

    stack = stack_of(sorted((kaggle_dir / "no").iterdir())[:5], size=64)
    files = [(f"IM{i}", dicom_bytes(stack[i], series_uid="1.2.7" if i % 2 else "1.2.8", position=float(-i)))
             for i in range(5)]
    series = read_dicom_series(files)
    assert [places for _, places in series] == [(0, 2, 4), (1, 3)]
    assert [volume.count for volume, _ in series] == [3, 2]
    np.testing.assert_array_equal(series[0][0].voxels, read_dicom(files)[0].voxels)
