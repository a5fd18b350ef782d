"""Near-duplicates: images that show the same slice (resized, re-compressed, lightly cropped,
or stored in two data sets), found by correlating small high-passed thumbnails of the head.

`group_near_duplicates` links them so that `splits.split_groups` keeps each group on one
side of the train/val/test split. Thumbnails are cached per file content (sha256) in memory;
`data.discover` fills the cache while it decodes every image anyway.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from mri_core.io import preprocess
from mri_core.io import slices as io

DECODE_WORKERS = 2

# Every image is first brought to this many pixels a side, so that blur and mask do not
# depend on its size (a copy at half size must give the same thumbnail).
THUMB_SEARCH_SIDE = 256
THUMB_SIZE = 24  # thumbnails are THUMB_SIZE x THUMB_SIZE
THUMB_BLUR_SIGMA = 2.0  # at search size: noise and JPEG blocks do not move the head mask
# "Head" = brighter than this fraction of the 99th percentile of the blurred head box.
THUMB_HEAD_FRACTION = 0.2
# The frame is the median of the head mask +- this many robust standard deviations
# (IQR / 1.35) per axis. Quantiles, unlike a bounding box or mean and std, barely move
# when a few % is cut off one edge (a 4 % cut moves a box edge by 4 %); measured on 200
# real slices, mean/std framing matched 87 % of 4 %-bottom-cut copies, quartiles 98 %.
THUMB_FRAME_SIGMAS = 2.0
# Subtract a blur of this sigma (in thumbnail pixels): removes the head's outline and
# brightness ramp, which every axial slice shares, so that what correlates is anatomy.
THUMB_HIGHPASS_SIGMA = 6.0
# Two thumbnails whose Pearson correlation is at least this show the same slice.
# Chosen on all 7,590 shared images (`bench/make_split.py --study`, figures in
# bench/results_datasets.json). Copies of 200 sampled images at 0.97: resized (0.5x,
# 1.7x) and JPEG (q30, q70) copies match 99.5-100 %, 4 %-edge cuts 98-99.5 % (left,
# right, top) and 91.5 % (bottom: a cut through a neck that runs off the image).
# Distinct slices: at 0.97 no pair links two classes of one data set and the largest
# group is 35 copies of one web-scraped slice; at 0.96 seven pairs do and a chain of 146
# forms, at 0.95 133 pairs and 522. Best-match correlations have no clean gap: neighbouring
# slices of one patient (figshare) reach 0.97-0.98, so some of them still link, which errs
# on the safe side (it keeps a patient on one side of the split).
DUPLICATE_THRESHOLD = 0.97
_BLOCK_ROWS = 1024  # rows of the correlation matrix computed at once (1024 x N float32)

_thumbnail_cache: dict[str, np.ndarray] = {}
_cache_lock = threading.Lock()


def make_thumbnail(pixels: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """(H, W) float in [0, 1] -> float32 (size*size,) z-scored / size, so a dot product is r.

    The frame follows the head (brain_crop_box, then the quartiles of the head mask inside
    it), so the same slice resized, re-compressed or with a few % cut off an edge gives
    nearly the same thumbnail; a high-pass keeps the anatomy that tells slices apart.
    """
    pixels = np.asarray(pixels, np.float32)
    height, width = pixels.shape
    scale = THUMB_SEARCH_SIDE / max(height, width)
    small_size = (max(2, round(width * scale)), max(2, round(height * scale)))
    shrinking = scale < 1
    small = cv2.resize(pixels, small_size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    x0, y0, x1, y1 = preprocess.brain_crop_box(small)
    head = cv2.GaussianBlur(small, (0, 0), THUMB_BLUR_SIGMA)[y0:y1 + 1, x0:x1 + 1]
    level = np.percentile(head, 99)
    ys, xs = np.nonzero(head > THUMB_HEAD_FRACTION * level) if level > 0 else ((), ())
    if len(xs) < 4:  # blank image: frame the whole thing
        centre, spread = np.array(small_size) / 2, np.array(small_size) / 4
    else:
        (qx25, qx50, qx75), (qy25, qy50, qy75) = np.percentile(xs, [25, 50, 75]), np.percentile(ys, [25, 50, 75])
        centre = np.array([qx50 + x0, qy50 + y0])
        spread = np.maximum(np.array([qx75 - qx25, qy75 - qy25]) / 1.35, 1.0)
    frame = _crop_frame(small, centre - THUMB_FRAME_SIGMAS * spread, centre + THUMB_FRAME_SIGMAS * spread)
    thumb = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)  # (size, size)
    thumb = thumb - cv2.GaussianBlur(thumb, (0, 0), THUMB_HIGHPASS_SIGMA * size / THUMB_SIZE)
    thumb = thumb.ravel()
    thumb = thumb - thumb.mean()
    norm = float(np.linalg.norm(thumb))
    return (thumb / norm if norm > 1e-8 else thumb).astype(np.float32)


def _crop_frame(image: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(h, w) -> the (x, y) frame [low, high) rounded to pixels, padded with 0 outside."""
    x0, y0 = np.floor(low).astype(int)
    x1, y1 = np.ceil(high).astype(int)
    x1, y1 = max(x1, x0 + 2), max(y1, y0 + 2)
    height, width = image.shape
    out = np.zeros((y1 - y0, x1 - x0), np.float32)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if ix0 < ix1 and iy0 < iy1:
        out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = image[iy0:iy1, ix0:ix1]
    return out


