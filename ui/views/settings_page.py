"""Settings: the backend (embedded or an OpenAI-compatible endpoint), the model and the upload
limit, saved in the data folder and used by every page from then on."""

from __future__ import annotations

import streamlit as st

from engine.types import EngineError
from ui import prefs as prefs_store
from ui.engine_access import forget

st.header("Settings")
current = prefs_store.load()
with st.form("settings"):
    backend = st.radio("Backend", ["embedded", "openai"],
                       index=0 if current.backend == "embedded" else 1, horizontal=True,
                       help="embedded: the default model runs in this process; openai: any "
                            "OpenAI-compatible server (vLLM serving Llama 4 Scout)")
    endpoint = st.text_input("Endpoint URL", current.endpoint,
                             placeholder="http://127.0.0.1:8000/v1")
    model = st.text_input("Model", current.model,
                          help="embedded: a local model folder (empty: the bundled default); "
                               "openai: the served model name (empty: the server's only one)")
    upload_mb = st.number_input("Upload limit per file (MB)", 1, prefs_store.MAX_UPLOAD_MB,
                                current.upload_mb)
    saved = st.form_submit_button("Save", type="primary")
if saved:
    try:
        new = prefs_store.save(prefs_store.Prefs(backend, endpoint, model, int(upload_mb)))
        forget()
        st.success(f"saved: backend {new.backend}"
                   + (f" at {new.endpoint}" if new.backend == "openai" else ""))
    except EngineError as exc:
        st.error(str(exc))
