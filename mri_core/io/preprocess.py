"""Slice pixels -> model input, remembering the crop so results map back to the original.

`prepare` crops the head (`brain_crop_box`), squares the box about its centre, pads with
black where the square leaves the image, resizes to the model size and normalises to
[0, 1]. This is the ONLY place pixels are normalised: models take its output as is.
`to_original_xy` and `heatmap_to_original` undo the crop and resize exactly, so a point or
a map over the model input lands on the right pixels of the image the user uploaded.
Coordinates are x to the right, y down; boxes are (x0, y0, x1, y1) with inclusive edges.
Never imports streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from mri_core.io.errors import NotASlice, SettingsInvalid

# The head is found on a copy at most this many pixels a side: fast for 2,000 px scans,
# and still within a couple of original pixels after scaling the box back up.
CROP_SEARCH_SIDE = 256
# Blur (at search size) so that noise and thin text strokes do not split the head.
CROP_BLUR_SIGMA = 2.0
# Air is darker than this fraction of the Otsu level (brain vs rest): dim scalp still counts.
HEAD_THRESHOLD_OF_OTSU = 0.5
# Closing radius, as a fraction of the search side: joins the skull ring to the brain.
CLOSING_FRACTION = 0.03
# A component along more than this fraction of the image edge is a frame or bright bar.
FRAME_EDGE_FRACTION = 0.3
# A head smaller than this fraction of the image is not a head: keep the whole image.
MIN_HEAD_FRACTION = 0.02
# Border added around the head on each side, as a fraction of the square's side.
CROP_MARGIN = 0.04
# Robust min-max: a few hot pixels (text, markers) must not darken the brain.
NORMALISE_PERCENTILES = (0.5, 99.5)
MIN_MODEL_SIZE = 8


@dataclass(frozen=True)
class Prepared:
    image: np.ndarray  # float32 (S, S, 1) in [0, 1]: the model input
    crop_box: tuple[int, int, int, int]  # (x0, y0, x1, y1) inclusive, original pixels, square;
    # may extend beyond the image (those parts were padded with 0)
    original_shape: tuple[int, int]  # (H, W) of the original slice


def brain_crop_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(H, W) float in [0, 1] -> tight inclusive (x0, y0, x1, y1) around the head.

    Head vs air: a threshold below Otsu's on a blurred copy (so dim skull and scalp count),
    a closing that joins the skull ring to the brain, then the largest connected component
    that is not a frame along the image edge. Text labels and markers are separate small
    components and are ignored. The whole image when no head-sized component is found.
    """
    pixels = _check_slice(pixels)
    height, width = pixels.shape
    whole = (0, 0, width - 1, height - 1)
    mask = _head_mask(pixels)
    if mask is None:
        return whole
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return whole
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h, area = stats[largest]
    if area < MIN_HEAD_FRACTION * mask.size:
        return whole
    # Back to original pixels, rounding outwards so the head stays inside.
    sx, sy = width / mask.shape[1], height / mask.shape[0]
    x0, y0 = int(np.floor(x * sx)), int(np.floor(y * sy))
    x1, y1 = int(np.ceil((x + w) * sx)) - 1, int(np.ceil((y + h) * sy)) - 1
    return max(0, x0), max(0, y0), min(width - 1, x1), min(height - 1, y1)


