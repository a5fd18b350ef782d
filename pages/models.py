"""Models: every shipped and trained model; activate (after a confirmation when the activation rule finds
problems), compare, download or delete one; how often each agreed with the clinic's recorded findings,
and the reading log as CSV.

A thin page: everything it shows comes from each package's `model.json` through
`mri_core.package.registry`; the zip comes from `mri_core.package.packaging`, the words and
figures from `mri_core.present`. No TensorFlow here.
"""

from __future__ import annotations

from functools import partial

import streamlit as st

from mri_core.io.errors import MriError
from mri_core.package import packaging, registry
from mri_core.present import charts, model_table, reading_log, report
from pages.common import confirm_activation, or_stop, show_chart

ACTIVATED = "{ref} is now the active model: the Diagnose page reads scans with it."
ACTIVATED_ANYWAY = ("{ref} is now the active model although it does not pass the activation checks; "
                    "the Diagnose and Batch pages say so in a banner.")


def run_action(action, ref: str, done: str, kind: str = "success") -> None:
    """Button callback: `action(ref)`, then a `kind` message (or an error) at the top of the next run."""
    try:
        action(ref)
        st.session_state["flash"] = (kind, done.format(ref=ref))
    except MriError as exc:
        st.session_state["flash"] = ("error", str(exc))
    except OSError as exc:  # e.g. a read-only registry folder
        st.session_state["flash"] = ("error", f"{ref} could not be changed ({exc}); "
                                              f"check that {registry.models_dir()} is writable.")


st.title("Models")
kind, message = st.session_state.pop("flash", (None, None))
if kind:
    getattr(st, kind)(message)
entries = {entry.ref: entry for entry in or_stop(registry.list_models)}
active_ref = or_stop(registry.active).ref
if not entries:
    st.info("No models yet: train one on the Train page or with `python -m mri_core train`.")
    st.stop()
refs = list(entries)
for key in ("manage_ref", "compare_a", "compare_b"):
    if st.session_state.get(key, refs[0]) not in entries:  # deleted here or elsewhere: choose anew
        del st.session_state[key]

st.dataframe([model_table.summary_row(entry, active_ref) for entry in entries.values()], hide_index=True)
st.caption(f"Active model: **{active_ref}**, the one the Diagnose page uses. "
           "Metrics are on each model's own held-out test split.")

st.subheader("Manage a model")
st.session_state.setdefault("manage_ref", active_ref if active_ref in entries else refs[0])
chosen = entries[st.selectbox("Model", refs, key="manage_ref")]
is_active = chosen.ref == active_ref
found = [] if is_active else registry.activation_problems(chosen)
confirmed = confirm_activation(chosen.ref, found) if found else False
activate_column, download_column = st.columns(2)
activate_column.button("Make active anyway" if found else "Make active",
                       disabled=is_active or bool(found) and not confirmed,
                       on_click=run_action, args=(partial(registry.activate, confirm=confirmed), chosen.ref,
                                                  *((ACTIVATED_ANYWAY, "warning") if found else (ACTIVATED,))),
                       help="This model is already active." if is_active else "The Diagnose page will use it.")
try:
    download_column.download_button("Download as zip", packaging.zip_package(chosen), mime="application/zip",
                                    file_name=packaging.zip_file_name(chosen),
                                    help="Every file of the package; unzipped, the folder loads as a model.")
except MriError as exc:
    download_column.error(str(exc))
reliability = report.reliability_rows(chosen.info)
if reliability:
    show_chart(charts.reliability_figure(reliability), key="reliability")
    st.caption("Calibrated means: of the test scans given about 90 % tumor probability, about 90 % had a tumor. "
               + report.reliability_words(reliability))
else:
    st.caption(f"{chosen.ref} stores no reliability bins (packages trained before they were recorded).")
if chosen.shipped:
    st.info(f"{chosen.ref} is shipped with the app and cannot be deleted.")
elif is_active:
    st.info(f"{chosen.ref} is the active model: make another model active before deleting it.")
else:
    confirmed = st.checkbox(f"I understand that {chosen.ref} will be deleted for good.", key=f"confirm-{chosen.ref}")
    st.button("Delete", type="primary", disabled=not confirmed, on_click=run_action,
              args=(registry.delete, chosen.ref, "{ref} was deleted."))

st.subheader("Compare two models")
st.session_state.setdefault("compare_a", st.session_state["manage_ref"])
st.session_state.setdefault("compare_b", next((r for r in refs if r != st.session_state["compare_a"]), refs[0]))
left_column, right_column = st.columns(2)
sides = {"A": entries[left_column.selectbox("Model A", refs, key="compare_a")],
         "B": entries[right_column.selectbox("Model B", refs, key="compare_b")]}
st.table(model_table.compare_rows(sides["A"], sides["B"]))
for column, (side, entry) in zip(st.columns(2), sides.items()):
    confusion = charts.confusion_figure(entry.info.get("test_metrics"), f"Confusion matrix (test) · {entry.ref}")
    curves = charts.curve_figures(entry.info.get("history", []), title_suffix=f" · {entry.ref}")
    for number, figure in enumerate([confusion, *curves]):
        show_chart(figure, key=f"chart-{side}-{number}", where=column)
    if confusion is None:
        column.info(f"{entry.ref} has no test confusion matrix in its model.json.")
    if not curves:
        column.info(f"{entry.ref} has no training history in its model.json.")

st.subheader("Agreement with your findings")
home = registry.mri_home()
try:
    logged = reading_log.read_log(home)
except OSError as exc:
    st.error(f"The reading log in {home} cannot be read ({exc}); check its permissions.")
    logged = []
if agreement := model_table.agreement_rows(reading_log.agreement(logged)):
    st.dataframe(agreement, hide_index=True)
else:
    st.info("No findings recorded yet: record yours under a reading on the Diagnose page.")
st.caption(f"Agreement counts readings where both you and the model made a call (tumor or no tumor); it is "
           f"shown once a model has {reading_log.MIN_FINDINGS} of them. It measures agreement with your "
           "findings, not accuracy.")
st.download_button("Download the reading log (CSV)", reading_log.log_csv(home) if logged else
                   ",".join(reading_log.COLUMNS).encode() + b"\n", file_name="reading-log.csv", mime="text/csv")
st.caption(f"The log is kept in {reading_log.log_path(home)}: the time, model, a SHA-256 of the image bytes, "
           "the verdict, probability and warnings of every reading on the pages, and your findings; never "
           "images, file names, patient details or free text. Keep it as your clinic keeps audit records.")
