"""Pieces every page uses: the saved prefs, a corpus picker, job progress and error display."""

from __future__ import annotations

import os
from pathlib import PurePath

import streamlit as st

from app.services.access import Who, manages_server
from app.services.catalog import list_corpora
from ui import prefs as prefs_store
from ui.auth import who
from ui.jobs import Job


def shared_server() -> bool:
    """Served to a network (`scoutlens ui --host 0.0.0.0`): visitors may not read this
    machine's folders nor send everyone's questions to a server of their choosing."""
    return os.environ.get("SCOUTLENS_UI_SHARED") == "1"


def prefs() -> prefs_store.Prefs:
    return prefs_store.load()


def model_label(p: prefs_store.Prefs, person: Who) -> str:
    """The chosen model as this person may see it (see `hide_path`)."""
    return hide_path(p.model or ("the server's" if p.backend == "openai"
                                 else "bundled default"), person)


def hide_path(name: str, person: Who) -> str:
    """To anyone but the operator or an admin, a model loaded from a folder of the server is
    named by the folder's name, never its path."""
    if manages_server(person) or not name.startswith(("/", "~", ".", "\\")):
        return name
    return PurePath(name.replace("\\", "/")).name or "a local model"


def corpus_names() -> list[str]:
    """The corpora the person on this page may read."""
    return [c.name for c in list_corpora(who=who())]


def pick_corpus(label: str = "Corpus", key: str = "corpus") -> str | None:
    """A select box of corpora that remembers the choice across pages in this session."""
    names = corpus_names()
    if not names:
        st.info("No corpora yet: add documents on the **Corpora** page.")
        return None
    current = st.session_state.get("active_corpus")
    index = names.index(current) if current in names else 0
    name = st.selectbox(label, names, index=index, key=key)
    st.session_state["active_corpus"] = name
    return name


def job_progress(job: Job) -> None:
    """Progress of a background job; while it runs, this part of the page refreshes itself and
    the whole page reruns once when it ends."""

    @st.fragment(run_every=1.0)
    def panel() -> None:
        if job.finished:
            if not st.session_state.get(f"shown-{job.id}"):
                st.session_state[f"shown-{job.id}"] = True
                st.rerun()
            return
        text = f"{job.label}: {job.stage}"
        if job.total:
            text += f" {job.done:,}/{job.total:,}"
        if job.detail:
            text += f" · {job.detail[-60:]}"
        st.progress(job.fraction, text=text)

    panel()


def job_outcome(job: Job) -> bool:
    """The end of a job as a message; True if it succeeded."""
    if not job.finished:
        return False
    if job.error:
        st.error(f"{job.label} failed: {job.error}")
        return False
    return True
