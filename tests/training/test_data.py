"""mri_core.training.data: real folders are discovered and checked; tumor boxes are read."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from subsets import first_images, link_images, make_root

from mri_core.io.errors import DatasetInvalid
from mri_core.training.data import discover, read_boxes

PROJECT = Path(__file__).resolve().parents[2]
SHIPPED_MANIFEST = PROJECT / "bench" / "splits" / "shipped.json"




def test_discover_maps_no_and_yes_folders_and_ignores_other_files(tmp_path, kaggle_dir):
    root = tmp_path / "scans"
    no = link_images(first_images(kaggle_dir / "no", 7), root / "no")
    link_images(first_images(kaggle_dir / "yes", 9), root / "Yes")  # any letter case
    (root / "boxes.csv").write_text("file,x_min\n")
    (root / ".DS_Store").write_bytes(b"\0")

    dataset = discover([root])

    assert dataset.class_names == ("notumor", "tumor")
    assert dataset.counts == {"notumor": 7, "tumor": 9}
    assert dataset.kind == "binary"
    assert dataset.skipped == ()
    assert dataset.counts_per_root == {"scans": {"notumor": 7, "tumor": 9}}
    record = next(r for r in dataset.records if r.path == no[0])
    assert record.folder == "no" and record.class_name == "notumor"
    assert record.sha256 == hashlib.sha256(no[0].read_bytes()).hexdigest()
    assert record.relative_path == f"no/{no[0].name}"


def test_discover_merges_typed_and_yes_no_roots(tmp_path, kaggle_dir, typed_dir):
    typed = tmp_path / "typed"
    for folder in ("glioma", "meningioma", "notumor"):
        link_images(first_images(typed_dir / folder, 6), typed / folder)
    binary = tmp_path / "binary"
    link_images(first_images(kaggle_dir / "yes", 5), binary / "yes")
    link_images(first_images(kaggle_dir / "no", 5), binary / "no")

    dataset = discover([typed, binary])

    assert dataset.kind == "typed"
    assert dataset.class_names == ("glioma", "meningioma", "notumor", "tumor")
    assert dataset.counts == {"glioma": 6, "meningioma": 6, "notumor": 11, "tumor": 5}
    assert dataset.counts_per_root == {
        "typed": {"glioma": 6, "meningioma": 6, "notumor": 6},
        "binary": {"notumor": 5, "tumor": 5},
    }


def test_unreadable_files_are_reported_not_fatal(tmp_path, kaggle_dir):
    root = tmp_path / "data"
    link_images(first_images(kaggle_dir / "no", 6), root / "no")
    yes = link_images(first_images(kaggle_dir / "yes", 6), root / "yes")
    truncated = root / "yes" / "cut.jpg"
    truncated.write_bytes(yes[0].read_bytes()[:300])
    notes = root / "yes" / "notes.txt"
    notes.write_text("not an image")

    dataset = discover([root])

    assert dataset.counts == {"notumor": 6, "tumor": 6}
    skipped = dict(dataset.skipped)
    assert set(skipped) == {truncated, notes}
    assert "cut.jpg" in skipped[truncated]
    assert "not an image format" in skipped[notes]



@pytest.mark.parametrize(
    "break_it, fragment",
    [
        (lambda root: root / "missing", "does not exist"),
        (lambda root: root / "no" / sorted((root / "no").iterdir())[0].name, "not a folder"),
        (lambda root: (shutil.rmtree(root / "no"), shutil.rmtree(root / "yes"), root)[-1], "no class folders"),
        (lambda root: ((root / "tumour").mkdir(), root)[-1], "'tumour'"),
        (lambda root: ((root / "glioma").mkdir(), root)[-1], "is empty"),
        (lambda root: (shutil.rmtree(root / "yes"), root)[-1], "Only one class"),
    ],
    ids=["missing", "file", "no-class-folders", "unknown-folder", "empty-class", "one-class"],
)
def test_unusable_data_folders_are_refused_with_what_to_fix(tmp_path, kaggle_dir, break_it, fragment):
    root = make_root(tmp_path, kaggle_dir)
    with pytest.raises(DatasetInvalid, match=fragment):
        discover([break_it(root)])


def test_unknown_folder_message_lists_the_accepted_names(tmp_path, kaggle_dir):
    root = make_root(tmp_path, kaggle_dir)
    (root / "Tumour").mkdir()
    with pytest.raises(DatasetInvalid) as caught:
        discover([root])
    for name in ("glioma/", "meningioma/", "pituitary/", "notumor/", "no/", "yes/"):
        assert name in str(caught.value)


def test_no_readable_images_is_refused(tmp_path):
    root = tmp_path / "data"
    for folder in ("no", "yes"):
        (root / folder).mkdir(parents=True)
        (root / folder / "a.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DatasetInvalid, match="No readable images"):
        discover([root])


def test_a_class_with_too_few_images_is_refused(tmp_path, kaggle_dir):
    root = make_root(tmp_path, kaggle_dir, no=6, yes=3)
    with pytest.raises(DatasetInvalid, match=r"tumor: 3.*at least 5"):
        discover([root])


# --- near-duplicates ---------------------------------------------------------------------


def test_tumor_boxes_are_read_per_relative_path(figshare_dir):
    boxes = read_boxes(figshare_dir)
    assert len(boxes) > 2000
    name, ((x0, y0, x1, y1), (height, width)) = next(iter(boxes.items()))
    assert (figshare_dir / name).is_file()
    assert 0 <= x0 <= x1 < width and 0 <= y0 <= y1 < height


def test_a_root_without_boxes_has_none_and_a_bad_row_is_named(tmp_path, kaggle_dir):
    assert read_boxes(kaggle_dir) == {}
    (tmp_path / "boxes.csv").write_text("file,width,height,x_min,y_min,x_max,y_max\na.png,512,512,10,ten,40,50\n")
    with pytest.raises(DatasetInvalid, match="line 2"):
        read_boxes(tmp_path)


def test_planes_come_from_the_file_name_and_a_masks_folder_is_not_a_class(tmp_path, brisc_dir):
    from subsets import link_with_masks

    from mri_core.training.data import plane_of

    assert plane_of("brisc2025_train_00001_gl_ax_t1.png") == "axial"
    assert plane_of("brisc2025_train_00624_gl_co_t1.jpg") == "coronal"
    assert plane_of("x_sa_.png") == "sagittal" and plane_of("Y1.jpg") == "unknown"
    root = link_with_masks(brisc_dir, tmp_path / "brisc2025", per_class=5, classes=("glioma", "notumor"))
    dataset = discover([root])
    assert dataset.class_names == ("glioma", "notumor")
    tumors = [r for r in dataset.records if r.class_name == "glioma"]
    assert all(r.mask_path == root / "masks" / f"{r.path.stem}.png" for r in tumors)
    assert all(r.mask_path is None for r in dataset.records if r.class_name == "notumor")
    assert {r.plane for r in dataset.records} <= {"axial", "coronal", "sagittal"}


def test_a_flat_not_mri_folder_is_one_class_and_an_empty_one_is_refused(tmp_path, head_ct_dir):
    from mri_core.training.data import NOT_MRI_CLASS, discover_flat

    folder = tmp_path / "head-ct"
    link_images(first_images(head_ct_dir, 4), folder)
    (folder / "notes.txt").write_text("not an image")
    found = discover_flat(folder)
    assert len(found.records) == 4 and found.class_names == (NOT_MRI_CLASS,)
    assert [p.name for p, _ in found.skipped] == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetInvalid, match="No readable images"):
        discover_flat(tmp_path / "empty")
