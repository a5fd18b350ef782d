"""Train: choose data (server folders or an uploaded zip), settings, and watch a model train.

A thin script: training runs in a background job (`mri_core.training.jobs`) that outlives this
script run; a reload or a second tab finds the running job and reattaches to it. The
page only draws the job's snapshot: progress, loss and accuracy curves, the test result.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from mri_core.training import uploads

from mri_core.training import data as datasets

from mri_core.training import jobs

from mri_core.package import registry
from mri_core.training.recipes import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from mri_core.io.errors import MriError
from mri_core.training.train import ARCH_DEFAULTS, settings_for

REFRESH_S = 2.0  # how often the running view redraws
SERVER, UPLOAD = "Folders on this server", "Upload a zip"


@st.cache_data(show_spinner="Checking the data set ...", max_entries=4, ttl=120)
def summarize_folders(folders: tuple[str, ...]) -> dict:
    """Folders -> data set summary; DatasetInvalid when they cannot train a model."""
    return describe(datasets.discover(list(folders)))


@st.cache_data(show_spinner="Unpacking and checking the zip ...", max_entries=2, ttl=600)
def summarize_zip(upload_id: str, _data: bytes) -> dict:
    """Keyed by the upload's id: hashing a large zip on every rerun would stall the page."""
    with uploads.extracted_zip(_data) as root:
        return describe(datasets.discover([root]))


def describe(dataset: datasets.Dataset) -> dict:
    """The summary the page shows: kind, images per root and class, skipped files,
    near-duplicate groups and the split sizes (grouped split, seed 0)."""
    groups = datasets.group_near_duplicates(dataset.records).tolist()
    split = datasets.split_groups(dataset, groups, seed=0)
    sides = Counter(split[r.sha256] for r in dataset.records)
    return {
        "kind": dataset.kind,
        "classes": list(dataset.class_names),
        "per_root": dataset.counts_per_root,
        "total": len(dataset.records),
        "skipped": [(path.name, why) for path, why in dataset.skipped],
        "duplicate_groups": sum(n > 1 for n in Counter(groups).values()),
        "split_sizes": {side: sides.get(side, 0) for side in datasets.SPLITS},
    }


def show_summary(summary: dict) -> None:
    kind = "typed (tumor types)" if summary["kind"] == "typed" else "tumor / no tumor"
    st.markdown(f"**{summary['total']} readable images** in {len(summary['classes'])} classes; "
                f"this trains a **{kind}** model.")
    rows = [{"root": root, **{c: counts.get(c, 0) for c in summary["classes"]}}
            for root, counts in summary["per_root"].items()]
    st.dataframe(rows, hide_index=True)
    sizes = summary["split_sizes"]
    st.markdown(f"{summary['duplicate_groups']} groups of near-duplicate images, each kept on one side of "
                f"the split. Split (seed 0): **{sizes['train']} train · {sizes['val']} validation · "
                f"{sizes['test']} test** images.")
    if summary["skipped"]:
        with st.expander(f"{len(summary['skipped'])} unreadable files will be skipped"):
            st.dataframe([{"file": name, "why": why} for name, why in summary["skipped"]], hide_index=True)


def choose_settings():
    """Settings widgets, with the chosen architecture's defaults; returns TrainSettings."""
    arch = st.selectbox("Architecture", list(ARCH_DEFAULTS), help="`paper`: the seed paper's CNN; `default`: our compact residual CNN with augmentation.")
    defaults = ARCH_DEFAULTS[arch]
    left, middle, right = st.columns(3)
    epochs = left.number_input("Epochs", 1, 500, defaults["epochs"], key=f"epochs-{arch}")
    image_size = middle.number_input("Image size (px)", MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, defaults["image_size"], step=16, key=f"size-{arch}")
    batch_size = right.number_input("Batch size", 1, 1024, defaults["batch_size"], key=f"batch-{arch}")
    learning_rate = left.number_input("Learning rate", 1e-6, 1.0, defaults["learning_rate"], format="%.5f", key=f"lr-{arch}")
    seed = middle.number_input("Seed", 0, 2**31 - 1, 0)
    name = right.text_input("Model name (optional)", placeholder=f"{arch}-<data folder>").strip() or None
    return settings_for(arch, epochs=int(epochs), image_size=int(image_size), batch_size=int(batch_size),
                        learning_rate=float(learning_rate), seed=int(seed), name=name)


def start_from_zip(data: bytes, settings) -> None:
    """Unpack the zip into a temp folder that the job removes when it ends."""
    folder = uploads.make_temp_folder()
    try:
        root = uploads.extract_zip(data, folder)
        jobs.start_job([root], settings, cleanup=lambda: shutil.rmtree(folder, ignore_errors=True),
                       resumable=False)  # the upload's temp folder does not outlive the job
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def curves(history, total_epochs: int) -> tuple[go.Figure, go.Figure]:
    """Per-epoch loss and accuracy, train and validation, on an axis of all planned epochs."""
    epochs = [e.epoch for e in history]
    figures = []
    for title, train_values, val_values, axis in (
        ("Loss", [e.loss for e in history], [e.val_loss for e in history], {}),
        ("Accuracy", [e.accuracy for e in history], [e.val_accuracy for e in history], {"tickformat": ".0%"}),
    ):
        figure = go.Figure([go.Scatter(x=epochs, y=train_values, name="train", mode="lines+markers"),
                            go.Scatter(x=epochs, y=val_values, name="validation", mode="lines+markers")])
        figure.update_layout(title=title, yaxis=axis, height=320,
                             xaxis={"title": "epoch", "range": [0.8, max(total_epochs, 2) + 0.2], "tickformat": "d", "dtick": 1 if total_epochs <= 20 else None},
                             margin={"l": 10, "r": 10, "t": 40, "b": 10})
        figures.append(figure)
    return figures[0], figures[1]


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def show_progress(snap: jobs.JobSnapshot) -> None:
    if snap.data is None:
        text = "Reading, checking and splitting the data ..."
    elif snap.step is None:
        text = f"Training on {snap.data.n_train} images ({snap.data.n_val} validation, {snap.data.n_test} test) ..."
    else:
        text = f"Epoch {snap.step.epoch} of {snap.settings.epochs} · batch {snap.step.step} of {snap.step.steps}"
        if snap.history:
            text += f" · about {minutes(snap.history[-1].eta_s)} left"
    st.progress(snap.progress, text=text)


