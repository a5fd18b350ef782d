"""Train the "is this a brain MRI?" check (`inference.brain_check`) and write its package.

Positives are the brain MRI slices of a split manifest; negatives are its head CTs (the
`not_mri` section, split by scan) and images made here, seeded, of what a clinician may
upload by mistake (`SYNTHETIC_KINDS`): photos (scikit-image's bundled ones: `TRAIN_PHOTOS`
to train, `HELD_OUT_PHOTOS` never, so a test can show photos the check never saw), rendered
text pages and dark screenshots, charts, gradients, noise, blank and near-blank frames,
clip-art shapes. Training uses the manifest's `train` split only, the threshold is chosen on
`val` (`choose_threshold`), and `test` is left for the report (bench/train_brain_check.py).

Every training image (MRI and not) goes through the same scanner-style variation
(`vary`: window, gamma, blur, noise, zoom, rotation, flips, black borders, corner text), so
no augmentation marks a class, and MRI of another contrast or export style is not refused
for its style. The network never sees colour: everything is grey (H, W) in [0, 1] as `io`
decodes it, prepared by `brain_check.prepare_check_input` (training uses the same functions).

The package is staged whole in a temp folder beside its destination and renamed into place
(`write_check_package`): a reader sees the old check or the new one, never half of one.
Never imports streamlit.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import string
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mri_core.inference import brain_check as bc
from mri_core.io.atomic import TEMP_PREFIX
from mri_core.io.errors import DatasetInvalid
from mri_core.io.slices import read_file
from mri_core.training import splits
from mri_core.training.audit import rate_with_interval

log = logging.getLogger(__name__)

SEED = 0
EPOCHS = 8
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
# Copies of each training head CT (the first plain, the rest varied): 358 CTs of few scans
# against about 8,000 MRI slices.
CT_COPIES = 6
# Each MRI stratum (a source; brisc2025 each plane) is seen at least this many times an epoch:
# a rarer one is copied (the first as any MRI slice, the rest varied). The web-gathered styles (Kaggle,
# Br35H: about 260 of 8,000 training slices) were otherwise under-learnt, and their bright-scalp
# T1 slices read as CT (4 of 159 Kaggle training slices, 3 of 71 Br35H held-out tumors flagged).
MRI_STRATUM_FLOOR = 600
# Share of training MRI (and of synthetic negatives) that is varied; the rest is seen as is.
VARY_SHARE = 0.6
SYNTHETIC_TRAIN, SYNTHETIC_VAL, SYNTHETIC_TEST = 3000, 800, 800
# The threshold rule: at most this share of validation MRI flagged in any stratum (a source;
# brisc2025 by plane; strata under MIN_RULE_STRATUM slices pooled into one, where 0.5 % would be
# less than one slice and one odd slice would set the threshold), i.e. floor(share * n) slices
# of a stratum of n; then a margin in logit units above that bound, for a test sample that is
# not the validation one.
MAX_MRI_FLAGGED_SHARE = 0.005
MIN_RULE_STRATUM = 200
SMALL_STRATA = "smaller strata pooled"
THRESHOLD_MARGIN_LOGIT = 1.0
THRESHOLD_RANGE = (0.05, 0.95)
RULE = (f"the lowest threshold at which at most {MAX_MRI_FLAGGED_SHARE:.1%} of the validation MRI slices of "
        f"every stratum are flagged (floor({MAX_MRI_FLAGGED_SHARE} x n) of a stratum of n; strata: each source, "
        f"brisc2025 each plane, those under {MIN_RULE_STRATUM} slices pooled into one), raised by "
        f"{THRESHOLD_MARGIN_LOGIT:g} in logit units, clipped to [{THRESHOLD_RANGE[0]}, {THRESHOLD_RANGE[1]}]")
DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))

# scikit-image's bundled images (no download): photos, scans, textures, text, clip art.
TRAIN_PHOTOS = ("astronaut", "camera", "coffee", "horse", "coins", "brick", "grass", "hubble_deep_field",
                "immunohistochemistry", "clock", "colorwheel", "checkerboard", "page")
HELD_OUT_PHOTOS = ("chelsea", "rocket", "retina", "moon", "text", "gravel", "cell", "logo", "binary_blobs",
                   "microaneurysms")
SYNTHETIC_KINDS = ("photo", "document", "dark_screenshot", "chart", "gradient", "noise", "blank", "shapes")
MRI, HEAD_CT = "mri", "head_ct"
# Head CTs that the public MRI sets file as MRI (found by a first check, each confirmed by eye:
# bright skull, grey brain, CT windowing). They train and count as head CT, in their own
# stratum; the figures "as filed" in bench/results_brain_check.json count them as MRI.
FILED_AS_MRI_HEAD_CT = {
    "216f2a039082de94da9bc81a64c5ba71cf1f8d4ac0c057bb04ca633a6d1d477a":
        "brain-tumor-mri-224/notumor/Tr-no_0010.jpg",
    "99da41b74c2b492e5850059051519f4b924d50c302f48706d9fd6e2a18c316ae":
        "brain-tumor-mri-224/notumor/Tr-no_0233.jpg",
    "1a7acec452891038ede718862dddf209915a51deb0ac3718948c235519adc94b":
        "kaggle-brain-mri/no/N1.JPG",
    "6369ffc236fd7a7538ff1eda464f639e228b957b843d08bd4dea34b204828258":
        "br35h-extra/yes/y1383.jpg",
    "984c97dce09de4582cf1802f4c4870be49e8f2d6704b4ef8c44c8706dacd7da5":
        "br35h-extra/yes/y1388.jpg",
}
FILED_AS_MRI_STRATUM = "head-ct-filed-as-mri"


# --- the data ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One manifest image: where it is and what it stands for in the figures."""

    path: Path
    split: str
    kind: str  # MRI or HEAD_CT
    stratum: str  # "brisc2025/axial", "figshare-boxes", "head-ct"


