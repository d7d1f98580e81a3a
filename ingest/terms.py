"""A text's index terms, and a stream of segments' terms extracted on every core.

Extracting terms is most of an index build (four regex passes: 34 s of 82 s for 80.7M tokens of
site-packages), and one process did it while the other core idled. Workers now extract each
batch's terms and count them per segment; the build keeps the one thing that must be in one
place, the vocabulary, and maps each batch's distinct terms to ids once. Workers return a
batch's distinct terms in order of first occurrence, so ids are given in the same order as a
build in one process gives them: the index is the same file for file.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import re
import signal
from array import array
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

WORDS = re.compile(r"[a-z]{2,}|[0-9]+")  # on lower-cased text: words and snake_case parts
#: mixed-case identifiers (`RedirectResponse`, `getValue`, `HTTPConnection`), split by HUMPS
MIXED = re.compile(r"\b[a-z]+[A-Z][A-Za-z]*|\b[A-Z][a-z]+[A-Z][A-Za-z]*|\b[A-Z]{2,}[a-z][A-Za-z]*")
HUMPS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")  # `HTTPConnection` -> `HTTP`, `Connection`
#: snake_case identifiers, matched whole too (camelCase ones already are: WORDS on lower case)
COMPOUND = re.compile(r"\b_*[A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+\b")

BATCH_CHARS = 1 << 20  # segments' text sent to a worker at a time (~250K tokens)
#: segments' text extracted in this process before a pool starts: a small build (every
#: test's, a question's rebuild of a small corpus) never pays for one
POOL_AFTER_CHARS = 8 << 20
SMALL_BATCH_CHARS = 64 << 10  # a batch smaller than this is extracted here, not sent
IN_FLIGHT_PER_WORKER = 3  # batches submitted and not yet taken, per worker (bounds memory)


def terms(text: str) -> list[str]:
    """Lower-cased words, snake_case parts, camelCase parts (`RedirectResponse` gives
    `redirectresponse`, `redirect` and `response`, so "a redirect response" meets it) and
    snake_case identifiers whole (`load_tokenizer`): regex passes in C."""
    return (WORDS.findall(text.lower())
            + [h.lower() for h in HUMPS.findall(" ".join(MIXED.findall(text)))]
            + [c.lower().strip("_") for c in COMPOUND.findall(text)])


@dataclass(frozen=True)
class BatchTerms:
    """A batch of segments' terms: the batch's distinct terms once, in order of first
    occurrence, and each segment's distinct terms as indexes into them with their counts."""

    words: list[str]
    which: array  # per (segment, term) pair: the term's index in `words`
    counts: array  # per pair: how often the segment has the term
    distinct: array  # per segment: how many pairs are its


def batch_terms(rows: list[tuple[str, str]]) -> BatchTerms:
    """The terms of (path, text) segments: a segment's path counts as part of its text."""
    words: dict[str, int] = {}
    which, counts, distinct = array("I"), array("I"), array("I")
    for path, text in rows:
        seen = Counter(terms(path) + terms(text))
        which.extend([words.setdefault(w, len(words)) for w in seen])
        counts.extend(seen.values())
        distinct.append(len(seen))
    return BatchTerms(list(words), which, counts, distinct)


def by_segment(ids, counts, distinct) -> tuple[Any, Any, Any, Any]:
    """Pairs of a batch (each segment's term ids, in any order, maybe repeated: two words with
    one stem) as the index stores them: per segment, ascending distinct ids with summed counts.
    Returns (ids, counts, distinct per segment, terms per segment)."""
    import numpy as np

    distinct = np.frombuffer(distinct, dtype=np.uint32) if isinstance(distinct, array) \
        else np.asarray(distinct, dtype=np.uint32)
    counts = np.asarray(counts, dtype=np.uint32)
    segment = np.repeat(np.arange(len(distinct), dtype=np.uint64), distinct)
    key = (segment << np.uint64(32)) | np.asarray(ids, dtype=np.uint64)
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(first)
    summed = np.add.reduceat(counts[order].astype(np.int64), starts) if len(starts) else \
        np.zeros(0, dtype=np.int64)
    kept = key[starts]
    per_segment = np.bincount((kept >> np.uint64(32)).astype(np.int64),
                              minlength=len(distinct)).astype(np.uint32)
    lengths = np.bincount(segment.astype(np.int64), weights=counts,
                          minlength=len(distinct)).astype(np.int64)
    return ((kept & np.uint64(0xFFFFFFFF)).astype(np.uint32), summed.astype(np.uint32),
            per_segment, lengths)


