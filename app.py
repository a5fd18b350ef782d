"""Brain MRI screening: the Streamlit entry (`streamlit run app.py`). It only declares the pages.

Each page is a short script in pages/ (Diagnose is the start page); what they share is in
pages/common.py. Nothing here imports TensorFlow: the model loads on the first reading.
"""

from __future__ import annotations

import os

import streamlit as st

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before the first model load imports TensorFlow

PAGES = [
    st.Page("pages/diagnose.py", title="Diagnose", icon=":material/neurology:", default=True),
    st.Page("pages/batch.py", title="Batch", icon=":material/stacks:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/models.py", title="Models", icon=":material/inventory_2:"),
]

page = st.navigation(PAGES)
st.set_page_config(page_title=f"{page.title} - Brain MRI screening", layout="wide")
page.run()
