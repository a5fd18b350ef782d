"""The Train page's view of a training job (not a page: pages/train.py calls `show_job`).

A job runs in a background thread (`mri_core.training.jobs`) and outlives the script run. It
belongs to the browser session that started it (a token kept in the tab's URL, `?run=`), so a
reload of that tab finds it and no other tab or user does. To its owner this draws a snapshot with
`mri_core.present`: progress words and curves while it runs, the test figures with their intervals,
what failed along the way and Activate (after a confirmation for a model the activation rule flags)
when it has finished. Anyone else sees only that the server is busy, and when. Resume or Discard
is offered to all for a run that a server restart cut short.
"""

from __future__ import annotations

import re
import secrets

import streamlit as st

from mri_core.io.errors import MriError
from mri_core.package import registry
from mri_core.present import charts, training_view
from mri_core.training import jobs
from pages.common import confirm_activation, or_stop, show_chart

REFRESH_S = 2.0  # how often the running view redraws
BUSY_REFRESH_S = 5.0  # how often another user's busy note redraws (and looks whether the job ended)
RUN_PARAM = "run"  # the URL query parameter that keeps a tab's owner token across a reload
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def session_owner() -> str:
    """This browser session's owner token: the tab's `?run=` token after a reload, else a new one."""
    if "train_owner" not in st.session_state:
        given = st.query_params.get(RUN_PARAM, "")
        st.session_state.train_owner = given if TOKEN.fullmatch(given) else secrets.token_urlsafe(16)
    return st.session_state.train_owner


def keep_in_url(owner: str) -> None:
    """Put the owner token in the tab's URL, so that a reload finds this session's run again."""
    if st.query_params.get(RUN_PARAM) != owner:
        st.query_params[RUN_PARAM] = owner


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
    caution = training_view.small_test_caution(metrics)
    if caution:
        st.warning(caution)
    figures = training_view.result_metrics(metrics, entry.info.get("no_tumor_classes"))
    for column, (label, value, interval) in zip(st.columns(4), figures):
        column.metric(label, value, border=True)
        if interval:
            column.caption(interval)
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


def finished_view(snap: jobs.JobSnapshot, owner: str) -> None:
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
        jobs.dismiss_job(owner)
        st.rerun()


@st.fragment(run_every=BUSY_REFRESH_S)
def busy_view(owner: str) -> None:
    """Another user's job runs: say how far and since when; the whole page reruns once it has ended."""
    busy = jobs.busy_elsewhere(owner)
    if busy is None:
        st.rerun()  # the form's Start button comes back
    st.info(training_view.busy_words(busy))


def interrupted_view(interrupted: jobs.InterruptedJob, owner: str) -> None:
    st.warning(training_view.interrupted_words(interrupted))
    resume_column, discard_column = st.columns(2)
    if resume_column.button("Resume from the last completed epoch", type="primary"):
        or_stop(jobs.resume_interrupted, owner)
        keep_in_url(owner)
        st.rerun()
    if discard_column.button("Discard it"):
        jobs.discard_interrupted()
        st.rerun()


def show_job(owner: str) -> bool:
    """`owner`'s job, running or ended, and stop the script. Else: True while another user's job runs
    (with a note saying so; the page then offers no start), or False after offering to resume an
    interrupted run (the page goes on to a new run)."""
    job = jobs.own_job(owner)
    if job is not None:
        keep_in_url(owner)  # also after a visit to another page, which clears the URL's query
        snap = job.snapshot()
        if snap.running:
            running_view(job)
        else:
            finished_view(snap, owner)
        st.stop()
    if jobs.busy_elsewhere(owner) is not None:
        busy_view(owner)
        return True
    interrupted = jobs.interrupted_job()
    if interrupted is not None:
        interrupted_view(interrupted, owner)
    return False