def manifest_items(data_root: str | Path, manifest: Mapping) -> list[Item]:
    """Every MRI image (`images`) and head CT (`not_mri`) of a manifest, in manifest order."""
    data_root = Path(data_root)
    items = []
    for sha256, entry in manifest["images"].items():
        path = data_root / entry["root"] / entry["path"]
        if sha256 in FILED_AS_MRI_HEAD_CT:
            items.append(Item(path, entry["split"], HEAD_CT, FILED_AS_MRI_STRATUM))
            continue
        stratum = entry["root"] + (f"/{entry['plane']}" if entry["root"] == "brisc2025" and "plane" in entry else "")
        items.append(Item(path, entry["split"], MRI, stratum))
    for entry in (manifest.get("not_mri") or {}).values():
        items.append(Item(data_root / "not-mri" / entry["root"] / entry["path"], entry["split"], HEAD_CT,
                          entry["root"]))
    return items


def load_work_images(paths: Sequence[Path], threads: int = DECODE_THREADS) -> np.ndarray:
    """Image files -> float32 (N, WORK_SIDE, WORK_SIDE) work images, decoded as a reading decodes them."""
    def one(path: Path) -> np.ndarray:
        return bc.work_image(read_file(path)[0].pixels)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        images = list(pool.map(one, paths))
    return np.stack(images) if images else np.zeros((0, bc.WORK_SIDE, bc.WORK_SIDE), np.float32)


