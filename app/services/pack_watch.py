"""`pack --watch`: pack paths, then pack them again each time something under them changes.

The process stays up, so a re-pack costs only its work: the tokenizer, the stat memo (decoded,
in memory) and the wrappers' counts are kept between packs (packing.Resident), and the memo
decides what to read, not the events. Events only say when to look: the system's file events
(inotify, through watchdog), or polling where those cannot be had (the inotify watch limit, a
network file system). A burst of writes (a save, a checkout) is one re-pack: packing waits
until the paths have been quiet for `settle_s`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.services.packing import PackInput, PackOutcome, Resident, pack
from app.settings import get_settings
from common.errors import UserError
from ingest.pipeline import Progress
from ingest.types import IngestError

#: what a file's writer does that can change what a pack reads (not opening or reading it:
#: the pack itself opens files)
CHANGES = frozenset({"created", "modified", "deleted", "moved", "closed", "events_lost"})
#: the longest a burst of writes holds a re-pack back
MAX_SETTLE_S = 1.0


@dataclass(frozen=True)
class Repack:
    """One pack of a watch: what it gave, or why it failed, and how long it took."""

    outcome: PackOutcome | None
    error: str | None
    seconds: float
    events: str  # how changes are seen: "file events" or "polling every N s"


class _Changes:
    """Collects watchdog's events under the watched paths, leaving out the pack's own files."""

    def __init__(self, inputs: list[Path], ignored: list[Path]) -> None:
        self.folders = [p for p in inputs if p.is_dir()]
        self.files = {p for p in inputs if not p.is_dir()}
        self.ignored = ignored
        self.seen = threading.Event()
        self.last = 0.0  # monotonic time of the last change

    def _concerns(self, where: str) -> bool:
        path = Path(where)
        if any(path == i or path.is_relative_to(i) for i in self.ignored):
            return False
        if ".git" in path.parts[:-1]:  # git's own files (`git status` rewrites the index):
            return False  # never packed; a .git folder made or removed still counts
        return path in self.files or any(path.is_relative_to(f) for f in self.folders)

    def dispatch(self, event) -> None:  # watchdog's handler protocol
        if event.event_type not in CHANGES or (event.is_directory
                                               and event.event_type == "modified"):
            return  # a folder is "modified" by what changes in it, which has its own event
        paths = [event.src_path, getattr(event, "dest_path", "") or ""]
        if event.event_type == "events_lost" or any(
                p and self._concerns(p if isinstance(p, str) else p.decode()) for p in paths):
            self.last = time.monotonic()
            self.seen.set()


def _identities(folders: list[Path]) -> list[tuple[int, int] | None]:
    """Each folder's (device, inode), None where it is gone."""
    out: list[tuple[int, int] | None] = []
    for folder in folders:
        try:
            st = folder.stat()
        except OSError:
            out.append(None)
            continue
        out.append((st.st_dev, st.st_ino))
    return out


def _observe(changes: _Changes, poll_s: float, events: bool):
    """A started observer of the paths; polling when file events are off or cannot be had."""
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    def start(observer):
        for folder in changes.folders:
            observer.schedule(changes, str(folder), recursive=True)
        for parent in sorted({f.parent for f in changes.files}):
            observer.schedule(changes, str(parent), recursive=False)
        observer.start()
        return observer

    if events:
        try:
            return start(Observer()), "file events", None
        except OSError as exc:  # e.g. inotify's watch limit: too many folders
            why = f"file events unavailable ({exc.strerror or exc})"
    else:
        why = None
    return start(PollingObserver(timeout=poll_s)), f"polling every {poll_s:g} s", why


def watch(job: PackInput, packed: Callable[[Repack], None], stop: threading.Event,
          progress: Progress | None = None, note: Callable[[str], None] | None = None,
          settle_s: float = 0.05, poll_s: float = 1.0, events: bool = True) -> None:
    """Pack `job` (paths on disk, written to a file), then again after each change under its
    paths, until `stop` is set. The first pack's error is raised (nothing was ever packed); a
    later one is handed to `packed` and watching goes on (a file mid-save, a folder emptied)."""
    if job.out in (None, "-"):
        raise IngestError("--watch writes each pack to a file: give --out FILE")
    inputs = [Path(t).expanduser() for t in job.target]
    for given, path in zip(job.target, inputs, strict=True):
        if not path.exists():
            raise IngestError(f"--watch packs paths on disk: {given} is not one")
    inputs = [p.resolve() for p in inputs]
    # realpath: an output that is a symlink loop is the first pack's one-line error
    ignored = [Path(os.path.realpath(Path(p).expanduser())) for p in (job.out, job.manifest)
               if p]
    # the data folder, should it lie inside a path: each pack writes its memo, caches and
    # temporary files there, which must not wake the next pack
    ignored.append(get_settings().home_dir.expanduser().resolve())
    resident = Resident()
    changes = _Changes(inputs, ignored)
    # the folders watched: one deleted, or replaced (a checkout that swaps the folder), takes
    # its watch with it, so the watches are made again once it is back
    watched = sorted({p if p.is_dir() else p.parent for p in inputs})
    # watch before the first pack: a change made while it runs is packed next
    observer, how, why = _observe(changes, poll_s, events)
    seen_as = _identities(watched)
    try:
        if why and note:
            note(f"{why}: {how}")
        began = time.monotonic()
        outcome = pack(job, progress, note, resident=resident)
        packed(Repack(outcome, None, time.monotonic() - began, how))
        while not stop.is_set():
            if (now := _identities(watched)) != seen_as and None not in now:
                _halt(observer)
                observer = None
                changes = _Changes(inputs, ignored)
                try:
                    observer, how, why = _observe(changes, poll_s, events)
                except OSError:  # gone again meanwhile: tried again in a moment
                    stop.wait(0.2)
                    continue
                seen_as = now
                changes.last = time.monotonic()
                changes.seen.set()  # what is there now is packed
            if not changes.seen.wait(0.2):
                continue
            first = time.monotonic()
            while not stop.is_set():  # quiet for settle_s, or MAX_SETTLE_S since the first
                left = min(changes.last + settle_s, first + MAX_SETTLE_S) - time.monotonic()
                if left <= 0:
                    break
                time.sleep(left)
            if stop.is_set():
                break
            changes.seen.clear()
            began = time.monotonic()
            try:
                outcome = pack(job, None, None, resident=resident)  # one line a re-pack
                packed(Repack(outcome, None, time.monotonic() - began, how))
            except (UserError, OSError) as exc:  # the next change may mend it
                packed(Repack(None, str(exc), time.monotonic() - began, how))
    finally:
        _halt(observer)


def _halt(observer) -> None:
    if observer is not None:
        observer.stop()
        observer.join(timeout=5)
