"""NIfTI-1/2 bytes (`.nii`, `.nii.gz`) -> a `Volume` of axial slices, read in memory with nibabel.

The volume is reoriented to the closest canonical orientation (RAS+) and laid out as axial
slices in radiological view, so they look like the training images whatever the storage
order. Where the header cannot say how the volume lies in the body (qform and sform codes
both 0, or an affine that is not finite or not invertible) the volume still reads but carries
the `orientation_unknown` warning, since its slices may be sideways or mirrored. A 4-D file
gives its first volume and warns; NaN voxels become 0 and warn; a volume of nothing but NaN
is refused. gzip data is decompressed with a size cap (no bombs). Never writes to disk, never
imports streamlit.
"""

from __future__ import annotations

import gzip
import io as _io
import zlib

import numpy as np

from mri_core.io.errors import ImageTooLarge, NotASlice, UnreadableImage, UnsupportedFormat
from mri_core.io.volume import NIFTI_ZOOMS, ORIENTATION_UNKNOWN, Volume, make_volume, window_volume

GZIP_MAGIC = b"\x1f\x8b"
NIFTI1_HEADER_BYTES, NIFTI2_HEADER_BYTES = 348, 540
# 128 M voxels = 512 MB as float32: far above a 512x512x300 brain scan (79 M).
MAX_VOXELS = 128_000_000
MAX_UNCOMPRESSED_BYTES = 2 * 1024**3


def nifti_magic(data: bytes) -> bytes | None:
    """b"n+1"/b"n+2" (one file) or b"ni1"/b"ni2" (header of a .hdr/.img pair) when the bytes,
    gzip or not, start with a NIfTI header; else None."""
    header = _peek_gunzipped(data, NIFTI2_HEADER_BYTES) if data.startswith(GZIP_MAGIC) else data[:NIFTI2_HEADER_BYTES]
    if len(header) < NIFTI1_HEADER_BYTES:
        return None
    for order in ("<", ">"):
        size = int(np.frombuffer(header[:4], dtype=f"{order}i4")[0])
        if size == NIFTI1_HEADER_BYTES and header[344:348] in (b"n+1\x00", b"ni1\x00"):
            return header[344:347]
        if size == NIFTI2_HEADER_BYTES and header[4:8] in (b"n+2\x00", b"ni2\x00"):
            return header[4:7]
    return None


def _peek_gunzipped(data: bytes, n_bytes: int) -> bytes:
    try:
        return zlib.decompressobj(wbits=31).decompress(data, n_bytes)
    except zlib.error:
        return b""


def read_nifti(data: bytes, source: str) -> Volume:
    """NIfTI bytes -> Volume (axial, RAS+ canonical, windowed to [0, 1])."""
    import nibabel as nib

    magic = nifti_magic(data)
    if magic is None:
        raise UnsupportedFormat(f"{source}: not a NIfTI file (.nii / .nii.gz); convert the volume to "
                                f"a single .nii or .nii.gz file.")
    if magic in (b"ni1", b"ni2"):
        raise UnsupportedFormat(f"{source}: this NIfTI header keeps its voxels in a separate .img "
                                f"file; convert the pair to a single .nii file.")
    if data.startswith(GZIP_MAGIC):
        data = _gunzip(data, source)
    image_class = nib.Nifti1Image if magic == b"n+1" else nib.Nifti2Image
    try:
        image = image_class.from_bytes(data)
        shape = image.header.get_data_shape()
    except Exception as exc:  # nibabel raises HeaderDataError, ValueError, EOFError ...
        raise UnreadableImage(f"{source}: the NIfTI header is damaged ({type(exc).__name__}); "
                              f"export the volume again.") from None
    stored, notes = _first_volume(image, shape, source)
    orientation, orientation_notes = _orientation(image, nib.orientations)
    zooms = (tuple(float(s) for s in image.header.get_zooms()[:3]) + (1.0, 1.0))[:3]  # a 2-D file has two
    ras, spacing = stored, zooms
    if orientation is not None:  # the closest canonical (RAS+) order, its voxel sides following the axes
        ras = nib.orientations.apply_orientation(stored, orientation)
        spacing = tuple(zooms[int(np.flatnonzero(orientation[:, 0] == axis)[0])] for axis in range(3))
    axial = _to_axial_stack(ras)  # (Z, H, W)
    windowed, window_notes = window_volume(axial, source, _display_range(image))
    return make_volume(windowed, source, spacing=(spacing[2], spacing[1], spacing[0]), thickness_source=NIFTI_ZOOMS,
                       warnings=orientation_notes + notes + window_notes)


