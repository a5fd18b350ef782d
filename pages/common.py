"""What every page shares: the one cached model loader, the active model (and a banner when it is not the
shipped default), the confirmation the activation rule asks for, error display, charts, and the file the
Batch page hands to the Diagnose page (in memory, this session only).

Not a page (app.py lists the pages); imported as `pages.common` from the project root. No
TensorFlow at import: the model loads on the first reading (or in `preload_model`'s thread).
"""

from __future__ import annotations

from typing import Callable, TypeVar

import streamlit as st

from mri_core.inference.preload import preload_model
from mri_core.io.errors import MriError
from mri_core.io.slices import UploadedScan, read_uploads
from mri_core.package import activation, registry
from mri_core.present import report

NOTICE = "Decision support, not a diagnosis: a radiologist must review every scan."
DIAGNOSE_PAGE = "pages/diagnose.py"
HANDED_FILE = "diagnose_input"  # session state: (name, bytes) that Batch hands to Diagnose
Result = TypeVar("Result")


def serve_through_app_py() -> None:
    """Until app.py has run once in a server process, Streamlit (1.67) treats a `pages/` folder the
    old way: a first request for /train runs pages/train.py alone, with every file of pages/ in
    the sidebar. Switch that off and rerun, so that app.py's navigation serves the page."""
    from streamlit.runtime.pages_manager import PagesManager  # private API: Streamlit is pinned in requirements.txt

    if getattr(PagesManager, "uses_pages_directory", False):  # absent in another version: nothing to switch off
        PagesManager.uses_pages_directory = False  # what st.navigation itself does
        st.rerun()


serve_through_app_py()  # runs when the first page of a process imports this module


@st.cache_resource(show_spinner="Loading the model ...", max_entries=2)
def load_scan_model(package_path: str, version: int):
    """The model package at `package_path`; shared by every page and session, never mutated."""
    from mri_core.inference.model import load_cached  # imports TensorFlow: only when first needed

    return load_cached(package_path, version)


def or_stop(call: Callable[..., Result], *args, **kwargs) -> Result:
    """`call(*args, **kwargs)`, or its MriError's message on the page and the script stopped there."""
    try:
        return call(*args, **kwargs)
    except MriError as exc:
        st.error(str(exc))
        st.stop()


def reading_page_header(title: str) -> registry.ModelEntry:
    """A reading page's title, the decision-support notice and the active model it reads with, whose
    loading starts in the background (ModelInvalid at once for a damaged model file); a warning banner
    while that model is not the shipped default, with the activation checks it fails."""
    st.title(title)
    st.caption(NOTICE)
    entry = or_stop(registry.active)
    try:
        default = registry.default_shipped()
    except MriError:
        default = None  # no default shipped: every active model is a chosen one
    if default is None or default.path.resolve() != entry.path.resolve():
        st.warning(report.model_banner(entry.ref, default and default.ref, registry.activation_problems(entry)))
    or_stop(preload_model, str(entry.path), entry.version)
    st.markdown(report.model_line(entry.ref, entry.info))
    return entry


def confirm_activation(ref: str, found: list[str]) -> bool:
    """Why `ref` fails the activation rule, and a checkbox to activate it anyway -> whether it is ticked."""
    st.warning(activation.check_words(ref, found))
    return st.checkbox(f"I have read why and want to activate {ref} anyway.", key=f"confirm-activate-{ref}")


def show_chart(figure, key: str | None = None, where=st) -> None:
    """A plotly figure from `mri_core.present.charts`, without the mode bar; nothing for None."""
    if figure is not None:
        where.plotly_chart(figure, config={"displayModeBar": False}, key=key)


def open_on_diagnose(name: str, data: bytes) -> None:
    """Hand one file, in memory, to the Diagnose page and go there (Batch's "Open on Diagnose")."""
    st.session_state[HANDED_FILE] = (name, data)
    st.switch_page(DIAGNOSE_PAGE)


def uploaded_files(uploads) -> tuple[list[tuple[str, bytes]], tuple] | None:
    """Diagnose's uploads, in upload order (else the file handed from Batch), as (name, bytes) files, and a
    key naming them, one id per file; None when there is nothing to read."""
    if uploads:
        return [(u.name, u.getvalue()) for u in uploads], tuple(u.file_id for u in uploads)
    if HANDED_FILE in st.session_state:
        name, data = st.session_state[HANDED_FILE]
        return [(name, data)], (f"batch/{len(data)}/{name}",)
    return None


def scans_to_read(uploads) -> tuple[list[UploadedScan], list[tuple[str, bytes]], tuple] | None:
    """Diagnose's uploads (else the file handed from Batch) as the scans in them (`read_uploads`: each with
    the uploads it came from), the files, and a key naming them; None when there is nothing to read.
    Decoded once per set of files, under a spinner, and kept in this session only (in memory)."""
    if uploads:
        st.session_state.pop(HANDED_FILE, None)  # a new upload replaces a file opened from Batch
    if (chosen := uploaded_files(uploads)) is None:
        return None
    files, key = chosen
    if st.session_state.get("uploads_key") != key:
        with st.spinner(f"Opening {len(files)} file{'s' if len(files) != 1 else ''} ...", show_time=True):
            st.session_state.uploaded_scans = or_stop(read_uploads, files)
        st.session_state.uploads_key, st.session_state.scanned = key, {}
    return st.session_state.uploaded_scans, files, key
