"""The one backend per server process the UI talks to, built from the saved prefs: the embedded
model is loaded once and shared by every browser session, one request at a time (the servers'
turn-taking, app.servers.turns: it has one KV buffer); a remote endpoint is only described,
nothing is loaded."""

from __future__ import annotations

import streamlit as st

from app.servers.turns import ModelTurns
from app.services.backends import make_backend
from engine.types import CompletionRequest, Stream
from ui.prefs import Prefs

Shared = ModelTurns  # the UI's name for the shared backend and its turns


class TakingTurns:
    """The shared backend for a long job (an eval run): the in-process model is taken per
    request, so other sessions' questions get in between its cells instead of after the run."""

    def __init__(self, shared: Shared):
        self._shared = shared

    def __getattr__(self, name: str):
        return getattr(self._shared.backend, name)

    def stream(self, request: CompletionRequest) -> Stream:
        with self._shared.turn() as backend:
            completion = backend.stream(request).collect()
        return Stream(iter([completion.text]), lambda: completion)


@st.cache_resource(show_spinner="loading the model (once per server)…", max_entries=2)
def _shared(backend: str, endpoint: str, model: str) -> Shared:
    return Shared(make_backend(backend, endpoint=endpoint or None, model=model or None))


def shared(prefs: Prefs) -> Shared:
    return _shared(prefs.backend, prefs.endpoint if prefs.backend == "openai" else "",
                   prefs.model)


def forget() -> None:
    """Drop the loaded backend (after the settings change)."""
    _shared.clear()