def _orientation(image, orientations) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """(nibabel orientation from storage axes to the closest RAS+ axes, or None to keep the
    storage order; warnings). `orientation_unknown` where the header does not place the volume
    in the body: no qform and no sform (nibabel then assumes Analyze's default, which may be
    wrong), or an affine that is not finite or drops an axis."""
    header = image.header
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        return None, (ORIENTATION_UNKNOWN,)
    orientation = orientations.io_orientation(affine)
    if np.isnan(orientation).any():
        return None, (ORIENTATION_UNKNOWN,)
    if int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
        return orientation, (ORIENTATION_UNKNOWN,)
    return orientation, ()


def _gunzip(data: bytes, source: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=_io.BytesIO(data)) as stream:
            out = stream.read(MAX_UNCOMPRESSED_BYTES + 1)
    except (OSError, EOFError, zlib.error):
        raise UnreadableImage(f"{source}: the gzip data is damaged or cut short; download the .nii.gz again.") from None
    if len(out) > MAX_UNCOMPRESSED_BYTES:
        raise ImageTooLarge(f"{source}: unpacks to more than {MAX_UNCOMPRESSED_BYTES // 1024**3} GiB; "
                            f"crop or downsample the volume first.")
    return out


def _first_volume(image, shape: tuple[int, ...], source: str):
    """Image -> (its (first) volume's voxels in storage order as an (X, Y, Z) array, warnings)."""
    dims = tuple(int(d) for d in shape)
    while len(dims) > 3 and dims[-1] == 1:  # trailing singleton dimensions carry nothing
        dims = dims[:-1]
    if len(dims) > 4 or (len(dims) == 4 and any(d == 1 for d in dims[:3])):
        raise NotASlice(f"{source}: a {len(shape)}-D NIfTI of shape {tuple(shape)} is not an image volume "
                        f"(it looks like a connectivity matrix or surface data); upload an anatomical scan.")
    if any(d < 1 for d in dims):
        raise NotASlice(f"{source}: the NIfTI header declares shape {tuple(shape)}, with a dimension of size 0, "
                        f"so it holds no voxels; export the volume again.")
    n_spatial = int(np.prod(dims[:3], dtype=np.int64))
    if n_spatial > MAX_VOXELS:
        raise ImageTooLarge(f"{source}: the volume declares {n_spatial:,} voxels, more than the "
                            f"{MAX_VOXELS:,} we read; crop or downsample it first.")
    notes: tuple[str, ...] = ()
    dtype = image.header.get_data_dtype()
    if dtype.fields is not None or np.issubdtype(dtype, np.complexfloating):
        raise UnsupportedFormat(f"{source}: stores RGB or complex voxels; export a grey-scale (magnitude) volume.")
    index: tuple = ()
    if len(dims) == 4:
        notes = ("4d_first_volume",)
        index = (slice(None),) * 3 + (0,) * (image.ndim - 3)
    try:
        voxels = np.asarray(image.dataobj[index] if index else image.dataobj, dtype=np.float32)  # applies scl_slope
    except (ValueError, EOFError, OSError) as exc:
        raise UnreadableImage(f"{source}: the voxel data is cut short or damaged ({type(exc).__name__}); "
                              f"export the volume again.") from None
    voxels = voxels.reshape((dims + (1, 1))[:3])
    return voxels, notes


def _to_axial_stack(ras: np.ndarray) -> np.ndarray:
    """(X, Y, Z) RAS+ voxels -> (Z, H=Y, W=X) with anterior at the top and patient right on the left."""
    return np.ascontiguousarray(np.transpose(ras, (2, 1, 0))[:, ::-1, ::-1])


def _display_range(image) -> tuple[float, float] | None:
    """The stored display window (cal_min/cal_max), or the full range of 8-bit data, or None."""
    header = image.header
    cal_min, cal_max = float(header["cal_min"]), float(header["cal_max"])
    if np.isfinite([cal_min, cal_max]).all() and cal_max > cal_min:
        return cal_min, cal_max
    slope, inter = header.get_slope_inter()
    if header.get_data_dtype() == np.uint8 and slope in (None, 1.0) and inter in (None, 0.0):
        return 0.0, 255.0  # already a display image: keep its grey levels
    return None
