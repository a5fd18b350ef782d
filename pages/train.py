"""Train: choose data (an uploaded zip, or folders on the server), settings, and watch a model train.

A thin script: the data set summary comes from `mri_core.present.training_view`, the settings
from the architecture's recipe (`mri_core.training.recipes`); training runs in a background job
that outlives this script run and belongs to this browser session, drawn by pages/train_job.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import streamlit as st

from mri_core.io.errors import MriError
from mri_core.present import training_view
from mri_core.training import data as datasets
from mri_core.training import jobs, uploads
from mri_core.training.recipes import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, RECIPES, default_arch, settings_for
from pages.common import or_stop
from pages.train_job import keep_in_url, session_owner, show_job

UPLOAD, SERVER = "Upload a zip", "Folders on this server"  # the zip first: a clinician knows no server paths


@st.cache_data(show_spinner="Checking the data set ...", max_entries=4, ttl=120)
def summarize_folders(folders: tuple[str, ...]) -> dict:
    return training_view.summarize_dataset(datasets.discover(list(folders)))


@st.cache_data(show_spinner="Unpacking and checking the zip ...", max_entries=2, ttl=600)
def summarize_zip(upload_id: str, _data: bytes) -> dict:
    """Keyed by the upload's id: hashing a large zip on every rerun would stall the page."""
    with uploads.extracted_zip(_data) as root:
        return training_view.summarize_dataset(datasets.discover([root]))


FIELDS = {"epochs": "train_epochs", "image_size": "train_size", "batch_size": "train_batch", "learning_rate": "train_lr"}


def recipe_defaults() -> None:
    """On a change of architecture: every field starts again from that recipe's defaults."""
    for field, key in FIELDS.items():
        st.session_state[key] = RECIPES[st.session_state.train_arch].defaults[field]


def choose_settings():
    """Settings widgets, starting from the chosen architecture's recipe; returns TrainSettings."""
    if "train_arch" not in st.session_state:
        st.session_state.train_arch = or_stop(default_arch)
        recipe_defaults()
    arch = st.selectbox("Architecture", list(RECIPES), key="train_arch", on_change=recipe_defaults,
                        format_func=lambda name: RECIPES[name].label)
    left, middle, right = st.columns(3)
    epochs = left.number_input("Epochs", 1, 500, key=FIELDS["epochs"])
    image_size = middle.number_input("Image size (px)", MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, step=16, key=FIELDS["image_size"])
    batch_size = right.number_input("Batch size", 1, 1024, key=FIELDS["batch_size"])
    learning_rate = left.number_input("Learning rate", 1e-6, 1.0, format="%.5f", key=FIELDS["learning_rate"])
    seed = middle.number_input("Seed", 0, 2**31 - 1, 0)
    name = right.text_input("Model name (optional)", placeholder=f"{arch}-<data folder>").strip() or None
    return settings_for(arch, epochs=int(epochs), image_size=int(image_size), batch_size=int(batch_size),
                        learning_rate=float(learning_rate), seed=int(seed), name=name)


def start_from_zip(data: bytes, settings, owner: str) -> None:
    """Unpack the zip into a temp folder that the job removes when it ends (not resumable)."""
    folder = uploads.make_temp_folder()
    try:
        jobs.start_job([uploads.extract_zip(data, folder)], settings, resumable=False, owner=owner,
                       cleanup=lambda: shutil.rmtree(folder, ignore_errors=True))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


st.title("Train")
st.caption("Train a model on your own folder-per-class images (no/ and yes/, or notumor/ and the tumor types).")
uploads.remove_orphaned_uploads()  # zips unpacked by a server that was killed mid-training
owner = session_owner()
busy = show_job(owner)  # this session's running or finished job is drawn instead of the form below

source = st.radio("Training data", [UPLOAD, SERVER], horizontal=True)
st.caption("The zip holds one folder per class (`no/` and `yes/`, or `notumor/` and the tumor types) with the "
           "images inside; server folders are laid out the same way.")
summary, folders, upload = None, [], None
try:
    if source == SERVER:
        text = st.text_area("Data folders on the server, one per line", placeholder="/data/brain-mri")
        folders = [line.strip() for line in text.splitlines() if line.strip()]
        summary = summarize_folders(tuple(folders)) if folders else None
    else:
        upload = st.file_uploader("Zip of one folder per class", type=["zip"])
        summary = summarize_zip(upload.file_id, upload.getvalue()) if upload is not None else None
except MriError as exc:
    st.error(str(exc))
if summary is None:
    st.info("Give the data first: the zip (or each folder) holds one folder per class.")
    st.stop()
headline, split_line = training_view.summary_words(summary)
st.markdown(headline)
st.dataframe(training_view.summary_rows(summary), hide_index=True)
st.markdown(split_line)
if summary["skipped"]:
    with st.expander(f"{len(summary['skipped'])} unreadable files will be skipped"):
        st.dataframe([{"file": name, "why": why} for name, why in summary["skipped"]], hide_index=True)

st.subheader("Settings")
settings = or_stop(lambda: choose_settings().check())
if st.button("Start training", type="primary", disabled=busy,
             help="Another user's model is training; start yours when it finishes." if busy else None):
    if upload is not None:
        or_stop(start_from_zip, upload.getvalue(), settings, owner)
    else:
        or_stop(jobs.start_job, [Path(f) for f in folders], settings, owner=owner)
    keep_in_url(owner)
    st.rerun()
