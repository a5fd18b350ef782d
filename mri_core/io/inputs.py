"""Model inputs from image files, prepared exactly as a reading prepares an upload.

Evaluation, the out-of-distribution fit and training all go through `prepare_files`: the
same reading (`slices.read_file`, whose plain images go through the one raster decoder,
`raster.decode_raster`), the same brain crop and normalisation (`preprocess.prepare`), the
same float32 values in [0, 1] that the reading path feeds the model. What `evaluate`
measures is what the app sees.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mri_core.io import preprocess
from mri_core.io.slices import read_file
from mri_core.io.volume import Slice

# Decoding threads: Pillow, OpenCV and NumPy release the GIL, so a few threads keep the cores busy.
PREPARE_THREADS = max(1, min(4, os.cpu_count() or 1))


def prepare_files(paths: Sequence[str | os.PathLike], image_size: int,
                  inspect: Callable[[Slice], object] | None = None):
    """Image files -> float32 (N, S, S, 1) model inputs in [0, 1], decoded in parallel, in order.

    With `inspect`, returns (inputs, [inspect(slice) for each file]): what else is needed of
    each decoded slice while its full-size pixels are at hand (they are not kept).
    """
    def one(path):
        slice_ = read_file(Path(path))[0]
        return preprocess.prepare(slice_.pixels, image_size).image, (inspect(slice_) if inspect else None)

    with ThreadPoolExecutor(max_workers=PREPARE_THREADS) as pool:
        results = list(pool.map(one, paths))
    images = (np.stack([image for image, _ in results]) if results
              else np.zeros((0, image_size, image_size, 1), np.float32))
    return (images, [extra for _, extra in results]) if inspect else images
