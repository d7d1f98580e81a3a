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
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from ingest.tokenizers import Tokenizer, load_tokenizer
from ingest.types import Document

BATCH_CHARS = 1_000_000
INLINE_CHARS = 2_000_000  # below this much uncounted text, a pool costs more than it saves


#: verdict keys with this prefix hold a whole read (ingest/readmemo.py): kept in their own
#: table and looked up one at a time, not loaded with the small verdicts
READS_PREFIX = "read|"


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


#: a cache file up to this size is read whole at the first lookup (a re-pack then looks up
#: 50,000 segments for next to nothing); a larger one is asked key by key, in batches, so a
#: billion-token corpus's 12M counts never sit in memory at once
PRELOAD_BYTES = 64 << 20
#: at most this many entries are held in memory: new ones are written out past it, and a
#: whole-read cache that grew past it is asked key by key from then on
HELD = 200_000
BATCH_KEYS = 500  # keys a query asks at once (SQLite allows 32,766 parameters)


class TokenCache:
    """Token counts by (tokenizer fingerprint, text hash) in one SQLite file, with the content
    verdicts (noise, secret checks) and remembered reads (ingest/readmemo.py) beside them.
    Memory is bounded: small caches are read whole, large ones asked key by key, and new
    entries are written out every HELD."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self._known: dict[str, int] | None = None
        self._new: dict[str, int] = {}
        self._verdicts: dict[str, str] | None = None
        self._new_verdicts: dict[str, str] = {}
        self._conn: sqlite3.Connection | None = None  # open while keys are looked up one by one
        self._whole: bool | None = None  # read whole (None: not decided yet)

    def _connect(self, shared: bool = False) -> sqlite3.Connection:
        """A connection; `shared`: one kept open, used from whichever thread asks next."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=not shared)
        # a cache: no fsync. It cost 0.05 s of a 0.4 s re-pack (an fsync also writes out the
        # output the last pack left dirty); the journal still keeps a killed write all or
        # nothing, and a file an OS crash damaged is made anew (_damaged)
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("CREATE TABLE IF NOT EXISTS counts (fp TEXT, key TEXT, tokens INTEGER, "
                     "PRIMARY KEY (fp, key)) WITHOUT ROWID")
        conn.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, reason TEXT) "
                     "WITHOUT ROWID")
        conn.execute("CREATE TABLE IF NOT EXISTS reads (key TEXT PRIMARY KEY, value TEXT)")
        return conn

    def _damaged(self, exc: sqlite3.Error) -> None:
        """A file that is no database (damaged, or another's) is dropped: made anew at the next
        write. A locked or full one (OperationalError) is only passed over."""
        if type(exc) is sqlite3.DatabaseError:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            for stale in (self.path, self.path.with_name(self.path.name + "-journal")):
                stale.unlink(missing_ok=True)

    def _read_whole(self) -> bool:
        if self._whole is None:
            try:
                self._whole = self.path.stat().st_size <= PRELOAD_BYTES
            except OSError:
                self._whole = True  # no file yet: nothing to read
        return self._whole

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        """Rows of one query on the kept connection; none if the cache cannot be read."""
        try:
            if self._conn is None:
                self._conn = self._connect(shared=True)
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:  # an unreadable cache is only a slower run
            self._damaged(exc)
            return []

    def get(self, key: str) -> int | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: list[str]) -> dict[str, int]:
        """The cached counts of those keys that have one."""
        out = {k: self._new[k] for k in keys if k in self._new}
        if self._read_whole():
            if self._known is None:
                try:
                    with self._connect() as conn:
                        rows = conn.execute("SELECT key, tokens FROM counts WHERE fp = ?",
                                            (self.fingerprint,))
                        self._known = dict(rows.fetchall())
                except sqlite3.Error as exc:
                    self._damaged(exc)
                    self._known = {}
            out.update((k, self._known[k]) for k in keys if k in self._known)
            return out
        ask = [k for k in keys if k not in out]
        for i in range(0, len(ask), BATCH_KEYS):
            part = ask[i:i + BATCH_KEYS]
            out.update(self._query(
                "SELECT key, tokens FROM counts WHERE fp = ? AND key IN "
                f"({','.join('?' * len(part))})", (self.fingerprint, *part)))
        return out

    def put(self, key: str, tokens: int) -> None:
        self._new[key] = tokens
        if len(self._new) >= HELD:
            self.flush()

    # content verdicts: (file sha256, filter options) -> reason ("" when clean), a secret
    # check's outcome; and reads (READS_PREFIX), looked up one at a time
    def verdict(self, key: str) -> str | None:
        if key in self._new_verdicts:
            return self._new_verdicts[key]
        if key.startswith(READS_PREFIX):
            rows = self._query("SELECT value FROM reads WHERE key = ?", (key,))
            return rows[0][0] if rows and isinstance(rows[0][0], str) else None
        if not self._read_whole():
            rows = self._query("SELECT reason FROM verdicts WHERE key = ?", (key,))
            return rows[0][0] if rows and isinstance(rows[0][0], str) else None
        if self._verdicts is None:
            try:
                with self._connect() as conn:
                    self._verdicts = {k: v for k, v in conn.execute(
                        "SELECT key, reason FROM verdicts") if isinstance(v, str)}
            except sqlite3.Error as exc:
                self._damaged(exc)
                self._verdicts = {}
        return self._verdicts.get(key)

    def put_verdict(self, key: str, reason: str) -> None:
        self._new_verdicts[key] = reason
        if len(self._new_verdicts) >= HELD:
            self.flush()

    def flush(self) -> None:
        if not self._new and not self._new_verdicts:
            return
        try:
            with self._connect() as conn:
                conn.executemany("INSERT OR REPLACE INTO counts VALUES (?, ?, ?)",
                                 [(self.fingerprint, k, v) for k, v in self._new.items()])
                conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?)",
                                 [(k, v) for k, v in self._new_verdicts.items()
                                  if not k.startswith(READS_PREFIX)])
                conn.executemany("INSERT OR REPLACE INTO reads VALUES (?, ?)",
                                 [(k, v) for k, v in self._new_verdicts.items()
                                  if k.startswith(READS_PREFIX)])
        except sqlite3.Error as exc:  # e.g. disk full: the counts are still right, just not
            self._damaged(exc)  # remembered
        if self._known is not None:
            self._known.update(self._new)
        if self._verdicts is not None:
            self._verdicts.update((k, v) for k, v in self._new_verdicts.items()
                                  if not k.startswith(READS_PREFIX))
        if len(self._known or ()) + len(self._verdicts or ()) > HELD:
            self._known = self._verdicts = None  # grown large: asked key by key from now on
            self._whole = False
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
        fut = self.submit_texts([t for _, t in items])
        self._futures.append(([k for k, _ in items], fut))

    def submit_texts(self, texts: list[str]) -> Future:
        """Counts of `texts`, in order, from the pool (started now if need be)."""
        if self._pool is None:
            self._pool = self._start_pool()
        if isinstance(self._pool, ThreadPoolExecutor):
            return self._pool.submit(lambda ts: [self.tokenizer.count(t) for t in ts], texts)
        return self._pool.submit(_count_batch, texts)

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
    return list(count_stream(docs, tokenizer, cache, workers, on_document))