def views_of(works: Sequence[np.ndarray], size: int = bc.INPUT_SIZE, threads: int = DECODE_THREADS) -> np.ndarray:
    """Work images -> (N, size, size, 2) network inputs (`brain_check.views`)."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        batch = list(pool.map(lambda w: bc.views(np.asarray(w, np.float32), size), works))
    return np.stack(batch) if batch else np.zeros((0, size, size, bc.CHANNELS), np.float32)


# --- images a clinician may upload by mistake --------------------------------------------

def photo_grey(name: str) -> np.ndarray:
    """A scikit-image bundled image -> grey float32 (H, W) in [0, 1] (alpha composited on black)."""
    from skimage import data as skdata  # a development dependency: only training and tests make photos

    image = np.asarray(getattr(skdata, name)(), np.float32)
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3] * (image[..., 3:] / 255.0)
    if image.ndim == 3:
        image = image[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    if image.dtype == bool or image.max() <= 1.0:
        return np.clip(image, 0.0, 1.0).astype(np.float32)
    return np.clip(image / 255.0, 0.0, 1.0).astype(np.float32)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, int(size)))  # Pillow's own font: the same everywhere


def _words(rng: np.random.Generator, n: int) -> str:
    letters = string.ascii_letters + string.digits + "      .,:%-/"
    return " ".join("".join(rng.choice(list(letters), size=int(rng.integers(2, 10)))) for _ in range(n))


def _canvas(rng: np.random.Generator, background: float) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    width, height = int(rng.integers(320, 900)), int(rng.integers(320, 900))
    image = Image.new("L", (width, height), int(round(background * 255)))
    return image, ImageDraw.Draw(image)


def render_document(rng: np.random.Generator, dark: bool = False) -> np.ndarray:
    """A page of text (a report, a form, a screenshot with panels) as grey (H, W) in [0, 1]."""
    background = rng.uniform(0.0, 0.15) if dark else rng.uniform(0.85, 1.0)
    ink = (rng.uniform(0.6, 1.0) if dark else rng.uniform(0.0, 0.35))
    image, draw = _canvas(rng, background)
    width, height = image.size
    if rng.random() < 0.5:  # panels, a title bar, a table
        for _ in range(int(rng.integers(1, 5))):
            x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
            x1, y1 = int(rng.integers(x0 + 20, width)), int(rng.integers(y0 + 20, height))
            shade = int(round(np.clip(background + rng.uniform(-0.3, 0.3), 0, 1) * 255))
            draw.rectangle((x0, y0, x1, y1), fill=shade if rng.random() < 0.5 else None,
                           outline=int(round(ink * 255)))
    size = int(rng.integers(9, 30))
    y = int(rng.integers(4, 40))
    while y < height - size:
        if rng.random() < 0.85:
            x = int(rng.integers(4, max(5, width // 8)))
            draw.text((x, y), _words(rng, int(rng.integers(2, 14))), fill=int(round(ink * 255)), font=_font(size))
        y += int(size * rng.uniform(1.2, 2.2))
    return np.asarray(image, np.float32) / 255.0


def render_chart(rng: np.random.Generator) -> np.ndarray:
    """A bar, line or pie chart with axes and labels, as grey (H, W) in [0, 1]."""
    dark = rng.random() < 0.3
    background = rng.uniform(0.0, 0.12) if dark else rng.uniform(0.88, 1.0)
    ink = int(round((rng.uniform(0.7, 1.0) if dark else rng.uniform(0.0, 0.3)) * 255))
    image, draw = _canvas(rng, background)
    width, height = image.size
    left, bottom, right, top = int(width * 0.12), int(height * 0.85), int(width * 0.95), int(height * 0.1)
    kind = rng.choice(["bar", "line", "pie"])
    if kind == "pie":
        box = (left, top, left + min(right - left, bottom - top), top + min(right - left, bottom - top))
        start = 0.0
        for share in rng.dirichlet(np.ones(int(rng.integers(2, 7)))):
            draw.pieslice(box, start, start + 360 * share, fill=int(rng.integers(30, 230)), outline=ink)
            start += 360 * share
    else:
        draw.line((left, top, left, bottom, right, bottom), fill=ink, width=int(rng.integers(1, 4)))
        n = int(rng.integers(3, 25))
        values = rng.uniform(0.05, 1.0, n)
        xs = np.linspace(left + 5, right - 5, n + 1)
        if kind == "bar":
            for i, v in enumerate(values):
                draw.rectangle((xs[i] + 2, bottom - v * (bottom - top), xs[i + 1] - 2, bottom),
                               fill=int(rng.integers(30, 230)))
        else:
            for _ in range(int(rng.integers(1, 4))):
                points = [(float(x), float(bottom - v * (bottom - top)))
                          for x, v in zip(xs, np.cumsum(rng.normal(0, 0.1, n)) % 1.0)]
                draw.line(points, fill=int(rng.integers(30, 255)), width=int(rng.integers(1, 4)))
    for i in range(int(rng.integers(0, 6))):
        draw.text((left + i * (right - left) // 6, bottom + 5), _words(rng, 1), fill=ink, font=_font(12))
    draw.text((left, 2), _words(rng, 4), fill=ink, font=_font(int(rng.integers(12, 24))))
    return np.asarray(image, np.float32) / 255.0


def render_gradient(rng: np.random.Generator) -> np.ndarray:
    """A linear or radial ramp between two grey levels."""
    height, width = int(rng.integers(128, 700)), int(rng.integers(128, 700))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        ramp = xx * np.cos(angle) + yy * np.sin(angle)
    else:
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ramp = np.hypot(yy - cy, xx - cx) ** rng.uniform(0.5, 2.0)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    a, b = rng.uniform(0, 1, 2)
    return (a + (b - a) * ramp).astype(np.float32)


def render_noise(rng: np.random.Generator) -> np.ndarray:
    """Gaussian, uniform, salt-and-pepper or smoothed (cloudy) noise."""
    height, width = int(rng.integers(64, 600)), int(rng.integers(64, 600))
    kind = rng.integers(0, 4)
    if kind == 0:
        image = rng.normal(rng.uniform(0.1, 0.9), rng.uniform(0.02, 0.3), (height, width))
    elif kind == 1:
        image = rng.uniform(0, 1, (height, width))
    elif kind == 2:
        image = np.full((height, width), rng.uniform(0, 1))
        mask = rng.random((height, width)) < rng.uniform(0.01, 0.3)
        image[mask] = rng.integers(0, 2, int(mask.sum()))
    else:
        image = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), rng.uniform(1, 20))
        image = (image - image.min()) / max(float(np.ptp(image)), 1e-6)
    return np.clip(image, 0, 1).astype(np.float32)


def render_blank(rng: np.random.Generator) -> np.ndarray:
    """One grey level, a faint noise, sometimes a small label or a thin frame."""
    height, width = int(rng.integers(32, 800)), int(rng.integers(32, 800))
    level = float(rng.choice([0.0, 1.0, rng.uniform(0, 1)]))
    image = np.full((height, width), level, np.float32) + rng.normal(0, rng.uniform(0, 0.02), (height, width))
    if rng.random() < 0.3:
        picture = Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8))
        draw = ImageDraw.Draw(picture)
        ink = 255 if level < 0.5 else 0
        if rng.random() < 0.5:
            draw.text((int(rng.integers(0, width // 2 + 1)), int(rng.integers(0, height // 2 + 1))),
                      _words(rng, 2), fill=ink, font=_font(int(rng.integers(8, 20))))
        else:
            draw.rectangle((2, 2, width - 3, height - 3), outline=ink, width=int(rng.integers(1, 4)))
        image = np.asarray(picture, np.float32) / 255.0
    return np.clip(image, 0, 1).astype(np.float32)


def render_shapes(rng: np.random.Generator) -> np.ndarray:
    """Clip art: filled ellipses, rectangles and polygons in random greys."""
    image, draw = _canvas(rng, rng.uniform(0, 1))
    width, height = image.size
    for _ in range(int(rng.integers(1, 12))):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        x1, y1 = x0 + rng.uniform(10, width), y0 + rng.uniform(10, height)
        fill, outline = int(rng.integers(0, 256)), int(rng.integers(0, 256))
        shape = rng.integers(0, 3)
        if shape == 0:
            draw.ellipse((x0, y0, x1, y1), fill=fill, outline=outline, width=int(rng.integers(1, 8)))
        elif shape == 1:
            draw.rectangle((x0, y0, x1, y1), fill=fill, outline=outline)
        else:
            draw.polygon([tuple(p) for p in rng.uniform(0, 1, (int(rng.integers(3, 8)), 2)) * (width, height)],
                         fill=fill)
    return np.asarray(image, np.float32) / 255.0


def render_photo(rng: np.random.Generator, photos: Sequence[str]) -> np.ndarray:
    """A random crop of one of `photos`, rotated or mirrored, at a random size."""
    image = _photo_cache(photos[int(rng.integers(len(photos)))])
    height, width = image.shape
    ch, cw = int(height * rng.uniform(0.4, 1.0)), int(width * rng.uniform(0.4, 1.0))
    y, x = int(rng.integers(0, height - ch + 1)), int(rng.integers(0, width - cw + 1))
    crop = np.rot90(image[y:y + ch, x:x + cw], int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    side = int(rng.integers(96, 700))
    scale = side / max(crop.shape)
    size = (max(2, round(crop.shape[1] * scale)), max(2, round(crop.shape[0] * scale)))
    return cv2.resize(np.ascontiguousarray(crop), size, interpolation=cv2.INTER_AREA)


_PHOTOS: dict[str, np.ndarray] = {}


def _photo_cache(name: str) -> np.ndarray:
    if name not in _PHOTOS:
        _PHOTOS[name] = photo_grey(name)
    return _PHOTOS[name]


def synthetic_negative(kind: str, rng: np.random.Generator, photos: Sequence[str] = TRAIN_PHOTOS) -> np.ndarray:
    """One image of `kind` (SYNTHETIC_KINDS) as grey (H, W) float32 in [0, 1]."""
    renderers: dict[str, Callable[[], np.ndarray]] = {
        "photo": lambda: render_photo(rng, photos),
        "document": lambda: render_document(rng),
        "dark_screenshot": lambda: render_document(rng, dark=True),
        "chart": lambda: render_chart(rng),
        "gradient": lambda: render_gradient(rng),
        "noise": lambda: render_noise(rng),
        "blank": lambda: render_blank(rng),
        "shapes": lambda: render_shapes(rng),
    }
    if kind not in renderers:
        raise ValueError(f"unknown synthetic kind {kind!r}; expected one of {SYNTHETIC_KINDS}")
    return np.clip(renderers[kind](), 0.0, 1.0).astype(np.float32)


def synthetic_negatives(n: int, seed: int, photos: Sequence[str] = TRAIN_PHOTOS,
                        kinds: Sequence[str] = SYNTHETIC_KINDS) -> tuple[list[np.ndarray], list[str]]:
    """n seeded images, kinds in turn (photos twice as often: the likeliest mistake) -> (pixels, kinds)."""
    rng = np.random.default_rng(seed)
    cycle = [k for k in kinds for _ in range(2 if k == "photo" else 1)]
    names = [cycle[i % len(cycle)] for i in range(n)]
    return [synthetic_negative(kind, rng, photos) for kind in names], names


# --- scanner-style variation -------------------------------------------------------------

def vary(work: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A work image -> a randomly varied copy, as another scanner or export would give it.

    Applied alike to MRI and to negatives. Window and gamma (another contrast or display
    setting), zoom/shift/rotation and black borders (another framing), blur or low
    resolution, noise, corner text (scanner annotations), flips and quarter turns.
    """
    side = work.shape[0]
    image = np.asarray(work, np.float32).copy()
    if rng.random() < 0.5:  # window
        low, high = rng.uniform(0.0, 0.15), rng.uniform(0.6, 1.0)
        image = np.clip((image - low) / (high - low), 0, 1)
    if rng.random() < 0.3:  # a flat display: lifted black, dimmed white
        image = rng.uniform(0.0, 0.12) + image * rng.uniform(0.6, 1.0)
    if rng.random() < 0.5:
        image = np.clip(image, 0, 1) ** rng.uniform(0.6, 1.7)
    if rng.random() < 0.5:  # zoom, shift, rotation
        angle = rng.uniform(-20, 20)
        scale = rng.uniform(0.7, 1.25)
        matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, scale)
        matrix[:, 2] += rng.uniform(-0.08, 0.08, 2) * side
        image = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderValue=0.0)
    if rng.random() < 0.2:
        if rng.random() < 0.5:
            image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.2))
        else:
            low = int(rng.integers(40, 100))
            image = cv2.resize(cv2.resize(image, (low, low), interpolation=cv2.INTER_AREA), (side, side),
                               interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.25:
        image = image + rng.normal(0, rng.uniform(0.005, 0.04), image.shape).astype(np.float32)
    if rng.random() < 0.2:  # scanner annotations in a corner
        ink = np.zeros((side, side), np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            text = "".join(rng.choice(list(string.ascii_uppercase + string.digits + ":./ "), int(rng.integers(3, 10))))
            origin = (int(rng.integers(0, side // 3)), int(rng.choice([rng.integers(8, 24), rng.integers(side - 8, side)])))
            cv2.putText(ink, text, origin, cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(0.2, 0.4), 255, 1, cv2.LINE_AA)
        image = np.maximum(image, ink.astype(np.float32) * (rng.uniform(0.5, 1.0) / 255.0))
    if rng.random() < 0.1:  # a light frame or side bars (an export on a white page)
        level = rng.uniform(0.6, 1.0)
        if rng.random() < 0.5:
            inner = max(8, int(side * rng.uniform(0.6, 0.95)))
            canvas = np.full((side, side), level, np.float32)
            top, left = (int(rng.integers(0, side - inner + 1)) for _ in range(2))
            canvas[top:top + inner, left:left + inner] = cv2.resize(image, (inner, inner), interpolation=cv2.INTER_AREA)
            image = canvas
        else:
            bar = max(1, int(side * rng.uniform(0.03, 0.2)))
            image = image.copy()
            image[:, :bar] = level
            image[:, side - bar:] = level
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if rng.random() < 0.1:
        image = np.rot90(image, int(rng.integers(1, 4)))
    return np.ascontiguousarray(np.clip(image, 0, 1), dtype=np.float32)


# --- the network -------------------------------------------------------------------------

def build_network(size: int = bc.INPUT_SIZE, filters: Sequence[int] = (16, 32, 64, 64), seed: int = SEED):
    """(size, size, 2) -> sigmoid P(not a brain MRI slice): four conv blocks, global average pooling."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, bc.CHANNELS), name="views")
    x = inputs
    for i, n in enumerate(filters):
        x = layers.Conv2D(n, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i < len(filters) - 1:
            x = layers.MaxPooling2D(name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.2, seed=seed, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="not_mri")(x)
    return keras.Model(inputs, outputs, name="brain_mri_check")


# --- fitting -----------------------------------------------------------------------------

@dataclass
class TrainingSet:
    inputs: np.ndarray  # (N, S, S, 2) float32
    labels: np.ndarray  # (N,) float32, 1 = not MRI
    kinds: list[str]  # MRI, HEAD_CT or a synthetic kind, per sample
    counts: dict[str, int] = field(default_factory=dict)


def mri_copies(strata: Sequence[str], floor: int = MRI_STRATUM_FLOOR) -> np.ndarray:
    """Each training MRI slice's stratum -> how many times it is seen an epoch: ceil(floor / n)
    for a stratum of n slices (at least once)."""
    _, inverse, sizes = np.unique(np.asarray(list(strata), dtype=str), return_inverse=True, return_counts=True)
    return np.maximum(1, np.ceil(floor / sizes[inverse])).astype(int) if len(sizes) else np.zeros(0, int)


def training_set(mri_works: np.ndarray, ct_works: np.ndarray, synthetic_works: Sequence[np.ndarray],
                 synthetic_kinds: Sequence[str], seed: int = SEED, ct_copies: int = CT_COPIES,
                 vary_share: float = VARY_SHARE, size: int = bc.INPUT_SIZE,
                 mri_strata: Sequence[str] | None = None, mri_floor: int = MRI_STRATUM_FLOOR) -> TrainingSet:
    """Work images of each kind -> network inputs: MRI and synthetic varied with `vary_share`,
    each CT `ct_copies` times (the first as is), each MRI slice of a stratum under `mri_floor`
    slices `mri_copies` times (the first varied with `vary_share`, the rest varied)."""
    rng = np.random.default_rng(seed)
    works, labels, kinds = [], [], []
    copies = mri_copies(mri_strata, mri_floor) if mri_strata is not None else np.ones(len(mri_works), int)
    for work, n in zip(mri_works, copies):
        for copy in range(n):
            works.append(vary(work, rng) if copy > 0 or rng.random() < vary_share else work)
            labels.append(0.0)
            kinds.append(MRI)
    for work in ct_works:
        for copy in range(ct_copies):
            works.append(work if copy == 0 else vary(work, rng))
            labels.append(1.0)
            kinds.append(HEAD_CT)
    for work, kind in zip(synthetic_works, synthetic_kinds):
        works.append(vary(work, rng) if rng.random() < vary_share else work)
        labels.append(1.0)
        kinds.append(kind)
    counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
    return TrainingSet(views_of(works, size), np.array(labels, np.float32), kinds, counts)


def fit_network(data: TrainingSet, epochs: int = EPOCHS, seed: int = SEED, batch_size: int = BATCH_SIZE,
                learning_rate: float = LEARNING_RATE, on_epoch: Callable[[int, dict], None] | None = None):
    """Train a fresh `build_network` on `data` (classes weighted to equal shares) -> keras model."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_network(data.inputs.shape[1], seed=seed)
    steps = epochs * int(np.ceil(len(data.labels) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps), alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy", metrics=["accuracy"])
    positives = float(data.labels.mean()) if len(data.labels) else 0.5
    weights = np.where(data.labels > 0.5, 0.5 / max(positives, 1e-6), 0.5 / max(1 - positives, 1e-6))
    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e, dict(logs or {})))] \
        if on_epoch else []
    model.fit(data.inputs, data.labels, sample_weight=weights.astype(np.float32), batch_size=batch_size,
              epochs=epochs, shuffle=True, verbose=0, callbacks=callbacks)
    return model


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return float(np.log(p / (1 - p)))


def choose_threshold(mri_scores: np.ndarray, strata: Sequence[str], max_share: float = MAX_MRI_FLAGGED_SHARE,
                     margin_logit: float = THRESHOLD_MARGIN_LOGIT, min_stratum: int = MIN_RULE_STRATUM,
                     bounds: tuple[float, float] = THRESHOLD_RANGE) -> tuple[float, dict]:
    """Validation MRI scores and their strata -> (threshold, how it was found), by `RULE`.

    Strata under `min_stratum` slices are pooled into one. Per stratum of n slices, the bound
    is the (floor(max_share * n) + 1)-th highest score: a threshold above it flags at most
    floor(max_share * n) of them. The threshold is the highest bound plus `margin_logit`,
    clipped to `bounds`.
    """
    mri_scores = np.asarray(mri_scores, np.float64)
    strata = np.asarray(list(strata), dtype=object)
    if len(mri_scores) == 0 or len(mri_scores) != len(strata):
        raise ValueError(f"need one stratum per validation MRI score, got {len(mri_scores)} scores, {len(strata)} strata")
    names, sizes = np.unique(strata.astype(str), return_counts=True)
    small = set(names[sizes < min_stratum].tolist())
    pooled = np.array([SMALL_STRATA if str(s) in small else str(s) for s in strata])
    per_stratum = {}
    for name in sorted(set(pooled.tolist())):
        scores = np.sort(mri_scores[pooled == name])[::-1]
        allowed = int(np.floor(max_share * len(scores)))
        per_stratum[name] = {"n": int(len(scores)), "allowed": allowed,
                             "bound": float(scores[allowed]) if allowed < len(scores) else 0.0}
        if name == SMALL_STRATA:
            per_stratum[name]["strata"] = sorted(small)
    binding = max(per_stratum, key=lambda k: per_stratum[k]["bound"])
    bound = per_stratum[binding]["bound"]
    threshold = float(np.clip(1.0 / (1.0 + np.exp(-(_logit(bound) + margin_logit))), *bounds))
    return threshold, {"bound": bound, "binding_stratum": binding, "per_stratum": per_stratum}


def figures(scores: np.ndarray, groups: Sequence[str], threshold: float) -> dict[str, dict]:
    """Scores and a group name each -> per group (sorted) the share flagged, with its 95 % Wilson interval."""
    scores, groups = np.asarray(scores), np.asarray(list(groups))
    out = {}
    for name in sorted(set(groups.tolist())):
        flagged = int((scores[groups == name] >= threshold).sum())
        out[name] = rate_with_interval(flagged, int((groups == name).sum()))
    return out


def evaluate(keras_model, inputs: np.ndarray, kinds: Sequence[str], strata: Sequence[str],
             threshold: float) -> dict:
    """Flag rates of one split: MRI overall and per stratum, head CT, each synthetic kind."""
    scores = bc.probabilities(keras_model, inputs)
    kinds, strata = np.asarray(list(kinds)), np.asarray(list(strata))
    mri = kinds == MRI
    negatives = ~mri & (kinds != HEAD_CT)
    result = {
        "mri_flagged": rate_with_interval(int((scores[mri] >= threshold).sum()), int(mri.sum())),
        "mri_flagged_per_stratum": figures(scores[mri], strata[mri], threshold),
        "head_ct_flagged": rate_with_interval(int((scores[kinds == HEAD_CT] >= threshold).sum()),
                                              int((kinds == HEAD_CT).sum())),
        "head_ct_flagged_per_stratum": figures(scores[kinds == HEAD_CT], strata[kinds == HEAD_CT], threshold),
        "synthetic_flagged": rate_with_interval(int((scores[negatives] >= threshold).sum()), int(negatives.sum())),
        "synthetic_flagged_per_kind": figures(scores[negatives], kinds[negatives], threshold),
    }
    return {"scores": scores, "figures": result}


# --- the whole fit -----------------------------------------------------------------------

@dataclass
class FitResult:
    keras_model: object
    threshold: float
    info: dict  # what check.json holds besides format, weights and created
    validation_scores: np.ndarray = field(repr=False, default=None)


def fit_check(data_root: str | Path, manifest_path: str | Path, seed: int = SEED, epochs: int = EPOCHS,
              synthetic_counts: tuple[int, int] = (SYNTHETIC_TRAIN, SYNTHETIC_VAL),
              limit_per_split: int | None = None, command: str = "",
              progress: Callable[[str], None] = log.info, mri_floor: int = MRI_STRATUM_FLOOR) -> FitResult:
    """Train on the manifest's train split, choose the threshold on its val split.

    `limit_per_split` (tests) keeps that many MRI and that many CT images of each split,
    picked with `seed`; `mri_floor` is `training_set`'s. Returns the network, threshold and the figures check.json records.
    """
    import keras

    started = time.monotonic()
    say = progress
    progress = lambda line: say(f"[{time.monotonic() - started:5.0f} s] {line}")  # noqa: E731
    manifest = splits.read_manifest(manifest_path)
    items = manifest_items(data_root, manifest)
    if not manifest.get("not_mri"):
        raise DatasetInvalid(f"{manifest_path} has no not_mri section: the check needs head CTs to learn from; "
                             f"rebuild the manifest with bench/make_split.py (without --no-not-mri).")
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[Item]] = {}
    for part in ("train", "val"):
        chosen[part] = []
        for kind in (MRI, HEAD_CT):
            pool = [i for i in items if i.split == part and i.kind == kind]
            if limit_per_split is not None and len(pool) > limit_per_split:
                pool = [pool[j] for j in sorted(rng.choice(len(pool), limit_per_split, replace=False))]
            chosen[part] += pool
    progress(f"decoding {len(chosen['train'])} training and {len(chosen['val'])} validation images")
    train_works = load_work_images([i.path for i in chosen["train"]])
    train_kinds = np.array([i.kind for i in chosen["train"]])
    n_train_syn, n_val_syn = synthetic_counts
    syn_pixels, syn_kinds = synthetic_negatives(n_train_syn, seed + 1, TRAIN_PHOTOS)
    syn_works = [bc.work_image(p) for p in syn_pixels]
    train_mri_strata = [i.stratum for i in chosen["train"] if i.kind == MRI]
    data = training_set(train_works[train_kinds == MRI], train_works[train_kinds == HEAD_CT], syn_works,
                        syn_kinds, seed=seed, mri_strata=train_mri_strata, mri_floor=mri_floor)
    del train_works, syn_works, syn_pixels
    progress(f"training on {len(data.labels)} samples ({data.counts}) for {epochs} epochs")
    model = fit_network(data, epochs=epochs, seed=seed,
                        on_epoch=lambda e, logs: progress(f"epoch {e + 1}/{epochs}: loss {logs.get('loss', 0):.4f}"))
    train_counts = data.counts
    del data
    val_inputs = views_of(load_work_images([i.path for i in chosen["val"]]))
    val_kinds = [i.kind for i in chosen["val"]]
    val_strata = [i.stratum for i in chosen["val"]]
    val_syn, val_syn_kinds = synthetic_negatives(n_val_syn, seed + 2, TRAIN_PHOTOS)
    if val_syn:
        val_inputs = np.concatenate([val_inputs, bc.prepare_check_input(val_syn)])
        val_kinds += val_syn_kinds
        val_strata += val_syn_kinds
    scores = bc.probabilities(model, val_inputs)
    mri = np.array(val_kinds) == MRI
    threshold, found = choose_threshold(scores[mri], np.array(val_strata)[mri])
    val = evaluate(model, val_inputs, val_kinds, val_strata, threshold)["figures"]
    progress(f"threshold {threshold:.4f}: validation MRI flagged {val['mri_flagged']['rate']}, "
             f"head CT flagged {val['head_ct_flagged']['rate']}")
    info = {
        "input_size": int(val_inputs.shape[1]),
        "work_side": bc.WORK_SIDE,
        "views": ["whole image, letterboxed with black, as decoded", "head crop (preprocess.brain_crop_box), "
                  "squared, stretched to [0, 1] by its 0.5/99.5 percentiles"],
        "output": "probability that the slice is NOT a brain MRI slice like the training ones",
        "threshold": threshold,
        "rule": RULE,
        "threshold_search": found,
        "validation": val,
        "training": {"seed": seed, "epochs": epochs, "samples": train_counts, "ct_copies": CT_COPIES,
                     "mri_stratum_floor": mri_floor,
                     "vary_share": VARY_SHARE, "photos": list(TRAIN_PHOTOS), "held_out_photos": list(HELD_OUT_PHOTOS),
                     "synthetic_kinds": list(SYNTHETIC_KINDS), "limit_per_split": limit_per_split,
                     "seconds": round(time.monotonic() - started, 1), "keras": keras.__version__},
        "manifest": {"path": Path(manifest_path).as_posix(), "hash": splits.manifest_hash(manifest)},
        "command": command,
    }
    return FitResult(model, threshold, info, scores)


# --- the package -------------------------------------------------------------------------

def _pct(figure: Mapping) -> str:
    if not figure.get("n"):
        return "n/a"
    return (f"{figure['successes']}/{figure['n']} = {100 * figure['rate']:.1f} % "
            f"(95 % CI {100 * figure['low']:.1f} to {100 * figure['high']:.1f} %)")


def _samples(training: Mapping) -> str:
    samples = dict(training["samples"])
    mri, ct = samples.pop(MRI, 0), samples.pop(HEAD_CT, 0)
    floor = training.get("mri_stratum_floor")
    mri_text = f"{mri:,} MRI samples (each source and plane seen at least {floor:,} times)" if floor else f"{mri:,} MRI slices"
    return (f"{mri_text}, {ct:,} head CT samples ({ct // training['ct_copies']:,} CTs x {training['ct_copies']}), "
            f"{sum(samples.values()):,} made-up negatives")


def card_text(info: Mapping) -> str:
    """CARD.md: what the check is for, its figures with 95 % Wilson intervals, its limits."""
    lines = [
        "# Brain-MRI check (`brain-mri`)",
        "",
        "**What it is for.** Before any tumor classifier reads a slice, this small network says whether the",
        "slice looks like a brain MRI slice like the training ones. The tumor classifiers only know brain MRI:",
        "shown a head CT or a photo they still answer with a tumor type. A slice this check flags gets the",
        "verdict `cannot_read` (no tumor call). It does not depend on which classifier is active, so a model a",
        "clinic trains on its own folders (no CT examples) still refuses a CT.",
        "",
        f"**How it decides.** Input: two {info['input_size']} px grey views of the slice (the whole image letterboxed,",
        "and the head cropped and stretched); colour never reaches it. Output: the probability that the slice is",
        f"not a brain MRI slice; flagged at >= {info['threshold']:.4f}. Threshold rule: {info['rule']}.",
        "",
        f"**Data.** Split manifest `{info['manifest']['path']}` (images hash `{info['manifest']['hash'][:16]}...`):",
        "brain MRI of five public sets (kaggle-brain-mri, brain-tumor-mri-224, figshare-boxes, brisc2025 in three",
        "planes, br35h-extra) as positives; head CTs (not-mri/head-ct, split by scan) and images made in code",
        "(photos from scikit-image, rendered text pages and dark screenshots, charts, gradients, noise, blank",
        f"frames, clip art) as negatives. Trained on the train split only ({_samples(info['training'])}), seed",
        f"{info['training']['seed']}, {info['training']['epochs']} epochs. {len(FILED_AS_MRI_HEAD_CT)} images the public MRI "
        "sets file as MRI are head CTs (checked by eye); they train and count as head CT (`head-ct-filed-as-mri`).",
        "Photos used in training: " + ", ".join(info["training"]["photos"]) + "; never used (test only): "
        + ", ".join(info["training"]["held_out_photos"]) + ".",
        "",
    ]
    for name, key in (("Validation", "validation"), ("Test", "test")):
        figs = info.get(key)
        if not figs:
            continue
        lines += [f"## {name} figures ({'threshold chosen here' if key == 'validation' else 'held out'})", "",
                  "| what | flagged as not MRI |", "|---|---|",
                  f"| brain MRI, all | {_pct(figs['mri_flagged'])} |"]
        lines += [f"| brain MRI, {s} | {_pct(f)} |" for s, f in figs["mri_flagged_per_stratum"].items()]
        if "mri_flagged_as_filed" in figs:
            lines += [f"| brain MRI as the public sets file it (their head CTs counted as MRI) | "
                      f"{_pct(figs['mri_flagged_as_filed'])} |"]
        lines += [f"| head CT, all | {_pct(figs['head_ct_flagged'])} |"]
        lines += [f"| head CT, {s} | {_pct(f)} |" for s, f in figs.get("head_ct_flagged_per_stratum", {}).items()]
        lines += [f"| made-up negatives, all | {_pct(figs['synthetic_flagged'])} |"]
        lines += [f"| made-up: {k} | {_pct(f)} |" for k, f in figs["synthetic_flagged_per_kind"].items()]
        if key == "test" and "held_out_photos_flagged" in figs:
            lines += [f"| photos never trained on ({', '.join(info['training']['held_out_photos'])}) | "
                      f"{_pct(figs['held_out_photos_flagged'])} |"]
        lines.append("")
    lines += [
        "## Limits",
        "",
        "- It knows brain MRI from five public sets (mostly T1, T1 with contrast, some T2, web-exported 8-bit",
        "  slices). MRI of other contrasts (FLAIR, DWI, SWI), children, post-operative heads or unusual exports",
        "  were never measured: some may be flagged. Most at risk, from the slices it flags: photographed film",
        "  prints of contrast T1 with a bright scalp ring and annotations, and low-contrast T2 (the Br35H style).",
        "  A flagged real MRI is a `cannot_read`, never a wrong call.",
        "- Its CT examples are axial head CTs from three public sets (brain and bone windows, few scans). CT of",
        "  other body parts, other windows, X-rays, ultrasound, PET and MRI of other body parts were never seen;",
        "  they are likely but not certain to be flagged.",
        "- Photos, documents, charts, noise and blank frames were made in code; real uploads of such things",
        "  vary more. A photo or screenshot of an MRI slice on a screen may pass as MRI, and so does a drawn",
        "  head phantom (scikit-image's Shepp-Logan phantom; bench/results_brain_check.json has its probability).",
        "- One 2-D slice at a time; the whole study is for the reader to review.",
        "",
        f"Rebuild: `{info.get('command') or 'python bench/train_brain_check.py'}`.",
        "",
    ]
    return "\n".join(lines)


def _inference_copy(keras_model):
    """The same network and weights, uncompiled: the package holds no optimizer state."""
    import keras

    copy = keras.Model.from_config(keras_model.get_config())  # clone_model would keep the optimizer
    copy.set_weights(keras_model.get_weights())
    return copy


def write_check_package(out: str | Path, keras_model, info: Mapping) -> Path:
    """Write check.keras, check.json and CARD.md into a temp folder beside `out`, then rename it to `out`.

    An existing package at `out` is moved aside first and removed after the rename, so a
    reader finds the old package or the new one (or, for an instant, none: `load_brain_check`
    then says there is no check). Returns `out`.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=TEMP_PREFIX))
    old = None
    try:
        _inference_copy(keras_model).save(staging / bc.CHECK_MODEL_FILE)
        full = {"format": bc.CHECK_FORMAT, "format_version": bc.CHECK_FORMAT_VERSION, "name": "brain-mri",
                "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
                **info, "weights_sha256": bc.weights_sha256(staging / bc.CHECK_MODEL_FILE)}
        (staging / bc.CHECK_INFO_FILE).write_text(json.dumps(full, indent=1) + "\n", encoding="utf-8")
        (staging / bc.CHECK_CARD_FILE).write_text(card_text(full), encoding="utf-8")
        for file in staging.iterdir():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        os.chmod(staging, 0o755)
        for file in staging.iterdir():
            os.chmod(file, 0o644)
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=TEMP_PREFIX))
            os.rename(out, old / "old")
        os.rename(staging, out)
    except BaseException:
        if old is not None and (old / "old").exists() and not out.exists():
            os.rename(old / "old", out)  # put the old package back
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out
