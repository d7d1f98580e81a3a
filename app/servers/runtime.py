"""What one server process keeps between calls: the model, loaded once at the first question
and shared by every caller (taking turns on it, app.servers.turns), and whether the server is
shared over a network (then nothing of this machine's disk is read or written on a caller's
say). `scoutlens mcp` and `scoutlens serve api` each hold one."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.servers.turns import ModelTurns
from engine.types import Backend

if TYPE_CHECKING:
    from app.services.packing import Resident


@dataclass
class Runtime:
    """`shared`: served beyond loopback (or `--shared`): no local paths in, no files out.
    `backend`, `endpoint`, `model`: as `scoutlens ask` takes them (None: the configured)."""

    shared: bool = False
    backend: str | None = None
    endpoint: str | None = None
    model: str | None = None
    _loaded: ModelTurns | None = None
    _loading: threading.Lock = field(default_factory=threading.Lock)
    _resident: Resident | None = None

    def resident(self) -> Resident | None:
        """What this server's packs of paths keep for the next (app.services.packing.Resident:
        the tokenizers, the last pack's stat memo, decoded, and the wrappers' counts): an
        agent's re-pack through MCP then costs what `pack --watch`'s does. None when shared:
        a shared server packs stored corpora only, which have no memo."""
        if self.shared:
            return None
        if self._resident is None:  # two callers at once may build two: the last one stays
            from app.services.packing import Resident

            self._resident = Resident()
        return self._resident

    def turns(self) -> ModelTurns:
        """The backend with its turn-taking lock, built (the embedded model loaded) once per
        process."""
        with self._loading:
            if self._loaded is None:
                from app.services.backends import make_backend

                self._loaded = ModelTurns(make_backend(self.backend, endpoint=self.endpoint,
                                                       model=self.model))
            return self._loaded

    def use(self, backend: Backend) -> None:
        """Serve with this backend (tests: a scripted one) instead of building one."""
        self._loaded = ModelTurns(backend)

    @contextlib.contextmanager
    def turn(self) -> Iterator[Backend]:
        """The backend to one caller at a time when it is the in-process model."""
        with self.turns().turn() as backend:
            yield backend