class TermBatches:
    """Segments' terms in the order the segments were given, extracted in worker processes
    once the build is big enough (POOL_AFTER_CHARS), with a bounded number of batches in
    flight. `add` a new segment's text, `put` an item that needs no extracting (a reused
    segment's terms) in its place; `ready()` yields what is done in order, `finish()` the rest.
    Items come out as BatchTerms or as whatever was `put`. If a worker dies (killed for
    memory), its batches and the rest are extracted in this process."""

    def __init__(self, workers: int):
        self.workers, self.pool_after, self.batch_chars = workers, POOL_AFTER_CHARS, BATCH_CHARS
        self._rows: list[tuple[str, str]] = []
        self._chars = 0
        self._seen = 0  # characters extracted or sent so far
        self._pending: deque[Any] = deque()
        self._pool: ProcessPoolExecutor | None = None
        self._ctx: Any = None

    def add(self, path: str, text: str) -> None:
        self._rows.append((path, text))
        self._chars += len(text)
        if self._chars >= self.batch_chars:
            self._send()

    def put(self, item: Any) -> None:
        self._send()
        self._pending.append(item)

    def ready(self) -> Iterator[Any]:
        limit = self.workers * IN_FLIGHT_PER_WORKER
        while self._pending and (len(self._pending) > limit
                                 or not isinstance(self._pending[0], _Sent)
                                 or self._pending[0].future.done()):
            yield self._take()

    def finish(self) -> Iterator[Any]:
        self._send()
        while self._pending:
            yield self._take()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        self._ctx = None

    def __enter__(self) -> TermBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self) -> Any:
        item = self._pending.popleft()
        if not isinstance(item, _Sent):
            return item
        try:
            return item.future.result()
        except BrokenProcessPool:  # a worker was killed (out of memory): go on in this process
            self._broken()
            return batch_terms(item.rows)

    def _broken(self) -> None:
        self.close()
        self.workers = 1

    def _send(self) -> None:
        if not self._rows:
            return
        rows, chars, self._rows = self._rows, self._chars, []
        self._seen += chars
        self._chars = 0
        # a small batch (a few new segments between reused ones) costs more to send than to do
        if self.workers <= 1 or chars < SMALL_BATCH_CHARS or (
                self._pool is None and self._seen <= self.pool_after):
            self._pending.append(batch_terms(rows))
            return
        from ingest.pipeline import _main_kept_from_workers, _start_method

        frozen = False
        if self._pool is None:  # started as the ingest's readers are (forked where safe)
            self._ctx = multiprocessing.get_context(_start_method(False))
            self._pool = ProcessPoolExecutor(self.workers, mp_context=self._ctx,
                                             initializer=_init_worker, initargs=(os.getpid(),))
            gc.freeze()  # forked workers never collect (and finalize) this process's objects
            frozen = True
        try:
            with _main_kept_from_workers(self._ctx):  # a spawned worker starts in submit()
                self._pending.append(_Sent(self._pool.submit(batch_terms, rows), rows))
        except BrokenProcessPool:
            self._broken()
            self._pending.append(batch_terms(rows))
        finally:
            if frozen:
                gc.unfreeze()


@dataclass(frozen=True)
class _Sent:
    """A batch in a worker, with its rows: extracted here again if the worker dies."""

    future: Future
    rows: list[tuple[str, str]]


def _init_worker(parent: int) -> None:
    """A worker dies with its build and leaves Ctrl-C to it."""
    from ingest.counting import die_with_parent

    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and SIGTERM
