"""What one server process keeps between calls: the model, loaded once at the first question
and shared by every caller (the embedded model has one KV buffer, so its callers take turns;
a remote endpoint takes concurrent requests), and whether the server is shared over a network
(then nothing of this machine's disk is read or written on a caller's say). `scoutlens mcp`
and `scoutlens serve api` each hold one."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.types import Backend


@dataclass
class Runtime:
    """`shared`: served beyond loopback (or `--shared`): no local paths in, no files out.
    `backend`, `endpoint`, `model`: as `scoutlens ask` takes them (None: the configured)."""

    shared: bool = False
    backend: str | None = None
    endpoint: str | None = None
    model: str | None = None
    _loaded: Backend | None = None
    _loading: threading.Lock = field(default_factory=threading.Lock)
    _turn: threading.Lock = field(default_factory=threading.Lock)

    def model_backend(self) -> Backend:
        """The backend, built (the embedded model loaded) once per process."""
        with self._loading:
            if self._loaded is None:
                from app.services.backends import make_backend

                self._loaded = make_backend(self.backend, endpoint=self.endpoint,
                                            model=self.model)
            return self._loaded

    def use(self, backend: Backend) -> None:
        """Serve with this backend (tests: a scripted one) instead of building one."""
        self._loaded = backend

    @contextlib.contextmanager
    def turn(self) -> Iterator[Backend]:
        """The backend to one caller at a time when it is the in-process model."""
        backend = self.model_backend()
        if getattr(backend, "concurrent", False):
            yield backend
            return
        with self._turn:
            yield backend
