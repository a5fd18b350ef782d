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


def link_images(sources: list[Path], folder: Path) -> list[Path]:
    """Symlink real images into a temp class folder (never copied into the repo)."""
    folder.mkdir(parents=True, exist_ok=True)
    links = []
    for source in sources:
        link = folder / source.name
        link.symlink_to(source)
        links.append(link)
    return links


def first_images(folder: Path, n: int) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())[:n]


def numbered(folder: Path) -> list[Path]:
    return sorted(folder.iterdir(), key=lambda p: int(p.stem))


def make_root(tmp_path: Path, kaggle_dir: Path, no: int = 6, yes: int = 6) -> Path:
    root = tmp_path / "data"
    link_images(first_images(kaggle_dir / "no", no), root / "no")
    link_images(first_images(kaggle_dir / "yes", yes), root / "yes")
    return root


def link_with_masks(source_root: Path, target_root: Path, per_class: int, classes=None) -> Path:
    """Like `link_subset` for a root with a masks/ folder: the first images per class and their masks."""
    (target_root / "masks").mkdir(parents=True, exist_ok=True)
    for class_dir in sorted(p for p in source_root.iterdir() if p.is_dir() and p.name != "masks"):
        if classes and class_dir.name not in classes:
            continue
        (target_root / class_dir.name).mkdir(parents=True, exist_ok=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            (target_root / class_dir.name / image.name).symlink_to(image)
            mask = source_root / "masks" / f"{image.stem}.png"
            if mask.is_file():
                (target_root / "masks" / mask.name).symlink_to(mask)
    return target_root
