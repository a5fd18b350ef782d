"""Errors a user can cause, each with a message that says what to do.

Every exception `mri_core` raises on purpose derives from `MriError`; pages show
`str(exc)` and keep running, the CLI prints it. Each subclass also derives from the
built-in a caller would expect (ValueError, LookupError ...), so existing `except`
clauses keep working. Never imports streamlit.
"""

from __future__ import annotations


class MriError(Exception):
    """Base class: a problem the user can fix; the message says how."""


class UnreadableImage(MriError, ValueError):
    """The file is empty, truncated or corrupt."""


class UnsupportedFormat(MriError, ValueError):
    """The file is not an image format we read (or not an image at all)."""


class NotASlice(MriError, ValueError):
    """The decoded data is not a 2-D image slice (a volume, a 1-pixel line ...)."""


class ImageTooLarge(MriError, ValueError):
    """The image declares more pixels than we are willing to decode."""


class NoImageData(MriError, ValueError):
    """The file is a valid medical file that holds no image (a report, RT plan, waveform, DICOMDIR)."""


class DecoderMissing(MriError, RuntimeError):
    """A compressed file needs a decoder package that is not installed."""


class DatasetInvalid(MriError, ValueError):
    """A training/evaluation data folder cannot be used as it is."""


class ModelInvalid(MriError, ValueError):
    """A model package is damaged, incomplete or unsafe to load."""


class ModelNotFound(MriError, LookupError):
    """No model package with the given name or path exists."""


class SettingsInvalid(MriError, ValueError):
    """A training or prediction setting is out of range."""


class ExportRefused(MriError, ValueError):
    """The scan cannot be exported in the form asked for (e.g. a DICOM Segmentation of a NIfTI volume)."""


class TrainingCancelled(MriError):
    """Training was stopped on request; nothing was saved."""