#: documents counted together: what waits in memory for its counts is this many at most,
#: times the chunks in flight (a million one-byte files held ~0.5 GB of keys and counts)
CHUNK_DOCS = 2_000


def count_stream(docs: Iterable[Document], tokenizer: Tokenizer, cache: TokenCache | None,
                 workers: int = 0,
                 on_document: Callable[[Document], None] | None = None) -> Iterator[Document]:
    """The documents with their tokens filled in, in the order given, as their counts come
    back: chunks of documents are counted in worker processes while more are read, and only
    the chunks in flight wait in memory. A pool starts once there is enough text to pay for
    it; below that, texts are counted here."""
    counter = _ChunkCounter(tokenizer, workers)
    chunk: list[Document] = []
    chars = 0
    try:
        for doc in docs:
            chunk.append(doc)
            chars += sum(len(seg.text) for seg in doc.segments)
            if on_document is not None:
                on_document(doc)
            if len(chunk) >= CHUNK_DOCS or chars >= BATCH_CHARS:
                yield from counter.submit(_Chunk(chunk, cache))
                chunk, chars = [], 0
        if chunk:
            yield from counter.submit(_Chunk(chunk, cache))
        yield from counter.drain()
    finally:
        counter.close()
        if cache is not None:
            cache.flush()


