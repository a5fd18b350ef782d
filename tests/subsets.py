"""Small real data sets for tests: symlinks to ../shared/data images, nothing copied."""

from __future__ import annotations

from pathlib import Path


def link_subset(source_root: Path, target_root: Path, per_class: int, classes=None) -> Path:
    """A small folder-per-class data set of symlinks to real images (nothing copied)."""
    for class_dir in sorted(p for p in source_root.iterdir() if p.is_dir()):
        if classes and class_dir.name not in classes:
            continue
        (target_root / class_dir.name).mkdir(parents=True, exist_ok=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            (target_root / class_dir.name / image.name).symlink_to(image)
    return target_root
