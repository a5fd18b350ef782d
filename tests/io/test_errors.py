"""Errors: one base class, each subclass also the built-in a caller would catch."""

import pytest

from mri_core.io import errors


@pytest.mark.parametrize("error, builtin", [
    (errors.UnreadableImage, ValueError), (errors.UnsupportedFormat, ValueError),
    (errors.NotASlice, ValueError), (errors.ImageTooLarge, ValueError),
    (errors.DecoderMissing, RuntimeError), (errors.DatasetInvalid, ValueError),
    (errors.ModelInvalid, ValueError), (errors.ModelNotFound, LookupError),
    (errors.SettingsInvalid, ValueError), (errors.NoImageData, ValueError),
    (errors.ExportRefused, ValueError),
])
def test_user_errors_are_mri_errors_and_their_builtin(error, builtin):
    exc = error("what was wrong; what to do")
    assert isinstance(exc, errors.MriError) and isinstance(exc, builtin)
    assert str(exc) == "what was wrong; what to do"


def test_existing_except_clauses_keep_working():
    with pytest.raises(ValueError):
        raise errors.UnreadableImage("scan.jpg is truncated; export it again")
