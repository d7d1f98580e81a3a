"""The questions in flight on the API: admitted up to a bound (a 503 past it, not an ever
longer queue; a 429 past a person's share, so one caller cannot take every place), each with
the flag that stops its generation, and all stopped together when the server stops."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from app.servers.errors import STOPPING, ApiError, ClientGone
from app.services.access import Who

MAX_IN_FLIGHT = 128  # questions answered or waiting for the model; more are told to retry
MAX_PER_PERSON = 64  # of those, one person's (the operator of a loopback server is one person)


@dataclass(eq=False)
class Asking:
    """One question in flight: `gone` stops its generation at the next delta; `wake` (a
    stream's) lets its reader know at once."""

    person: str | None = None
    gone: threading.Event = field(default_factory=threading.Event)
    wake: Callable[[], None] | None = None
    stopped: bool = False  # by the server stopping, not by its client

    def check(self, delta: str = "") -> None:
        if self.gone.is_set():
            raise ClientGone

    def stop(self) -> None:
        self.stopped = True
        self.gone.set()
        if self.wake is not None:
            self.wake()


class InFlight:
    """The questions being answered or waiting for the model. Used on the event loop's thread
    only."""

    def __init__(self, limit: int = MAX_IN_FLIGHT, per_person: int = MAX_PER_PERSON):
        self.limit, self.per_person = limit, per_person
        self.asks, self.stopping = set[Asking](), False

    def admit(self, who: Who = None) -> Asking:
        person = getattr(who, "name", None)
        if self.stopping:
            raise STOPPING
        if len(self.asks) >= self.limit:
            raise ApiError(503, f"the server is busy: {self.limit} questions are being answered "
                                f"or waiting; ask again in a few seconds", kind="server_error",
                           code="server_busy")
        if sum(a.person == person for a in self.asks) >= self.per_person:
            raise ApiError(429, f"you have {self.per_person} questions being answered or "
                                "waiting; ask again when one is done", kind="rate_limit_error",
                           code="too_many_questions")
        asking = Asking(person)
        self.asks.add(asking)
        return asking

    def release(self, asking: Asking) -> None:
        self.asks.discard(asking)

    def stop_all(self) -> None:
        self.stopping = True
        for asking in list(self.asks):
            asking.stop()
