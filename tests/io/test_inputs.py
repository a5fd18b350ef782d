"""mri_core.io.inputs: prepare_files gives exactly the float32 model inputs a reading of the same
bytes gives (evaluation, the OOD fit and training see what the app sees), in order, in parallel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mri_core.io import preprocess
from mri_core.io.errors import UnreadableImage
from mri_core.io.inputs import prepare_files
from mri_core.io.slices import read_input

SIZE = 64


@pytest.fixture(scope="module")
def mixed_files(kaggle_dir: Path, typed_dir: Path, figshare_dir: Path, tmp_path_factory) -> list[Path]:
    """Real slices of every kind a data set holds: grey and RGB JPEG, grey and RGBA/palette PNG
    (some named .jpg), and the same slice as a DICOM file."""
    from scans import dicom_bytes, grey_uint8

    dicom = tmp_path_factory.mktemp("dicom") / "IM0001"
    dicom.write_bytes(dicom_bytes(grey_uint8(kaggle_dir / "yes" / "Y1.jpg")))
    return [kaggle_dir / "yes" / "Y1.jpg", kaggle_dir / "yes" / "Y92.png", kaggle_dir / "no" / "No15.jpg",
            kaggle_dir / "no" / "no 98.jpg", sorted((typed_dir / "glioma").iterdir())[0],
            sorted((figshare_dir / "meningioma").iterdir())[0], dicom]


def test_prepare_files_gives_exactly_the_model_inputs_of_a_reading(mixed_files):
    images = prepare_files(mixed_files, SIZE)
    assert images.shape == (len(mixed_files), SIZE, SIZE, 1) and images.dtype == np.float32
    uploads = [read_input((path.name, path.read_bytes()))[0].pixels for path in mixed_files]
    expected, _ = preprocess.prepare_batch(uploads, SIZE)  # what an upload of the same bytes feeds the model
    np.testing.assert_array_equal(images, expected)
    assert 0.0 <= images.min() and images.max() <= 1.0


def test_inspect_sees_each_full_size_slice_in_order(mixed_files):
    images, shapes = prepare_files(mixed_files, SIZE, inspect=lambda s: (s.source, s.pixels.shape))
    assert len(images) == len(shapes) == len(mixed_files)
    assert [source for source, _ in shapes] == [p.name for p in mixed_files]
    assert shapes[0][1] == (218, 180)  # Kaggle Y1.jpg at its own size, not the model's


def test_no_files_give_an_empty_batch_and_an_unreadable_one_is_named(tmp_path):
    assert prepare_files([], SIZE).shape == (0, SIZE, SIZE, 1)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    with pytest.raises(UnreadableImage, match="broken.jpg"):
        prepare_files([broken], SIZE)
