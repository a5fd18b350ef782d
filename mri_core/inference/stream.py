"""Streaming batch reading: any number of inputs -> one answer per slice, in input order.

Inputs (file paths, `(name, bytes)` pairs of uploads, or an `Upload` of several files read together,
such as the DICOM files of one series) flow through `tf.data`: a
counter numbers chunks of inputs, a parallel map pulls and decodes and prepares them
(`io.slices` reads each input's volumes as any upload is read; `series.placed_slices` picks their
slices), the rows (one per
slice) are re-batched to `batch_size` and prefetched, so the compiled Grad-CAM reads one batch while the next
is decoded. Only a few batches are in memory however many inputs come in. A bad input
becomes an `MriError` in its place and the rest still run. Each answer carries its slice's
`series.SeriesPlace` (its series, its place there, its thickness), so that a series' tumor volume
can be summed without keeping its masks. `present.batch` turns the answers into the Batch page's
table and downloads.
Never imports streamlit; TensorFlow is imported only when a stream starts.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np

from mri_core.io import slices as io

from mri_core.io import preprocess

from mri_core.inference.read import SHIPPED_CHECK, brain_check_of, read_prepared, slice_notes
from mri_core.inference.series import SeriesPlace, placed_slices
from mri_core.io.errors import MriError, SettingsInvalid, UnreadableImage
from mri_core.io.reading import CAM_METHODS, Reading

DEFAULT_BATCH_SIZE = 32
# Decoding threads: OpenCV and Pillow release the GIL, so two threads keep 2 cores busy
# while the model runs; more only contend for the same cores.
DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))
DECODE_CHUNK = 8

Input = "str | os.PathLike | tuple[str, bytes] | Upload"  # a file path, an upload's (name, bytes), or an Upload


@dataclass(frozen=True)
class Upload:
    """Uploaded files read as one input, as `io.slices.read_volumes` reads several uploads at once (the
    DICOM files of a series join into one volume), or the error that stopped them being opened (a damaged
    zip), which the stream answers in their place."""

    name: str  # what the answers name: e.g. the first file and how many there are
    files: tuple[tuple[str, bytes], ...] = ()  # (name, bytes), in upload order
    error: MriError | None = None


@dataclass(frozen=True)
class BatchItem:
    """One answer of a stream: a slice's Reading, or the error its input raised."""

    file: str  # the input as given: the path, or the upload's name
    position: int  # the input's position in the stream (0-based)
    outcome: object  # reading.Reading | MriError
    thumbnail: np.ndarray | None = None  # (h, w) float32 grey slice, longest side <= thumbnail_side
    place: SeriesPlace | None = None  # the slice's series, place in it and thickness; None for an error
    slice_count: int = 1  # how many slices its volume has along the plane read (1 for a plain image)

    @property
    def failed(self) -> bool:
        return isinstance(self.outcome, MriError)


# --- decoding ---------------------------------------------------------------------------

def decode_input(item, choice: io.SliceChoice = None, plane: str = "axial") -> list[tuple[io.Slice, SeriesPlace]]:
    """A path (file, DICOM folder, zip), an upload's (name, bytes) or an Upload -> its slices, each with its
    place in its series (`series.placed_slices`); MriError when it cannot be read. A DICOM series or
    NIfTI volume gives its `choice` of slices (None: the middle). Plain images go through io's one
    raster decoder, as for a single upload (as `io.read_input` reads them)."""
    if isinstance(item, Upload):
        volumes = [scan.volume for scan in upload_scans(item)]
    else:
        volumes = io.read_volumes([item]) if isinstance(item, tuple) else io.read_path_volumes(item)
    return placed_volumes(volumes, choice, plane)


def upload_scans(upload: Upload) -> list[io.UploadedScan]:
    """An Upload's scans (`io.read_uploads`: in upload order, each with the places of the files it was read
    from); the error it carries is raised."""
    if upload.error is not None:
        raise upload.error
    return io.read_uploads(list(upload.files))


def placed_volumes(volumes: Sequence, choice: io.SliceChoice = None,
                   plane: str = "axial") -> list[tuple[io.Slice, SeriesPlace]]:
    """An input's volumes -> the chosen slices of each, with their places (`SeriesPlace.number`: which volume)."""
    return [pair for number, volume in enumerate(volumes) for pair in placed_slices(volume, number, choice, plane)]