def remember_thumbnail(sha256: str, pixels: np.ndarray) -> None:
    """Cache the thumbnail of an image already decoded (by its content hash)."""
    if sha256 not in _thumbnail_cache:
        thumbnail = make_thumbnail(pixels)
        with _cache_lock:
            _thumbnail_cache[sha256] = thumbnail


def thumbnails(records: Sequence) -> np.ndarray:
    """Records -> float32 (N, THUMB_SIZE**2) unit thumbnails, cached per sha256 in memory."""
    missing = [r for r in records if r.sha256 not in _thumbnail_cache]

    def compute(record) -> None:
        pixels = io.read_file(record.path)[0].pixels
        thumbnail = make_thumbnail(pixels)
        with _cache_lock:
            _thumbnail_cache[record.sha256] = thumbnail

    with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
        list(pool.map(compute, missing))
    if not records:
        return np.zeros((0, THUMB_SIZE * THUMB_SIZE), np.float32)
    return np.stack([_thumbnail_cache[r.sha256] for r in records])


def _as_thumbnails(records_or_thumbnails) -> tuple[np.ndarray, list[str] | None]:
    """Records or an (N, d) / (N, s, s) array -> ((N, d) unit rows, sha256s or None)."""
    if isinstance(records_or_thumbnails, np.ndarray):
        array = records_or_thumbnails.reshape(len(records_or_thumbnails), -1).astype(np.float32)
        return array, None
    records = list(records_or_thumbnails)
    return thumbnails(records), [r.sha256 for r in records]


def near_duplicate_pairs(records_or_thumbnails, threshold: float = DUPLICATE_THRESHOLD) -> np.ndarray:
    """Records (or thumbnails) -> int (P, 2) pairs (i < j) that show the same slice.

    Two images pair when their thumbnails correlate >= threshold, or their bytes are equal.
    """
    thumbs, hashes = _as_thumbnails(records_or_thumbnails)
    n = len(thumbs)
    pairs = []
    for start in range(0, n, _BLOCK_ROWS):
        block = thumbs[start:start + _BLOCK_ROWS] @ thumbs.T  # (b, N) correlations
        rows, cols = np.nonzero(block >= threshold)
        rows = rows + start
        keep = cols > rows
        pairs.append(np.stack([rows[keep], cols[keep]], axis=1))
    if hashes is not None:  # identical files are one image, even if blank (no correlation)
        first: dict[str, int] = {}
        for i, sha256 in enumerate(hashes):
            if sha256 in first:
                pairs.append(np.array([[first[sha256], i]]))
            else:
                first[sha256] = i
    pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), int)
    return np.unique(pairs.astype(np.int64), axis=0) if len(pairs) else pairs.reshape(0, 2).astype(np.int64)


def matches_per_record(records_or_thumbnails, threshold: float = DUPLICATE_THRESHOLD) -> list[list[int]]:
    """Records (or thumbnails) -> for each, the sorted indices of the others it matches."""
    n = len(records_or_thumbnails)
    matches: list[list[int]] = [[] for _ in range(n)]
    for i, j in near_duplicate_pairs(records_or_thumbnails, threshold):
        matches[i].append(int(j))
        matches[j].append(int(i))
    return [sorted(m) for m in matches]


def group_near_duplicates(records_or_thumbnails, threshold: float = DUPLICATE_THRESHOLD) -> np.ndarray:
    """Records (or thumbnails) -> int (N,) group ids 0..G-1, numbered by first member.

    Groups are the connected components of the near-duplicate pairs, so a chain of
    matches (A~B, B~C) is one group.
    """
    return groups_from_pairs(len(records_or_thumbnails), near_duplicate_pairs(records_or_thumbnails, threshold))


def groups_from_pairs(n: int, pairs: np.ndarray) -> np.ndarray:
    """n items and (P, 2) linked pairs -> int (n,) connected-component ids, by first member."""
    if n == 0:
        return np.zeros(0, np.int64)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # Renumber by first appearance so ids do not depend on scipy's internal order.
    _, first_index = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first_index))
    return order[labels].astype(np.int64)
