"""Pictures of a reading: the scan in grey, the Grad-CAM heatmap over it, the peak and box, and
the outline of the tumor mask.

All image math a page shows lives here, so pages only call `reading_overlay` (the outline, the
heatmap, its box and its peak, each as the reader chose) and display its result. Inputs are the plain arrays of a `Slice` and a `Reading` (original-image pixels);
outputs are uint8 RGB arrays or PNG bytes. Never imports streamlit or tensorflow.
"""

from __future__ import annotations

import io as _io

import cv2
import numpy as np
from PIL import Image

from mri_core.io.reading import CANNOT_READ, Reading

# TURBO: perceptually smoother than JET, and still reads "hot = evidence" at a glance.
COLORMAP = cv2.COLORMAP_TURBO
# Colours that neither the grey scan nor the TURBO map contains, so marks never blend in.
BOX_RGB = (255, 0, 255)  # magenta
PEAK_RGB = (255, 255, 255)  # white cross with a black outline
PEAK_OUTLINE_RGB = (0, 0, 0)
# The tumor mask's outline: a plain white line on a black edge, visible on skull, brain and heatmap.
OUTLINE_RGB = (255, 255, 255)
OUTLINE_EDGE_RGB = (0, 0, 0)
# Line width and marker size as fractions of the shorter image side (e.g. 2 px at 512 px); the
# outline is the thing to see, so it is drawn twice as wide (4 px at 512 px, 2 px at 256 px and below).
LINE_WIDTH_FRACTION = 1 / 250
OUTLINE_WIDTH_FRACTION = 1 / 128
MARKER_SIZE_FRACTION = 1 / 20
# What the reader may draw over the scan, each on its own (the Diagnose page's checkboxes): the tumor
# mask's outline, the heatmap, the heatmap's box and its peak. The last three are tumor evidence.
OUTLINE, HEATMAP, BOX, PEAK = "outline", "heatmap", "box", "peak"
LAYERS = (OUTLINE, HEATMAP, BOX, PEAK)
EVIDENCE_LAYERS = (HEATMAP, BOX, PEAK)
# Heatmap values below this share of its peak are not drawn at all, so that weak, diffuse evidence does
# not tint the whole brain; from there the colour fades in linearly up to the chosen opacity at the peak.
HEATMAP_FLOOR = 0.2


def _check_pixels(pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or min(pixels.shape) < 1:
        raise ValueError(f"Expected a 2-D scan (H, W), got shape {pixels.shape}.")
    return np.clip(np.nan_to_num(pixels.astype(np.float32)), 0.0, 1.0)


def grey_rgb(pixels: np.ndarray) -> np.ndarray:
    """(H, W) float in [0, 1] -> (H, W, 3) uint8 grey RGB."""
    grey = np.round(_check_pixels(pixels) * 255.0).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def heatmap_rgb(heatmap: np.ndarray) -> np.ndarray:
    """(H, W) float in [0, 1] -> (H, W, 3) uint8 RGB colour map (blue cold, red hot)."""
    levels = np.round(_check_pixels(heatmap) * 255.0).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, COLORMAP), cv2.COLOR_BGR2RGB)


def heatmap_alpha(heatmap: np.ndarray, opacity: float) -> np.ndarray:
    """(H, W) heatmap in [0, 1] -> (H, W) float32 share of colour over the scan: 0 below HEATMAP_FLOOR,
    then rising linearly to `opacity` where the map is 1."""
    ramp = (_check_pixels(heatmap) - HEATMAP_FLOOR) / (1.0 - HEATMAP_FLOOR)
    return (opacity * np.clip(ramp, 0.0, 1.0)).astype(np.float32)


def _line_width(shape: tuple[int, int], fraction: float = LINE_WIDTH_FRACTION) -> int:
    return max(1, int(round(min(shape) * fraction)))