def input_name(item) -> str:
    if isinstance(item, Upload):
        return item.name
    return item[0] if isinstance(item, tuple) else str(item)


# --- the stream -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Decoded:
    """What the reading step needs of one input, kept aside while its images are in tf.data."""

    file: str
    slices: list  # io.Slice with pixels replaced by a thumbnail (or an empty array)
    places: list  # series.SeriesPlace of each slice
    prepared: list  # preprocess.Prepared, image dropped
    pixel_notes: list  # read.SliceNotes of each slice, taken before its pixels were dropped


@dataclass(frozen=True)
class _Failed:
    file: str
    error: MriError


def _drop_pixels(slice_: io.Slice, thumbnail_side: int | None) -> io.Slice:
    if not thumbnail_side:
        return replace(slice_, pixels=np.zeros((0, 0), np.float32))
    height, width = slice_.pixels.shape
    scale = min(1.0, thumbnail_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return replace(slice_, pixels=cv2.resize(slice_.pixels, size, interpolation=cv2.INTER_AREA))


def stream_readings(scan_model, inputs: Iterable, cam: str = "gradcam",
                    batch_size: int = DEFAULT_BATCH_SIZE,
                    decode: Callable[[object], Sequence[tuple[io.Slice, SeriesPlace]]] = decode_input,
                    thumbnail_side: int | None = None, check=SHIPPED_CHECK) -> Iterator[BatchItem]:
    """Inputs -> BatchItem per slice (or per failed input), in input order, batch by batch.

    `inputs` may be any iterable (a generator of paths is read lazily); `decode` maps one
    input to its slices, each with its SeriesPlace (default: `decode_input`). With `thumbnail_side`, each answer
    carries a small overlay picture for tables. `check`: the brain-MRI check (`read.read_prepared`);
    it looks at each slice's reduced copy, taken while decoding, and runs a batch at a time.
    """
    if batch_size < 1:
        raise SettingsInvalid(f"Batch size must be at least 1, got {batch_size}.")
    if cam not in CAM_METHODS:
        raise SettingsInvalid(f"Unknown CAM method {cam!r}; choose one of {', '.join(CAM_METHODS)}.")
    import tensorflow as tf

    check = brain_check_of(check)
    size = scan_model.image_size
    decoded: dict[int, _Decoded | _Failed] = {}  # position -> result, until it is answered
    lock = threading.Lock()

    source = iter(inputs)
    pulled: dict[int, list] = {}  # chunk number -> [(position, input)], pulled in order
    state = {"next_chunk": 0, "exhausted": False}

    def take_chunk(number: int) -> list:
        """Chunk `number` of the inputs (DECODE_CHUNK of them; [] past the end), pulled in order
        from the iterable under the lock, so a lazy input is read only as far as needed."""
        with lock:
            while state["next_chunk"] <= number and not state["exhausted"]:
                first = state["next_chunk"] * DECODE_CHUNK
                chunk = list(zip(range(first, first + DECODE_CHUNK), itertools.islice(source, DECODE_CHUNK)))
                state["exhausted"] = len(chunk) < DECODE_CHUNK
                pulled[state["next_chunk"]] = chunk
                state["next_chunk"] += 1
            return pulled.pop(number, [])

    def decode_chunk(number):
        # -> (positions (k,), slice numbers (k,), images (k, S, S, 1) float32); one row per slice
        rows = [decode_one(position, item) for position, item in take_chunk(int(number))]
        if not rows:  # past the end: the empty chunk stops the stream
            return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros((0, size, size, 1), np.float32)
        return tuple(np.concatenate(parts) for parts in zip(*rows))

    def decode_one(position, item):
        file = input_name(item)
        try:
            pairs = list(decode(item))
            slices, places = [s for s, _ in pairs], [place for _, place in pairs]
            prepared = [preprocess.prepare(s.pixels, size) for s in slices]
            if not slices:
                raise UnreadableImage(f"{Path(file).name}: holds no image slice; check the file.")
        except MriError as exc:
            result, rows = _Failed(file, exc), None
        except Exception as exc:  # one bad input never stops the batch
            error = UnreadableImage(f"{Path(file).name}: cannot be read ({type(exc).__name__}: {exc}).")
            result, rows = _Failed(file, error), None
        else:
            rows = np.stack([p.image for p in prepared])
            result = _Decoded(file, [_drop_pixels(s, thumbnail_side) for s in slices], places,
                              [replace(p, image=np.broadcast_to(np.float32(0), p.image.shape)) for p in prepared],
                              [slice_notes(scan_model, s, check) for s in slices])
        with lock:
            decoded[position] = result
        if rows is None:  # a placeholder row keeps the input's place in the order
            return (np.array([position], np.int64), np.array([-1], np.int32), np.zeros((1, size, size, 1), np.float32))
        k = len(rows)
        return np.full(k, position, np.int64), np.arange(k, dtype=np.int32), rows

    def decode_tf(position):
        positions_, numbers, images = tf.numpy_function(decode_chunk, [position], (tf.int64, tf.int32, tf.float32),
                                                        stateful=False)
        positions_.set_shape((None,))
        numbers.set_shape((None,))
        images.set_shape((None, size, size, 1))
        return positions_, numbers, images

    # Chunk numbers from a plain counter, not Dataset.from_generator: that one sets glibc's
    # M_TRIM_THRESHOLD to 128 kB for the whole process, which cost seconds per 1,000 slices.
    dataset = (
        tf.data.Dataset.range(np.iinfo(np.int64).max)
        .map(decode_tf, num_parallel_calls=DECODE_THREADS, deterministic=True)
        .take_while(lambda positions_, numbers, images: tf.size(positions_) > 0)
        .unbatch()  # one row per slice (cheaper than flat_map over per-input datasets)
        .batch(batch_size)
        .prefetch(1)
    )
    for batch_positions, numbers, images in dataset.as_numpy_iterator():
        yield from _answer_batch(scan_model, batch_positions, numbers, images, decoded, lock, cam,
                                 functools.partial(read_prepared, check=check), thumbnail_side)


def _answer_batch(scan_model, positions, numbers, images, decoded, lock, cam, read_prepared,
                  thumbnail_side) -> Iterator[BatchItem]:
    """One tf.data batch -> its BatchItems in order; forgets inputs once fully answered."""
    good = np.flatnonzero(numbers >= 0)
    with lock:
        results = {int(p): decoded[int(p)] for p in set(positions.tolist())}
    slices = [results[int(positions[i])].slices[numbers[i]] for i in good]
    prepared = [results[int(positions[i])].prepared[numbers[i]] for i in good]
    notes = [results[int(positions[i])].pixel_notes[numbers[i]] for i in good]
    readings = iter(read_prepared(scan_model, images[good], prepared, slices, cam, notes) if len(good) else [])
    for position, number in zip(positions.tolist(), numbers.tolist()):
        result = results[position]
        if isinstance(result, _Failed):
            yield BatchItem(result.file, position, result.error)
            done = True
        else:
            reading = next(readings)
            slice_ = result.slices[number]
            yield BatchItem(result.file, position, reading, slice_.pixels if thumbnail_side else None,
                            result.places[number], slice_.count)
            done = number == len(result.slices) - 1
        if done:
            with lock:
                decoded.pop(position, None)


def read_paths(scan_model, paths: Iterable[str | Path], cam: str = "gradcam",
               batch_size: int = DEFAULT_BATCH_SIZE, choice: io.SliceChoice = None,
               plane: str = "axial", check=SHIPPED_CHECK) -> Iterator[tuple[str, Reading | MriError]]:
    """Files, DICOM folders or zips -> (path, Reading or the MriError it raised), in input order.

    Each series in a path gives its chosen slices (the middle one by default, slice N, or all).
    Streamed through tf.data (`stream_readings`): decoding runs in parallel with the
    model, a bad path yields its error and the rest still run, memory stays a few batches.
    """
    for item in read_path_items(scan_model, paths, cam, batch_size, choice, plane, check):
        yield item.file, item.outcome


def read_path_items(scan_model, paths: Iterable[str | Path], cam: str = "gradcam",
                    batch_size: int = DEFAULT_BATCH_SIZE, choice: io.SliceChoice = None,
                    plane: str = "axial", check=SHIPPED_CHECK) -> Iterator[BatchItem]:
    """As `read_paths`, but the whole BatchItem: with each slice's SeriesPlace (to measure a series)."""
    decode = functools.partial(decode_input, choice=choice, plane=plane)
    yield from stream_readings(scan_model, paths, cam=cam, batch_size=batch_size, decode=decode, check=check)
