"""The activation rule: when a model package may become the active one without a second confirmation.

A model is activated at once only when every check below passes; otherwise
`registry.activate` refuses with `NeedsConfirmation` (its message lists the reasons) unless
the caller confirms, the Models and Train pages show the reasons and ask for an explicit
confirmation, `python -m mri_core train --activate` leaves the model inactive (`--activate-anyway`
confirms), and the reading pages name a model other than the shipped default in a banner.

The rule, all from the package itself (model.json and its files):
  1. out-of-distribution statistics: `ood.npz` present and matching model.json's `ood`
     section (its sha256); without them only the cheap image checks flag scans unlike the
     training images;
  2. test figures in model.json (`test_metrics`), with at least MIN_TEST_PER_CLASS test images
     in every output class (fewer make the figures below noise: 3 images per class give
     accuracy in steps of 17 %);
  3. test sensitivity at the model's threshold at least MIN_SENSITIVITY (a screening model that
     misses tumors is worse than none) and test accuracy at least MIN_ACCURACY;
  4. calibration: test ECE of the tumor probability at most MAX_ECE; the same bound decides
     whether the pages call a probability calibrated (`is_calibrated`).
There is no floor on specificity: the shipped default trades it for sensitivity on purpose.
The shipped default passes (tests/package/test_activation.py checks it); the shipped
`paper-kaggle` reproduction does not (37 test images, no ood statistics) and is guarded too.
Never imports streamlit, tensorflow, or the registry (which imports this).
"""

from __future__ import annotations

import os

from mri_core.io.errors import ModelInvalid
from mri_core.package.info import MIN_OOD_FIT_IMAGES as OOD_MIN_IMAGES
from mri_core.package.info import OOD_FILE, OOD_INFO_KEY, ood_stats_match  # noqa: F401 (names of the rule)

MIN_TEST_PER_CLASS = 20
MIN_SENSITIVITY = 0.80
MIN_ACCURACY = 0.70
MAX_ECE = 0.05


class NeedsConfirmation(ModelInvalid):
    """A model failed the activation rule and was not activated; `problems` says why."""

    def __init__(self, ref: str, problems: list[str]):
        self.ref, self.problems = ref, list(problems)
        super().__init__(refusal_words(ref, problems))


def tumor_ece(metrics: dict | None) -> float | None:
    """The test ECE of the tumor probability (else of the top class), or None when not recorded."""
    metrics = metrics or {}
    value = metrics.get("ece_tumor", metrics.get("ece"))
    return None if value is None else float(value)


def calibrated(ece: float | None) -> bool:
    """Whether probabilities with this test ECE may be called calibrated: it is known and at most MAX_ECE."""
    return ece is not None and ece <= MAX_ECE


def is_calibrated(metrics: dict | None) -> bool:
    """`calibrated` for a model's test_metrics."""
    return calibrated(tumor_ece(metrics))


def images_per_class(info: dict) -> dict[str, int] | None:
    """Test images per output class, from test_metrics' per_class supports (else its confusion
    matrix rows); None when neither is recorded."""
    metrics = info.get("test_metrics") or {}
    classes = list(info.get("class_names") or [])
    per_class = metrics.get("per_class") or {}
    if per_class:
        return {name: int((per_class.get(name) or {}).get("support") or 0) for name in classes}
    confusion = metrics.get("confusion_matrix") or {}
    if confusion.get("labels") and confusion.get("matrix"):
        rows = dict(zip(confusion["labels"], confusion["matrix"]))
        return {name: int(sum(rows.get(name, []))) for name in classes}
    return None


def has_ood_stats(path: str | os.PathLike, info: dict) -> bool:
    """Whether the package holds out-of-distribution statistics the reading will use."""
    return ood_stats_match(path, info)


def problems(path: str | os.PathLike, info: dict) -> list[str]:
    """Why the package at `path` (its model.json content `info`) should not be activated without a
    confirmation, in plain words; empty when it passes the rule."""
    found = []
    if not has_ood_stats(path, info):
        found.append("it has no out-of-distribution statistics (ood.npz matching its model.json), so scans unlike "
                     "its training images are flagged only by the cheap image checks; training fits them when it "
                     f"has at least {OOD_MIN_IMAGES} training and {OOD_MIN_IMAGES} validation images, "
                     "`python bench/fit_ood.py FOLDER` fits them for a saved package")
    metrics = info.get("test_metrics") or {}
    if not metrics:
        return found + ["its model.json records no test figures, so nothing says how well it reads scans"]
    counts = images_per_class(info)
    if counts is None:
        found.append("its model.json does not record how many test images each class had")
    elif short := {name: n for name, n in counts.items() if n < MIN_TEST_PER_CLASS}:
        listed = ", ".join(f"{n} {name}" for name, n in short.items())
        found.append(f"its test set holds only {listed} image(s); at least {MIN_TEST_PER_CLASS} per class are "
                     "needed before its test figures mean anything: train on more images")
    for key, floor, what in (("sensitivity", MIN_SENSITIVITY, "it would miss tumors"),
                             ("accuracy", MIN_ACCURACY, "it is often wrong")):
        value = metrics.get(key)
        if value is None:
            found.append(f"its model.json records no test {key}")
        elif float(value) < floor:
            found.append(f"its test {key} is {float(value):.1%}, below the {floor:.0%} floor: {what}")
    ece = tumor_ece(metrics)
    if ece is None:
        found.append("its model.json records no calibration error (ECE)")
    elif ece > MAX_ECE:
        found.append(f"its probabilities are poorly calibrated: on test scans, stated and observed tumor rates "
                     f"differ by {ece:.1%} on average (ECE), more than {MAX_ECE:.0%}")
    return found


def refusal_words(ref: str, found: list[str]) -> str:
    """The message of a refused activation: the reasons, and how to go ahead anyway."""
    return (f"{ref} was not activated: " + "; ".join(found) + ". Activate it only after an explicit "
            "confirmation (Models page: tick the box; command line: --activate-anyway).")


def check_words(ref: str, found: list[str]) -> str:
    """What a page shows before offering the confirmation: the reasons as a Markdown list."""
    return (f"**{ref} does not pass the activation checks** (at least {MIN_TEST_PER_CLASS} test images per class, "
            f"sensitivity ≥ {MIN_SENSITIVITY:.0%}, accuracy ≥ {MIN_ACCURACY:.0%}, ECE ≤ {MAX_ECE:.0%}, "
            "out-of-distribution statistics):\n" + "\n".join(f"- {reason[0].upper()}{reason[1:]}." for reason in found))
