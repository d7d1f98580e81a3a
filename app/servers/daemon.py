"""Blocking work awaited from a server's event loop, in daemon threads: `serve api` and `mcp`
over HTTP must end on SIGTERM even while a question waits minutes for a model's first token.
anyio's worker threads are not daemons, so the interpreter's exit waits for them, and a
thread cannot be interrupted; a daemon thread is left behind when the caller is cancelled
(the server stopping, a client cancelling) and ends with the process."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

T = TypeVar("T")


class Abandoned(Exception):
    """`finished` was set from elsewhere before the thread was done: it was left running."""


async def run_daemon(func: Callable[..., T], *args: Any, name: str = "scoutlens-work",
                     limiter: anyio.CapacityLimiter | None = None,
                     finished: anyio.Event | None = None) -> T:
    """func(*args) in a daemon thread of its own (started once `limiter` gives a place),
    its result or exception returned here; cancelling the caller leaves the thread running,
    and so does setting `finished` from elsewhere (then Abandoned is raised)."""
    token = anyio.lowlevel.current_token()
    finished = finished or anyio.Event()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = func(*args)
        except BaseException as exc:  # handed to the awaiting task, raised there
            outcome["error"] = exc
        finally:
            with contextlib.suppress(Exception):  # the loop may have ended
                anyio.from_thread.run_sync(finished.set, token=token)

    async with limiter if limiter is not None else contextlib.nullcontext():
        threading.Thread(target=work, name=name, daemon=True).start()
        await finished.wait()
    if "error" in outcome:
        raise outcome["error"]
    if "value" not in outcome:
        raise Abandoned
    return outcome["value"]
