"""The one turn-taking lock on the model, for every entry point that shares one backend between
callers (`serve api`, `mcp`, the web UI): the in-process model has one KV buffer, so its callers
take turns; a server (vLLM, an OpenAI endpoint) takes concurrent requests, so its callers never
queue here."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from engine.types import Backend


@dataclass
class ModelTurns:
    """A backend and the lock its callers take turns on."""

    backend: Backend
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def turn(self, on_wait: Callable[[], None] | None = None) -> Iterator[Backend]:
        """The backend, to one caller at a time when it is the in-process model.
        `on_wait()` is called when the model is busy (another question, an eval run)."""
        if getattr(self.backend, "concurrent", False):
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
