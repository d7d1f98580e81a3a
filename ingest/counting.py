"""Exact token counts for every segment, in parallel, with a persistent cache.

Counting dominates a cold pack (about 10M tokens for the standard library), so texts are
batched to worker processes while the caller is still reading files, and every count is kept in
a small SQLite file keyed by (tokenizer fingerprint, hash of the text): a re-pack after one
change counts one file.
"""

from __future__ import annotations

import ctypes
import hashlib
import multiprocessing
import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from ingest.tokenizers import Tokenizer, load_tokenizer
from ingest.types import Document

BATCH_CHARS = 1_000_000
INLINE_CHARS = 2_000_000  # below this much uncounted text, a pool costs more than it saves


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class TokenCache:
    """Token counts by (tokenizer fingerprint, text hash) in one SQLite file."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self._known: dict[str, int] | None = None
        self._new: dict[str, int] = {}
        self._verdicts: dict[str, str] | None = None
        self._new_verdicts: dict[str, str] = {}

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("CREATE TABLE IF NOT EXISTS counts (fp TEXT, key TEXT, tokens INTEGER, "
                     "PRIMARY KEY (fp, key)) WITHOUT ROWID")
        conn.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, reason TEXT) "
                     "WITHOUT ROWID")
        return conn

    def get(self, key: str) -> int | None:
        if self._known is None:
            try:
                with self._connect() as conn:
                    rows = conn.execute("SELECT key, tokens FROM counts WHERE fp = ?",
                                        (self.fingerprint,))
                    self._known = dict(rows.fetchall())
            except sqlite3.Error:  # an unreadable cache is only a slower run
                self._known = {}
        return self._known.get(key)

    def put(self, key: str, tokens: int) -> None:
        self._new[key] = tokens

    # noise verdicts by content: (file sha256, filter options) -> reason, "" when clean
    def verdict(self, key: str) -> str | None:
        if self._verdicts is None:
            try:
                with self._connect() as conn:
                    self._verdicts = dict(conn.execute("SELECT key, reason FROM verdicts"))
            except sqlite3.Error:
                self._verdicts = {}
        return self._verdicts.get(key)

    def put_verdict(self, key: str, reason: str) -> None:
        self._new_verdicts[key] = reason

    def flush(self) -> None:
        if not self._new and not self._new_verdicts:
            return
        try:
            with self._connect() as conn:
                conn.executemany("INSERT OR REPLACE INTO counts VALUES (?, ?, ?)",
                                 [(self.fingerprint, k, v) for k, v in self._new.items()])
                conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?)",
                                 list(self._new_verdicts.items()))
        except sqlite3.Error:
            pass  # e.g. disk full: the counts are still right, just not remembered
        if self._known is not None:
            self._known.update(self._new)
        if self._verdicts is not None:
            self._verdicts.update(self._new_verdicts)
        self._new.clear()
        self._new_verdicts.clear()


_worker_tokenizer: Tokenizer | None = None


def die_with_parent(parent: int) -> None:
    """A worker must not outlive its ingest: a `kill -9` of the parent leaves no orphans.
    Linux's PR_SET_PDEATHSIG does it; elsewhere the executor's own shutdown is all there is."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _init_worker(spec: str, cache_dir: Path | None, parent: int) -> None:
    global _worker_tokenizer
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and SIGTERM
    _worker_tokenizer = load_tokenizer(spec, cache_dir)


def _count_batch(texts: list[str]) -> list[int]:
    assert _worker_tokenizer is not None
    return [_worker_tokenizer.count(t) for t in texts]


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class Counter:
    """Counts texts submitted one by one; a worker pool starts only once there is enough work."""

    def __init__(self, tokenizer: Tokenizer, workers: int = 0) -> None:
        self.tokenizer = tokenizer
        self.workers = workers or default_workers()
        self._pool: Executor | None = None
        self._batch: list[tuple[object, str]] = []
        self._batch_chars = 0
        self._pending_chars = 0
        self._futures: list[tuple[list[object], Future]] = []
        self._inline: list[tuple[object, str]] = []

    def _start_pool(self) -> Executor:
        if self.tokenizer.parallelism == "threads":
            return ThreadPoolExecutor(self.workers)
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        return ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(self.tokenizer.spec, self.tokenizer.cache_dir,
                                             os.getpid()))

    def _submit(self, items: list[tuple[object, str]]) -> None:
        if self._pool is None:
            self._pool = self._start_pool()
        texts = [t for _, t in items]
        if isinstance(self._pool, ThreadPoolExecutor):
            fut = self._pool.submit(lambda ts: [self.tokenizer.count(t) for t in ts], texts)
        else:
            fut = self._pool.submit(_count_batch, texts)
        self._futures.append(([k for k, _ in items], fut))

    def add(self, key: object, text: str) -> None:
        self._pending_chars += len(text)
        if self.workers <= 1:
            self._inline.append((key, text))
            return
        self._batch.append((key, text))
        self._batch_chars += len(text)
        if self._pending_chars >= INLINE_CHARS and self._batch_chars >= BATCH_CHARS:
            self._submit(self._batch)
            self._batch, self._batch_chars = [], 0

    def results(self) -> dict[object, int]:
        out: dict[object, int] = {}
        try:
            if self._pool is None:  # little work: count here
                self._inline += self._batch
                self._batch = []
            elif self._batch:
                self._submit(self._batch)
                self._batch = []
            for key, text in self._inline:
                out[key] = self.tokenizer.count(text)
            for keys, fut in self._futures:
                out.update(zip(keys, fut.result(), strict=True))
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
        return out


def count_documents(docs: Iterable[Document], tokenizer: Tokenizer, cache: TokenCache | None,
                    workers: int = 0,
                    on_document: Callable[[Document], None] | None = None) -> list[Document]:
    """Fill in tokens for every segment and document (docs may be a generator still reading)."""
    counter = Counter(tokenizer, workers)
    collected: list[Document] = []
    keys: dict[tuple[int, int], str] = {}
    known: dict[tuple[int, int], int] = {}
    for d, doc in enumerate(docs):
        collected.append(doc)
        for s, seg in enumerate(doc.segments):
            key = f"{doc.content_key}|{s}" if doc.content_key else text_key(seg.text)
            cached = cache.get(key) if cache is not None else None
            if cached is not None:
                known[(d, s)] = cached
            else:
                keys[(d, s)] = key
                counter.add((d, s), seg.text)
        if on_document is not None:
            on_document(doc)
    counted = counter.results()
    if cache is not None:
        for ds, key in keys.items():
            cache.put(key, counted[ds])
        cache.flush()
    known.update(counted)  # type: ignore[arg-type]
    for d, doc in enumerate(collected):
        doc.segments = [replace(seg, tokens=known[(d, s)] + seg.extra_tokens)
                        for s, seg in enumerate(doc.segments)]
        doc.tokens = sum(seg.tokens for seg in doc.segments)
    return collected
