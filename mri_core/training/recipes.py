"""One recipe per architecture, and the settings of one training run.

A `Recipe` holds everything that differs between architectures: the network, its Grad-CAM
layer, how a package of it reads a slice (model.json "reading"), the defaults a user starts
from, the augmentation, the learning-rate schedule and the operating-point rule. Nothing
outside this module asks which architecture it has: it asks the recipe. `TrainSettings`
are what a user may set for one run; a value left unset is the recipe's. Importing this
module imports no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mri_core.io.errors import SettingsInvalid
from mri_core.package import registry
from mri_core.training import augment, networks

MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 512
STRATEGIES = ("auto", "mirrored", "multiworker")
SPLITS = ("grouped", "naive")  # grouped: near-duplicates kept together; naive: per image (as the paper)
# the TrainSettings a recipe gives a value for when the user leaves them unset
RECIPE_DEFAULTS = ("epochs", "image_size", "batch_size", "learning_rate", "source_balance", "box_weight",
                   "mask_weight", "group_sampling")


def constant_rate(learning_rate: float, total_steps: int) -> float:
    return learning_rate


def cosine_decay(learning_rate: float, total_steps: int):
    """Decays to 2 % of the rate over the run, so that the last epochs settle."""
    import keras

    return keras.optimizers.schedules.CosineDecay(learning_rate, total_steps, alpha=0.02)


@dataclass(frozen=True)
class Recipe:
    """How one architecture is built, trained, calibrated and read."""

    name: str  # model.json "architecture"
    label: str  # what a page shows
    builder: Callable[..., Any]  # (image size, number of classes, segment=bool) -> keras.Model
    gradcam_layer: str
    mirror_average: bool  # read a slice as the mean over it and its left-right mirror
    heatmap_sigma: float  # Gaussian over the heatmap, in model-input pixels
    epochs: int
    batch_size: int
    learning_rate: float
    image_size: int
    source_balance: float  # see TrainSettings
    box_weight: float  # see TrainSettings
    box_loss: bool  # the Grad-CAM layer feeds `logits` through global pooling, as the box loss needs
    mask_weight: float  # see TrainSettings
    segments: bool  # the network can have a segmentation output (a decoder on its encoder)
    group_sampling: bool  # see TrainSettings
    augment: Callable | None  # (images, masks, seeds) -> (images, masks); None: images as they are
    schedule: Callable[[float, int], Any]  # (learning rate, total steps) -> what the optimizer takes
    target_sensitivity: float | None  # operating point (calibrate); None: the plain 0.5
    # (miss rate per tumor source, healthy-called-tumor rate per (source, plane), and overall):
    # the uncertainty band chosen on validation (calibrate.choose_band); None: no band
    band_rule: tuple[float, float, float] | None = None

    @property
    def reading(self) -> dict:
        """model.json "reading": how a package of this recipe reads a slice."""
        return {"mirror_average": self.mirror_average, "heatmap_sigma": self.heatmap_sigma}

    @property
    def defaults(self) -> dict:
        """The TrainSettings values this recipe gives when the user leaves them unset."""
        return {key: getattr(self, key) for key in RECIPE_DEFAULTS}

RECIPES = {recipe.name: recipe for recipe in (
    # The seed paper's CNN, trained and read as published: no augmentation, a constant
    # learning rate, the argmax (0.5) as operating point, no reading aids.
    Recipe(name="paper", label="Paper CNN (two conv layers, as published)",
           builder=networks.build_paper, gradcam_layer="conv2", mirror_average=False, heatmap_sigma=0.0,
           epochs=30, batch_size=16, learning_rate=1e-3, image_size=128, source_balance=0.0,
           box_weight=0.0, box_loss=False, mask_weight=0.0, segments=False, group_sampling=False,
           augment=None, schedule=constant_rate, target_sensitivity=None),
    # Ours. Reading aids: on validation (default-4class@3) the mirror average and a 2-px
    # heatmap smoothing together moved the pointing game from 0.845 to 0.881 and named-class
    # accuracy from 0.949 to 0.963. It operates at high sensitivity.
    Recipe(name="default", label="Default (compact residual CNN, augmented, box-guided heatmap)",
           builder=networks.build_default, gradcam_layer="last_conv", mirror_average=True, heatmap_sigma=2.0,
           epochs=36, batch_size=32, learning_rate=2e-3, image_size=128, source_balance=0.5,
           box_weight=1.5, box_loss=True, mask_weight=1.0, segments=True, group_sampling=True,
           augment=augment.scanner_variation, schedule=cosine_decay,
           target_sensitivity=0.98, band_rule=(0.01, 0.03, 0.02)),
)}


def recipe_for(arch: str) -> Recipe:
    if arch not in RECIPES:
        raise SettingsInvalid(f"Unknown architecture {arch!r}; choose {' or '.join(RECIPES)}.")
    return RECIPES[arch]


def default_arch() -> str:
    """The architecture of the shipped default model (assets/models/DEFAULT)."""
    return registry.default_shipped().info["architecture"]


def build(arch: str, image_size: int, n_classes: int, segment: bool = False):
    """Build architecture `arch` for (image_size, image_size, 1) input and n_classes outputs
    (and, with `segment`, a second output: the (N, S, S, 1) tumor mask)."""
    recipe = recipe_for(arch)
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise SettingsInvalid(
            f"Image size {image_size} px is out of range; use {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} px."
        )
    if n_classes < 2:
        raise SettingsInvalid(f"A classifier needs at least 2 classes, got {n_classes}.")
    if segment and not recipe.segments:
        raise SettingsInvalid(f"The {arch} architecture has no segmentation output; set the mask weight to 0.")
    return recipe.builder(image_size, n_classes, segment=segment)


@dataclass(frozen=True)
class TrainSettings:
    """What the user may set for one run. A value left None is the recipe's default, and
    `arch` None is the shipped default model's architecture: `TrainSettings(arch="paper",
    epochs=2)` is the paper's recipe for two epochs."""

    arch: str | None = None
    epochs: int | None = None
    image_size: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    name: str | None = None
    strategy: str = "auto"
    split: str = "grouped"  # see SPLITS
    manifest: str | None = None  # a committed split manifest to follow instead of splitting anew
    # loss weight of each (source folder, class) stratum: (median stratum size / its size) ** this;
    # 0 = every image counts the same. Raises the few tumors shown in a rare source's style.
    source_balance: float | None = None
    # weight of the box loss: on images with a tumor box (a root's boxes.csv), the class
    # evidence map (the Grad-CAM layer x the logits' weights) is pushed inside the box.
    box_weight: float | None = None
    # weight of the mask loss (binary cross-entropy + Dice) on images with a tumor outline (a
    # root's masks/ folder) and on healthy images (an empty outline); > 0 adds a segmentation
    # output when the data has outlines. 0 = a classifier only.
    mask_weight: float | None = None
    # each epoch draws one image per near-duplicate group (the same slice saved in several sets
    # counts once): shorter epochs, and no slice weighs more for being copied
    group_sampling: bool | None = None
    # a flat folder of images that are not brain MRI (head CT ...): measured, never a class
    not_mri: str | None = None

    def __post_init__(self):
        if self.arch is None:
            object.__setattr__(self, "arch", default_arch())
        unset = [key for key in RECIPE_DEFAULTS if getattr(self, key) is None]
        for key in unset:
            object.__setattr__(self, key, recipe_for(self.arch).defaults[key])

    @property
    def recipe(self) -> Recipe:
        return recipe_for(self.arch)

    def check(self) -> "TrainSettings":
        recipe = recipe_for(self.arch)
        if not 1 <= self.epochs <= 500:
            raise SettingsInvalid(f"Epochs must be between 1 and 500, got {self.epochs}.")
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise SettingsInvalid(f"Image size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} px, got {self.image_size}.")
        if not 1 <= self.batch_size <= 1024:
            raise SettingsInvalid(f"Batch size must be between 1 and 1024, got {self.batch_size}.")
        if not 0.0 < self.learning_rate <= 1.0:
            raise SettingsInvalid(f"Learning rate must be in (0, 1], got {self.learning_rate}.")
        if self.strategy not in STRATEGIES:
            raise SettingsInvalid(f"Unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}.")
        if self.split not in SPLITS:
            raise SettingsInvalid(f"Unknown split {self.split!r}; choose one of {', '.join(SPLITS)}.")
        if not 0.0 <= self.source_balance <= 1.0:
            raise SettingsInvalid(f"Source balance must be between 0 and 1, got {self.source_balance}.")
        if not 0.0 <= self.box_weight <= 10.0:
            raise SettingsInvalid(f"Box weight must be between 0 and 10, got {self.box_weight}.")
        if not 0.0 <= self.mask_weight <= 10.0:
            raise SettingsInvalid(f"Mask weight must be between 0 and 10, got {self.mask_weight}.")
        if self.mask_weight and not recipe.segments:
            raise SettingsInvalid(f"The {self.arch} architecture has no segmentation output; set the mask weight to 0.")
        if self.box_weight and not recipe.box_loss:
            raise SettingsInvalid(f"The {self.arch} architecture cannot learn from tumor boxes; set the box weight to 0.")
        if self.name is not None:
            registry.check_model_name(self.name)
        return self


def settings_for(arch: str | None = None, **given) -> TrainSettings:
    """TrainSettings for `arch` (None: the shipped default's), the recipe's defaults where `given` is None."""
    recipe = recipe_for(arch or default_arch())
    return TrainSettings(arch=recipe.name, **{key: value for key, value in given.items() if value is not None})