def _head_mask(pixels: np.ndarray) -> np.ndarray | None:
    """(H, W) -> uint8 (h, w) mask of "not air" at search size, or None for a blank image."""
    height, width = pixels.shape
    scale = min(1.0, CROP_SEARCH_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    grey = (np.clip(cv2.GaussianBlur(small, (0, 0), CROP_BLUR_SIGMA), 0, 1) * 255).round()
    grey = grey.astype(np.uint8)
    otsu, _ = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if otsu <= 0:
        return None
    mask = (grey > HEAD_THRESHOLD_OF_OTSU * otsu).astype(np.uint8)
    count, labels, _, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    frames = _edge_frames(labels, count)
    if frames:  # removed before closing, so the closing cannot glue them to the head
        mask[np.isin(labels, list(frames))] = 0
    radius = max(1, round(CLOSING_FRACTION * max(mask.shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)


def _edge_frames(labels: np.ndarray, count: int) -> set[int]:
    """Components that run along the image edge (white bars, frames): not a head."""
    edge = np.concatenate([labels[0], labels[-1], labels[1:-1, 0], labels[1:-1, -1]])
    touching = np.bincount(edge, minlength=count)
    return {i for i in range(1, count) if touching[i] > FRAME_EDGE_FRACTION * edge.size}


def square_box(
    box: tuple[int, int, int, int], margin: float = CROP_MARGIN
) -> tuple[int, int, int, int]:
    """Tight box -> square inclusive box about the same centre, `margin` of the side added."""
    x0, y0, x1, y1 = box
    width, height = x1 - x0 + 1, y1 - y0 + 1
    side = max(width, height)
    side += 2 * int(np.ceil(margin * side))
    left = x0 - (side - width) // 2
    top = y0 - (side - height) // 2
    return left, top, left + side - 1, top + side - 1


def prepare(pixels: np.ndarray, image_size: int) -> Prepared:
    """(H, W) float in [0, 1] -> Prepared with a (S, S, 1) model input, S = image_size."""
    pixels = _check_slice(pixels)
    _check_image_size(image_size)
    box = square_box(brain_crop_box(pixels))
    crop = _crop_with_padding(pixels, box)
    resized = cv2.resize(crop, (image_size, image_size), interpolation=cv2.INTER_AREA)
    image = _normalise(resized)[..., np.newaxis]
    return Prepared(image=image, crop_box=box, original_shape=(pixels.shape[0], pixels.shape[1]))


def prepare_batch(
    slices_pixels: Sequence[np.ndarray], image_size: int
) -> tuple[np.ndarray, list[Prepared]]:
    """N slices -> ((N, S, S, 1) float32 model batch, [Prepared] in the same order)."""
    _check_image_size(image_size)
    prepared = [prepare(pixels, image_size) for pixels in slices_pixels]
    if not prepared:
        return np.zeros((0, image_size, image_size, 1), np.float32), []
    return np.stack([p.image for p in prepared]), prepared


def to_original_xy(xy_model: tuple[float, float], prepared: Prepared) -> tuple[int, int]:
    """(x, y) in model-input pixels -> (x, y) pixel of the original image, clipped to it."""
    x0, y0, x1, _ = prepared.crop_box
    model_size = prepared.image.shape[0]
    scale = (x1 - x0 + 1) / model_size
    # Pixel centres: model pixel u covers original [x0 + u*scale, x0 + (u+1)*scale).
    x = x0 + (xy_model[0] + 0.5) * scale - 0.5
    y = y0 + (xy_model[1] + 0.5) * scale - 0.5
    height, width = prepared.original_shape
    col, row = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    return int(np.clip(col, 0, width - 1)), int(np.clip(row, 0, height - 1))


def box_to_model(box: tuple[int, int, int, int], crop_box: tuple[int, int, int, int],
                 image_size: int) -> tuple[int, int, int, int]:
    """Inclusive box in original pixels -> inclusive box in model-input pixels (clipped to it)."""
    x0, y0, x1, _ = crop_box
    scale = image_size / (x1 - x0 + 1)
    left, top = int(np.floor((box[0] - x0) * scale)), int(np.floor((box[1] - y0) * scale))
    right, bottom = int(np.ceil((box[2] + 1 - x0) * scale)) - 1, int(np.ceil((box[3] + 1 - y0) * scale)) - 1
    clip = lambda v: int(np.clip(v, 0, image_size - 1))  # noqa: E731
    return clip(left), clip(top), clip(right), clip(bottom)


def mask_to_model(mask: np.ndarray, crop_box: tuple[int, int, int, int], image_size: int) -> np.ndarray:
    """(H, W) mask of the original slice (non-zero = inside) -> (S, S) uint8 0/1 over the model
    input: the same square crop as the image's (`Prepared.crop_box`), area-resized, then halved."""
    crop = _crop_with_padding((np.asarray(mask) > 0).astype(np.float32), crop_box)
    return (cv2.resize(crop, (image_size, image_size), interpolation=cv2.INTER_AREA) >= 0.5).astype(np.uint8)


def heatmap_to_original(cam: np.ndarray, prepared: Prepared) -> np.ndarray:
    """(h, w) map over the model input -> float32 (H, W) over the original, 0 outside the box."""
    cam = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if cam.ndim == 3 and cam.shape[-1] == 1:
        cam = cam[..., 0]
    if cam.ndim != 2:
        raise ValueError(f"expected a 2-D heatmap (h, w), got shape {cam.shape}")
    side = prepared.crop_box[2] - prepared.crop_box[0] + 1
    # Shrinking a map needs area averaging, or a one-pixel peak can vanish between samples.
    shrinking = side < max(cam.shape)
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    over_box = cv2.resize(cam, (side, side), interpolation=interpolation)
    height, width = prepared.original_shape
    heatmap = np.zeros((height, width), np.float32)
    visible = _overlap(prepared.crop_box, height, width)
    if visible is not None:
        (iy0, iy1, ix0, ix1), (by0, by1, bx0, bx1) = visible
        heatmap[iy0:iy1, ix0:ix1] = over_box[by0:by1, bx0:bx1]
    return np.clip(heatmap, 0.0, 1.0)


def _crop_with_padding(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """(H, W) -> (side, side) float32 of the box; parts outside the image are 0."""
    x0, y0, x1, y1 = box
    crop = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.float32)
    visible = _overlap(box, *pixels.shape)
    if visible is not None:
        (iy0, iy1, ix0, ix1), (by0, by1, bx0, bx1) = visible
        crop[by0:by1, bx0:bx1] = pixels[iy0:iy1, ix0:ix1]
    return crop


def _overlap(box: tuple[int, int, int, int], height: int, width: int):
    """Where a box and the image overlap, as half-open slices: (image rows/cols, box rows/cols)."""
    x0, y0, x1, y1 = box
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x1 + 1, width), min(y1 + 1, height)
    if ix0 >= ix1 or iy0 >= iy1:
        return None
    return (iy0, iy1, ix0, ix1), (iy0 - y0, iy1 - y0, ix0 - x0, ix1 - x0)


def _normalise(image: np.ndarray) -> np.ndarray:
    """(S, S) float -> float32 in [0, 1] by a robust percentile min-max, clipped."""
    low, high = np.percentile(image, NORMALISE_PERCENTILES)
    if high - low < 1e-6:  # flat: nothing to stretch
        low, high = float(image.min()), float(image.max())
    if high - low < 1e-6:
        return np.zeros(image.shape, np.float32)
    return np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _check_slice(pixels: np.ndarray) -> np.ndarray:
    """Any array -> (H, W) float32 with NaN as 0, or NotASlice saying what was wrong."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim != 2 or min(pixels.shape) < 2:
        raise NotASlice(
            f"expected a 2-D slice (height, width), got an array of shape {pixels.shape}; "
            f"pick one slice of a volume and convert colour to grey first."
        )
    return np.nan_to_num(pixels.astype(np.float32, copy=False), nan=0.0)


def _check_image_size(image_size: int) -> None:
    if int(image_size) != image_size or image_size < MIN_MODEL_SIZE:
        raise SettingsInvalid(
            f"image size must be a whole number of pixels >= {MIN_MODEL_SIZE}, got {image_size!r}."
        )
