"""The one backend per server process the UI talks to, built from the saved prefs: the embedded
model is loaded once and shared by every browser session, one request at a time (it has one
KV buffer); a remote endpoint is only described, nothing is loaded."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import streamlit as st

from app.services.backends import make_backend
from engine.types import Backend, CompletionRequest, Stream
from ui.prefs import Prefs


@dataclass
class Shared:
    backend: Backend
    lock: threading.Lock

    @contextlib.contextmanager
    def turn(self, on_wait=None) -> Iterator[Backend]:
        """The backend, to one caller at a time when it is the in-process model (one KV
        buffer); a server takes concurrent requests, so its callers never queue here.
        `on_wait()` is called when the model is busy (another question, an eval run)."""
        if self.backend.concurrent:
            yield self.backend
            return
        if not self.lock.acquire(blocking=False):
            if on_wait is not None:
                on_wait()
            self.lock.acquire()
        try:
            yield self.backend
        finally:
            self.lock.release()


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
    return Shared(make_backend(backend, endpoint=endpoint or None, model=model or None),
                  threading.Lock())


def shared(prefs: Prefs) -> Shared:
    return _shared(prefs.backend, prefs.endpoint if prefs.backend == "openai" else "",
                   prefs.model)


def forget() -> None:
    """Drop the loaded backend (after the settings change)."""
    _shared.clear()
