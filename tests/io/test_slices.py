"""mri_core.io.slices: files, folders, zips and uploads -> the slices to read; plain images through
the one raster decoder, scanner files as volumes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mri_core.io.errors import NotASlice, UnreadableImage, UnsupportedFormat
from mri_core.io.raster import decode_raster
from mri_core.io.slices import Slice, decode_image, read_file, read_input


def test_every_kaggle_image_decodes_to_a_grey_unit_range_slice(kaggle_dir: Path):
    paths = sorted(p for p in kaggle_dir.glob("*/*") if p.is_file())
    assert len(paths) > 200
    for path in paths:
        [result] = read_file(path)
        with Image.open(path) as image:
            width, height = image.size
        assert isinstance(result, Slice) and result.source == path.name
        assert result.pixels.dtype == np.float32 and result.pixels.shape == (height, width)
        assert 0.0 <= result.pixels.min() and result.pixels.max() <= 1.0
        assert result.pixels.max() > 0.2, f"{path.name} decoded nearly black"


def test_format_is_sniffed_from_bytes_not_the_extension(kaggle_dir: Path):
    [result] = read_file(kaggle_dir / "no" / "No15.jpg")  # a PNG published with a .jpg name
    assert result.pixels.shape == (400, 393)


def test_every_way_in_gives_the_one_raster_decoders_slice(kaggle_dir: Path, figshare_dir: Path):
    """A file, an upload and decode_image all read a plain image with raster.decode_raster."""
    for path in (kaggle_dir / "yes" / "Y1.jpg", kaggle_dir / "yes" / "Y92.png", kaggle_dir / "no" / "No15.jpg",
                 sorted((figshare_dir / "glioma").iterdir())[0]):
        data = path.read_bytes()
        expected = decode_raster(data, path.name)
        for result in (read_file(path)[0], read_input(path)[0], read_input((path.name, data))[0],
                       decode_image(data, f"uploads/{path.name}")):
            assert (result.source, result.warnings, result.index, result.count) == (path.name, expected.warnings, 0, 1)
            np.testing.assert_array_equal(result.pixels, expected.pixels)


def test_a_plain_image_has_one_slice_whatever_the_way_in(tumor_image_path: Path):
    data = tumor_image_path.read_bytes()
    assert [s.index for s in read_input((tumor_image_path.name, data), "all")] == [0]
    for item in (tumor_image_path, (tumor_image_path.name, data)):
        with pytest.raises(NotASlice, match="there is no axial slice 1; choose 0 to 0"):
            read_input(item, 1)


def test_missing_file_names_the_path(tmp_path: Path):
    path = tmp_path / "nowhere" / "scan.png"
    with pytest.raises(UnreadableImage, match="not found") as caught:
        read_file(path)
    assert str(path) in str(caught.value)


# --- scanner files: DICOM, NIfTI, zips and folders of them -------------------------------

def test_scanner_formats_are_sniffed_from_the_bytes(tumor_image_path, tmp_path):
    from scans import dicom_bytes, grey_uint8, nifti_bytes

    from mri_core.io.slices import sniff_format

    source = grey_uint8(tumor_image_path)
    assert sniff_format(dicom_bytes(source)) == "DICOM"
    assert sniff_format(dicom_bytes(source, preamble=False)) == "DICOM"
    assert sniff_format(nifti_bytes(source[None])) == "NIFTI"
    assert sniff_format(nifti_bytes(source[None], gz=True)) == "NIFTI"


def test_two_series_in_one_zip_become_two_volumes_read_in_memory(kaggle_dir):
    import zipfile

    from scans import dicom_bytes, stack_of

    from mri_core.io.slices import read_volumes, volume_slices

    stack = stack_of(sorted((kaggle_dir / "yes").iterdir())[:5], size=64)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(3):
            archive.writestr(f"export/T1/IM{i}", dicom_bytes(stack[i], series_uid="1.2.1", position=i))
        for i in range(2):
            archive.writestr(f"export/T2/IM{i}", dicom_bytes(stack[3 + i], series_uid="1.2.2", position=i))
        archive.writestr("export/DICOMDIR", b"not needed")  # unknown bytes among a series: skipped
        archive.writestr("__MACOSX/export/._IM0", b"resource fork")
    volumes = sorted(read_volumes([("study.zip", buffer.getvalue())]), key=lambda v: v.count)
    assert [v.count for v in volumes] == [2, 3]
    assert volumes[1].source == "study.zip/export/T1 (3 files)"
    middle = volume_slices(volumes[1])[0]
    assert (middle.index, middle.count) == (1, 3)
    np.testing.assert_allclose(middle.pixels * 255.0, stack[1], atol=0.01)


def test_dicom_source_finds_the_files_behind_a_volume_of_the_uploads(kaggle_dir):
    """The uploads as the page has them (a zip of a series beside a NIfTI): the series' parsed files, in slice
    order, for a DICOM Segmentation; the NIfTI volume has none."""
    import zipfile

    from scans import dicom_bytes, nifti_bytes, stack_of

    from mri_core.io.errors import ExportRefused
    from mri_core.io.slices import dicom_source, read_volumes

    stack = stack_of(sorted((kaggle_dir / "yes").iterdir())[:3], size=64)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in (2, 0, 1):
            archive.writestr(f"export/T1/IM{i}", dicom_bytes(stack[i], position=3.0 * i))
    files = [("study.zip", buffer.getvalue()), ("head.nii", nifti_bytes(stack))]
    nifti_volume, dicom_volume = read_volumes(files)
    source = dicom_source(files, dicom_volume)
    assert source.source == dicom_volume.source == "study.zip/export/T1 (3 files)"
    assert [float(ds.ImagePositionPatient[2]) for ds in source.datasets] == [0.0, 3.0, 6.0]
    with pytest.raises(ExportRefused, match="not one of the DICOM series"):
        dicom_source(files, nifti_volume)
    with pytest.raises(ExportRefused, match="not a DICOM upload"):
        dicom_source(files[1:], nifti_volume)


def test_dicom_folder_reads_as_one_series_and_slices_can_be_chosen(kaggle_dir, tmp_path):
    from scans import dicom_bytes, stack_of

    stack = stack_of(sorted((kaggle_dir / "no").iterdir())[:4], size=64)
    folder = tmp_path / "series"
    folder.mkdir()
    for i, s in enumerate(stack):
        (folder / f"IM{i:04d}").write_bytes(dicom_bytes(s, instance=4 - i))  # instance order is reversed
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    slices = read_file(folder, "all")
    assert [s.index for s in slices] == [0, 1, 2, 3] and all(s.count == 4 for s in slices)
    np.testing.assert_allclose(slices[0].pixels * 255.0, stack[3], atol=0.01)
    [chosen] = read_file(folder, 1)
    np.testing.assert_allclose(chosen.pixels * 255.0, stack[2], atol=0.01)


def test_a_volume_is_not_one_slice_for_decode_image(kaggle_dir):
    from scans import nifti_bytes, stack_of

    with pytest.raises(NotASlice, match=r"vol\.nii: holds 1 series with 3 slices.*--slice"):
        decode_image(nifti_bytes(stack_of(sorted((kaggle_dir / "no").iterdir())[:3], size=32)), "vol.nii")


def test_several_files_of_no_scan_format_are_refused_with_the_formats():
    from mri_core.io.slices import read_volumes

    with pytest.raises(UnsupportedFormat, match="notes.txt, more.txt: holds no scan we read.*DICOM.*NIfTI"):
        read_volumes([("notes.txt", b"hello " * 10), ("more.txt", b"there " * 10)])


def test_read_uploads_gives_each_scan_with_the_uploads_it_came_from_in_upload_order(kaggle_dir):
    """Diagnose's list of uploads: a plain image, a DICOM series whose files came in two uploads, a
    NIfTI volume, a zip with a series of its own and a note: one scan each (the note skipped), ordered
    by their first upload, each naming the uploads it was read from."""
    import zipfile

    from scans import dicom_bytes, nifti_bytes, stack_of

    from mri_core.io.slices import DICOM, IMAGE, NIFTI, read_uploads, read_volumes

    paths = sorted((kaggle_dir / "yes").iterdir())[:6]
    stack = stack_of(paths, size=64)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(2):
            archive.writestr(f"export/IM{i}", dicom_bytes(stack[4 + i], series_uid="1.2.9", position=i))
    files = [("IM1", dicom_bytes(stack[1], series_uid="1.2.3", position=1.0)),  # 0: the series' second slice
             (paths[0].name, paths[0].read_bytes()),  # 1: a plain image
             ("notes.txt", b"what the technician wrote"),  # 2: no scan: skipped among several
             ("IM0", dicom_bytes(stack[0], series_uid="1.2.3", position=0.0)),  # 3: the series' first slice
             ("head.nii", nifti_bytes(stack[:3])),  # 4
             ("study.zip", buffer.getvalue())]  # 5: its series does not join the loose files
    scans = read_uploads(files)
    assert [(s.kind, s.uploads, s.zip_name, s.volume.count) for s in scans] == [
        (DICOM, (0, 3), None, 2), (IMAGE, (1,), None, 1), (NIFTI, (4,), None, 3), (DICOM, (5,), "study.zip", 2)]
    np.testing.assert_allclose(scans[0].volume.voxels[0] * 255.0, stack[0], atol=0.01)  # slice order, not upload order
    assert scans[1].volume.source == paths[0].name
    assert sorted(v.count for v in read_volumes(files)) == sorted(s.volume.count for s in scans)

    [only] = read_uploads(files[1:2])
    assert (only.kind, only.uploads) == (IMAGE, (0,))
    with pytest.raises(UnsupportedFormat, match="notes.txt"):
        read_uploads(files[2:3])
