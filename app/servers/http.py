"""uvicorn's HTTP protocol with a bound on connections still sending their request, for both
servers (`serve api`, `mcp` over HTTP): uvicorn itself waits for a request's headers for ever,
so a client that opens thousands and never finishes them (slowloris) could use up the server's
file descriptors and lock everyone out."""

from __future__ import annotations

from typing import Any

#: connections of one address still sending a request (or idle between two): past it the
#: oldest is closed
PENDING_PER_PEER = 256
REQUEST_S = 30.0  # to send a whole request, headers and body, once the connection waits on it


def bounded_http() -> type:
    """uvicorn's h11 protocol, with a bound on connections still sending their request: each
    has REQUEST_S to send it, and one peer address holds at most PENDING_PER_PEER of them (the
    oldest goes)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    pending: dict[str, dict[Any, None]] = {}  # peer -> its waiting connections, oldest first

    class Bounded(H11Protocol):
        _deadline: Any = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._peer = str((transport.get_extra_info("peername") or ("?",))[0])
            self._watch()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._settled()
            super().connection_lost(exc)

        def _watch(self) -> None:
            """Waiting on the client (no whole request yet): on the clock and in the peer's
            queue; otherwise off both."""
            if self.transport.is_closing():
                return self._settled()
            if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
                return self._settled()
            if self._deadline is None:
                self._deadline = self.loop.call_later(REQUEST_S, self._drop)
                queue = pending.setdefault(self._peer, {})
                queue[self] = None
                if len(queue) > PENDING_PER_PEER:
                    next(iter(queue))._drop()

        def _settled(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
                queue = pending.get(self._peer, {})
                queue.pop(self, None)
                if not queue:
                    pending.pop(self._peer, None)

        def _drop(self) -> None:
            self._settled()
            self.transport.close()

    return Bounded
