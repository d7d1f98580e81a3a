"""Background jobs (ingest, eval runs) for the web UI: a thread per job that only updates a Job
record, so the page can rerun, poll it and never freeze. A user mistake ends the job with its
message; anything else with a one-line message (the traceback goes to the server log)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.errors import UserError

log = logging.getLogger("scoutlens.ui")


@dataclass
class Job:
    kind: str  # ingest | eval
    label: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    stage: str = "starting"
    done: int = 0
    total: int = 0
    detail: str = ""
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None

    @property
    def finished(self) -> bool:
        return self.ended is not None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def progress(self, stage: str, done: int, total: int, detail: str = "") -> None:
        """The ingest pipeline's progress(stage, done, total, detail) callback."""
        self.stage, self.done, self.total, self.detail = stage, done, total, detail

    def count(self, done: int, total: int) -> None:
        """The eval runner's progress(done, total) callback."""
        self.progress("cells", done, total, f"{done} of {total} cells")


def start(kind: str, label: str, work: Callable[[Job], Any]) -> Job:
    job = Job(kind, label)

    def target() -> None:
        try:
            job.result = work(job)
        except UserError as exc:  # ingest, engine or database: the message says it all
            job.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown as a message, logged in full
            log.exception("job %s (%s) failed", job.id, label)
            # its text may quote SQL or the server's paths: those stay in the log
            job.error = f"unexpected error ({type(exc).__name__}); the server's log has the details"
        finally:
            job.ended = time.time()

    threading.Thread(target=target, name=f"scoutlens-{kind}-{job.id}", daemon=True).start()
    return job


def wait(job: Job, timeout: float) -> bool:
    """Block until the job ends (tests and scripts); True if it did."""
    deadline = time.time() + timeout
    while not job.finished and time.time() < deadline:
        time.sleep(0.05)
    return job.finished