def draw_box(rgb: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Draw the inclusive box (x0, y0, x1, y1) onto (H, W, 3) uint8 RGB, in place."""
    x0, y0, x1, y1 = (int(v) for v in box)
    cv2.rectangle(rgb, (x0, y0), (x1, y1), BOX_RGB, _line_width(rgb.shape[:2]), cv2.LINE_8)


def draw_peak(rgb: np.ndarray, peak: tuple[int, int]) -> None:
    """Draw a cross centred on peak (x, y) onto (H, W, 3) uint8 RGB, in place."""
    width = _line_width(rgb.shape[:2])
    size = max(7, int(round(min(rgb.shape[:2]) * MARKER_SIZE_FRACTION)))
    centre = (int(peak[0]), int(peak[1]))
    # the outline keeps the cross visible on white skull and on yellow heatmap alike
    cv2.drawMarker(rgb, centre, PEAK_OUTLINE_RGB, cv2.MARKER_CROSS, size + 2 * width, 3 * width)
    cv2.drawMarker(rgb, centre, PEAK_RGB, cv2.MARKER_CROSS, size, width)


def draw_outline(rgb: np.ndarray, mask: np.ndarray) -> None:
    """Draw the outline of every region of the (H, W) bool mask onto (H, W, 3) uint8 RGB, in place."""
    mask = np.asarray(mask)
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"Mask shape {mask.shape} does not match the scan {rgb.shape[:2]}; the reading's "
                         "mask is at the original size.")
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    width = max(2, _line_width(rgb.shape[:2], OUTLINE_WIDTH_FRACTION))  # a 1 px line vanishes on a small scan
    cv2.drawContours(rgb, contours, -1, OUTLINE_EDGE_RGB, width + 2, cv2.LINE_8)  # a 1 px black rim each side
    cv2.drawContours(rgb, contours, -1, OUTLINE_RGB, width, cv2.LINE_8)


def overlay(pixels: np.ndarray, heatmap: np.ndarray | None, opacity: float = 0.4,
            peak: tuple[int, int] | None = None,
            box: tuple[int, int, int, int] | None = None,
            mask: np.ndarray | None = None) -> np.ndarray:
    """Scan (H, W) [0, 1] + heatmap (H, W) [0, 1] or None -> (H, W, 3) uint8 RGB.

    The heatmap is colour-mapped and blended over the grey scan by `heatmap_alpha` (0 = scan
    only; at the peak, `opacity` 1 = colour only), so weak evidence and cold areas keep the
    plain scan; the tumor mask's outline (when `mask`, (H, W) bool, holds any), then the box
    and the peak are drawn on top.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}.")
    rgb = grey_rgb(pixels)
    if heatmap is not None and opacity > 0.0:
        if np.shape(heatmap) != rgb.shape[:2]:
            raise ValueError(
                f"Heatmap shape {np.shape(heatmap)} does not match the scan {rgb.shape[:2]}; "
                "map it back to original pixels first (preprocess.heatmap_to_original)."
            )
        # weight by evidence: where the map is low the scan stays plain grey, not tinted blue
        alpha = heatmap_alpha(heatmap, opacity)[:, :, None]  # (H, W, 1)
        rgb = np.round(heatmap_rgb(heatmap) * alpha + rgb * (1.0 - alpha)).astype(np.uint8)
    if mask is not None:
        draw_outline(rgb, mask)
    if box is not None:
        draw_box(rgb, box)
    if peak is not None:
        draw_peak(rgb, peak)
    return rgb


def reading_overlay(pixels: np.ndarray, reading: Reading, layers=LAYERS, opacity: float = 0.4) -> np.ndarray:
    """A reading's overlay as the reader chose to see it: each of `layers` (a collection of LAYERS) that
    the reading has is drawn: the tumor mask's outline, the heatmap at `opacity`, its box, its peak. An
    image that cannot be read gets no evidence layer (no tumor evidence is shown for it); a model that
    does not segment gives no outline."""
    layers = set(layers)
    if unknown := layers - set(LAYERS):
        raise ValueError(f"Unknown layer(s) {', '.join(sorted(unknown))}; choose among {', '.join(LAYERS)}.")
    if reading.verdict == CANNOT_READ:
        layers -= set(EVIDENCE_LAYERS)
    return overlay(pixels, reading.heatmap if HEATMAP in layers else None, opacity,
                   reading.cam_peak if PEAK in layers else None, reading.cam_box if BOX in layers else None,
                   reading.mask if OUTLINE in layers else None)


def to_png(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> PNG file bytes (for downloads and reports)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"Expected (H, W, 3) uint8 RGB, got shape {rgb.shape} dtype {rgb.dtype}.")
    buffer = _io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()
