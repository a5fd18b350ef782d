"""The Train page's view of a training job (not a page: pages/train.py calls `show_job`).

A job runs in a background thread (`mri_core.training.jobs`) and outlives the script run: a
reload or a second tab finds it. This draws a snapshot of it with `mri_core.present`: progress
words and curves while it runs, the test figures, what failed along the way and Activate (after a
confirmation for a model the activation rule flags) when it has finished, Resume or Discard for one
that a server restart cut short.
"""

from __future__ import annotations

import streamlit as st

from mri_core.io.errors import MriError
from mri_core.package import registry
from mri_core.present import charts, training_view
from mri_core.training import jobs
from pages.common import confirm_activation, or_stop, show_chart

REFRESH_S = 2.0  # how often the running view redraws


def show_curves(snap: jobs.JobSnapshot) -> None:
    for column, figure in zip(st.columns(2), charts.curve_figures(snap.history, snap.settings.epochs)):
        show_chart(figure, where=column)


@st.fragment(run_every=REFRESH_S)
def running_view(job: jobs.TrainingJob) -> None:
    snap = job.snapshot()
    if not snap.running:
        st.rerun()  # the whole page switches to the result
    st.progress(snap.progress, text=training_view.progress_words(snap))
    show_curves(snap)
    if job.cancel_requested:
        st.info("Stopping after the current batch; nothing will be saved.")
    elif st.button("Cancel training", type="secondary"):
        job.cancel()
        st.rerun(scope="fragment")


def show_result(snap: jobs.JobSnapshot) -> None:
    entry, metrics = snap.result, snap.result.info.get("test_metrics", {})
    found = registry.activation_problems(entry)
    (st.info if found else st.success)(f"Saved model **{entry.ref}**, trained in "
                                       f"{training_view.minutes((snap.ended or snap.started) - snap.started)}.")
    for column, (label, value) in zip(st.columns(4), training_view.result_metrics(metrics)):
        column.metric(label, value, border=True)
    show_chart(charts.confusion_figure(metrics, f"Confusion matrix on {metrics.get('n', '?')} test images"))
    if registry.active().path.resolve() == entry.path.resolve():
        st.info(f"{entry.ref} is the active model: the Diagnose page uses it.")
    elif found:
        confirmed = confirm_activation(entry.ref, found)
        if st.button(f"Activate {entry.ref} anyway", disabled=not confirmed):
            or_stop(registry.activate, entry.path, confirm=True)
            st.rerun()
    elif st.button(f"Activate {entry.ref}", type="primary"):
        or_stop(registry.activate, entry.path)
        st.rerun()


def finished_view(snap: jobs.JobSnapshot) -> None:
    for warning in snap.warnings:  # a part of training that failed without failing the run
        st.warning(warning)
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


def interrupted_view(interrupted: jobs.InterruptedJob) -> None:
    st.warning(training_view.interrupted_words(interrupted))
    resume_column, discard_column = st.columns(2)
    if resume_column.button("Resume from the last completed epoch", type="primary"):
        or_stop(jobs.resume_interrupted)
        st.rerun()
    if discard_column.button("Discard it"):
        jobs.discard_interrupted()
        st.rerun()


def show_job() -> None:
    """This registry folder's job, running or ended, and stop the script; else offer to resume an
    interrupted one and return (the page goes on to a new run)."""
    job = jobs.current_job()
    if job is not None:
        snap = job.snapshot()
        if snap.running:
            running_view(job)
        else:
            finished_view(snap)
        st.stop()
    interrupted = jobs.interrupted_job()
    if interrupted is not None:
        interrupted_view(interrupted)