class _Chunk:
    """Documents counted together: cached counts found now, the rest's texts sent off."""

    def __init__(self, docs: list[Document], cache: TokenCache | None) -> None:
        self.docs, self.cache = docs, cache
        self.counts: list[list[int | None]] = []
        self.texts: list[str] = []
        keys = [[] if doc.counted or cache is None
                else [_segment_key(doc, s) for s in range(len(doc.segments))] for doc in docs]
        cached = cache.get_many([k for row in keys for k in row]) if cache is not None else {}
        self.keys = keys
        for doc, doc_keys in zip(docs, keys, strict=True):
            row: list[int | None] = []
            if doc.counted:  # counted where it was read
                for s, seg in enumerate(doc.segments):
                    row.append(seg.tokens - seg.extra_tokens)
                    if cache is not None:
                        cache.put(_segment_key(doc, s), row[-1])
                self.counts.append(row)
                continue
            for key, seg in zip(doc_keys or [None] * len(doc.segments), doc.segments,
                                strict=True):
                known = cached.get(key) if key is not None else None
                row.append(known)
                if known is None:
                    self.texts.append(seg.text)
            self.counts.append(row)

    def finish(self, counted: list[int]) -> list[Document]:
        """The documents with their tokens, the new counts remembered in the cache."""
        new = iter(counted)
        for doc, row, keys in zip(self.docs, self.counts, self.keys, strict=True):
            tokens = []
            for s, cached in enumerate(row):
                if cached is None:
                    cached = next(new)
                    if self.cache is not None:
                        self.cache.put(keys[s], cached)
                tokens.append(cached)
            doc.segments = [replace(seg, tokens=n + seg.extra_tokens)
                            for seg, n in zip(doc.segments, tokens, strict=True)]
            doc.tokens = sum(seg.tokens for seg in doc.segments)
        return self.docs


def _segment_key(doc: Document, s: int) -> str:
    seg = doc.segments[s]
    return f"{doc.content_key}|{s}" if doc.content_key else text_key(seg.text)


class _ChunkCounter:
    """Counts chunks in order: here while there is little text, then in a pool with a bounded
    number of chunks in flight."""

    def __init__(self, tokenizer: Tokenizer, workers: int) -> None:
        self._counter = Counter(tokenizer, workers)
        self._chars = 0
        self._flight: deque[tuple[_Chunk, Future]] = deque()

    def submit(self, chunk: _Chunk) -> Iterator[Document]:
        counter = self._counter
        self._chars += sum(map(len, chunk.texts))
        if counter.workers <= 1 or (counter._pool is None and self._chars < INLINE_CHARS):
            yield from self.drain()  # keep the order: earlier chunks first
            yield from chunk.finish([counter.tokenizer.count(t) for t in chunk.texts])
            return
        if counter._pool is None:
            counter._pool = counter._start_pool()
        self._flight.append((chunk, counter.submit_texts(chunk.texts)))
        chunk.texts = []
        while len(self._flight) > counter.workers * 2:
            yield from self._take()

    def _take(self) -> list[Document]:
        chunk, fut = self._flight.popleft()
        return chunk.finish(fut.result())

    def drain(self) -> Iterator[Document]:
        while self._flight:
            yield from self._take()

    def close(self) -> None:
        if self._counter._pool is not None:
            self._counter._pool.shutdown(cancel_futures=True)
