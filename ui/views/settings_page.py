"""Settings: the backend (embedded or an OpenAI-compatible endpoint), the model and the upload
limit, saved in the data folder and used by every page from then on. They are everyone's: only
the operator or an admin sees the form; anyone else reads them, without the server's paths."""

from __future__ import annotations

import streamlit as st

from app.services.access import NotAllowed, manages_server
from engine.types import EngineError
from ui import prefs as prefs_store
from ui.auth import who
from ui.common import model_label, shared_server
from ui.shared_backend import forget
from ui.uploads import apply_server_limit

st.header("Settings")
current = prefs_store.load()
person = who()


def read_only(p: prefs_store.Prefs) -> None:
    """What a reader may know of the shared settings: no endpoint address, no model path."""
    st.info("These settings apply to everyone on this server: an admin changes them.")
    st.write(f"Backend: **{p.backend}**, model **{model_label(p, person)}**")
    st.write(f"Upload limit: **{p.upload_mb:,} MB** per file")


def save(new: prefs_store.Prefs) -> None:
    """Store (the service checks who asks) and make the upload limit the server's at once."""
    try:
        new = prefs_store.save(new, who=person)
    except (EngineError, NotAllowed) as exc:
        st.error(str(exc))
        return
    apply_server_limit(new.upload_mb)
    if (new.backend, new.endpoint, new.model) != (current.backend, current.endpoint,
                                                  current.model):
        forget()  # the next question loads the chosen model; an upload limit needs none
    st.success(f"saved: backend {new.backend}"
               + (f" at {new.endpoint}" if new.backend == "openai" else ""))


if not manages_server(person):
    read_only(current)
    st.stop()
locked = shared_server()
if locked:
    st.info("This is a shared server: the backend, endpoint and model are set where it was "
            "started (SCOUTLENS_ENDPOINT, SCOUTLENS_MODEL).")
with st.form("settings"):
    backend = st.radio("Backend", ["embedded", "openai"],
                       index=0 if current.backend == "embedded" else 1, horizontal=True,
                       disabled=locked,
                       help="embedded: the default model runs in this process; openai: any "
                            "OpenAI-compatible server (vLLM serving Llama 4 Scout)")
    endpoint = st.text_input("Endpoint URL", current.endpoint,
                             placeholder="http://127.0.0.1:8000/v1", disabled=locked)
    model = st.text_input("Model", current.model,
                          help="embedded: a local model folder (empty: the bundled default); "
                               "openai: the served model name (empty: the server's only one)",
                          disabled=locked)
    upload_mb = st.number_input("Upload limit per file (MB)", 1, prefs_store.MAX_UPLOAD_MB,
                                current.upload_mb,
                                help="the server refuses a larger file while it arrives; a "
                                     "change applies at once")
    saved = st.form_submit_button("Save", type="primary")
if saved:
    if locked:  # whatever the browser sent, only the upload limit may change
        backend, endpoint, model = current.backend, current.endpoint, current.model
    save(prefs_store.Prefs(backend, endpoint, model, int(upload_mb)))