def show_curves(snap: jobs.JobSnapshot) -> None:
    if not snap.history:
        return
    loss_figure, accuracy_figure = curves(snap.history, snap.settings.epochs)
    loss_column, accuracy_column = st.columns(2)
    loss_column.plotly_chart(loss_figure, config={"displayModeBar": False})
    accuracy_column.plotly_chart(accuracy_figure, config={"displayModeBar": False})


@st.fragment(run_every=REFRESH_S)
def running_view(job: jobs.TrainingJob) -> None:
    snap = job.snapshot()
    if not snap.running:
        st.rerun()  # the whole page switches to the result
    show_progress(snap)
    show_curves(snap)
    if job.cancel_requested:
        st.info("Stopping after the current batch; nothing will be saved.")
    elif st.button("Cancel training", type="secondary"):
        job.cancel()
        st.rerun(scope="fragment")


def show_result(snap: jobs.JobSnapshot) -> None:
    entry = snap.result
    metrics = entry.info.get("test_metrics", {})
    st.success(f"Saved model **{entry.ref}**, trained in {minutes((snap.ended or snap.started) - snap.started)}.")
    columns = st.columns(4)
    for column, (label, key) in zip(columns, (("Test accuracy", "accuracy"), ("Sensitivity", "sensitivity"),
                                              ("Specificity", "specificity"), ("ROC AUC", "roc_auc"))):
        value = metrics.get(key)
        column.metric(label, "n/a" if value is None else (f"{value:.3f}" if key == "roc_auc" else f"{value:.1%}"), border=True)
    matrix = metrics.get("confusion_matrix")
    if matrix:
        heatmap = go.Figure(go.Heatmap(z=matrix["matrix"], x=matrix["labels"], y=matrix["labels"],
                                       colorscale="Blues", text=matrix["matrix"], texttemplate="%{text}"))
        heatmap.update_layout(title=f"Confusion matrix on {metrics.get('n', '?')} test images",
                              xaxis_title="reported", yaxis_title="true", yaxis={"autorange": "reversed"},
                              height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10})
        st.plotly_chart(heatmap, config={"displayModeBar": False})
    if registry.active().path.resolve() == entry.path.resolve():
        st.info(f"{entry.ref} is the active model: the Diagnose page uses it.")
    elif st.button(f"Activate {entry.ref}", type="primary"):
        registry.activate(entry.path)
        st.rerun()


st.set_page_config(page_title="Train - Brain MRI screening", layout="wide")
st.title("Train")
st.caption("Train a model on your own folder-per-class images (no/ and yes/, or notumor/ and the tumor types).")
uploads.remove_orphaned_uploads()  # zips unpacked by a server that was killed mid-training

job = jobs.current_job()
if job is not None:
    snap = job.snapshot()
    if snap.running:
        running_view(job)
        st.stop()
    if snap.status == jobs.FINISHED:
        try:
            show_result(snap)
        except MriError as exc:
            st.error(str(exc))
    elif snap.status == jobs.CANCELLED:
        st.warning(snap.error)
    else:
        st.error(snap.error)
    show_curves(snap)
    if st.button("Train another model"):
        jobs.dismiss_job()
        st.rerun()
    st.stop()

interrupted = jobs.interrupted_job()
if interrupted is not None:
    st.warning(f"A training run stopped before it finished (server restart or crash) after "
               f"{interrupted.epochs_done} of {interrupted.settings.epochs} epochs "
               f"({interrupted.settings.arch} on {', '.join(interrupted.data_dirs)}).")
    resume_column, discard_column = st.columns(2)
    if resume_column.button("Resume from the last completed epoch", type="primary"):
        try:
            jobs.resume_interrupted()
        except MriError as exc:
            st.error(str(exc))
            st.stop()
        st.rerun()
    if discard_column.button("Discard it"):
        jobs.discard_interrupted()
        st.rerun()

source = st.radio("Training data", [SERVER, UPLOAD], horizontal=True)
summary, folders, upload = None, [], None
try:
    if source == SERVER:
        text = st.text_area("Data folders on the server, one per line", placeholder="/data/brain-mri")
        folders = [line.strip() for line in text.splitlines() if line.strip()]
        if folders:
            summary = summarize_folders(tuple(folders))
    else:
        upload = st.file_uploader("Zip of one folder per class", type=["zip"])
        if upload is not None:
            summary = summarize_zip(upload.file_id, upload.getvalue())
except MriError as exc:
    st.error(str(exc))
if summary is None:
    st.info("Give the data first: each folder (or the zip) holds one folder per class.")
    st.stop()
show_summary(summary)

st.subheader("Settings")
try:
    settings = choose_settings().check()
except MriError as exc:
    st.error(str(exc))
    st.stop()
if st.button("Start training", type="primary"):
    try:
        if upload is not None:
            start_from_zip(upload.getvalue(), settings)
        else:
            jobs.start_job([Path(f) for f in folders], settings)
    except MriError as exc:
        st.error(str(exc))
        st.stop()
    st.rerun()
