"""The ingest pipeline: collect -> filter -> read -> process -> count, as one pass.

Reading and processing (hashing, parsing, secret and injection checks) run in worker processes
once there are enough files, results taken back in order; counting runs in its own pool.

Files whose sha256 matches what the caller already has (`known`) are reported unchanged and
neither re-segmented nor re-counted: that is what makes re-ingesting incremental.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import signal
import sys
import tempfile
import types
from array import array
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from ingest.collect import Candidates, CollectOptions, collect
from ingest.counting import TokenCache, count_stream, default_workers, die_with_parent
from ingest.documents import ProcessOptions, process, read_bytes
from ingest.filters import IMAGE_SUFFIXES
from ingest.ocr import limit_threads, openmp_loaded
from ingest.statmemo import Output, StatMemo
from ingest.tokenizers import Tokenizer, load_tokenizer
from ingest.types import Candidate, Document, IngestError, Skipped
from ingest.video import VIDEO_SUFFIXES

#: progress(stage, done, total, detail): stage is "collect", "read" or "count"
Progress = Callable[[str, int, int, str], None]


@dataclass(frozen=True)
class PipelineOptions:
    collect: CollectOptions = field(default_factory=CollectOptions)
    process: ProcessOptions = field(default_factory=ProcessOptions)
    workers: int = 0


class DocumentSpool:
    """The pipeline's documents in a staging file instead of memory (a million small files held
    ~1.5 KB each between reading and writing): appended as they are counted, read back in the
    order given or in path order. Only an offset per document stays in memory."""

    def __init__(self) -> None:
        # closed by close(), or with the object: it outlives any one block
        self._file = tempfile.TemporaryFile(prefix="scoutlens-ingest-")  # noqa: SIM115
        self._offsets = array("q")
        self.tokens = 0
        self._last = ""
        self.sorted = True  # appended in path order (collect's order, for one input)
        self._order: array | None = None

    def append(self, doc: Document) -> None:
        # pickle of this process's own Documents into an unlinked file only this process holds
        # (as the worker pool already pickles them): no one else writes what is loaded back
        try:
            offset = self._file.tell()
            pickle.dump(doc, self._file, pickle.HIGHEST_PROTOCOL)
        except OSError as exc:
            self.close()
            raise IngestError(
                f"the ingest's staging file in {tempfile.gettempdir()} could not be written "
                f"({exc.strerror or exc}); free space there or point TMPDIR elsewhere; "
                "nothing was stored") from None
        self._offsets.append(offset)
        self.tokens += doc.tokens
        self.sorted = self.sorted and doc.path >= self._last
        self._last = doc.path

    def __len__(self) -> int:
        return len(self._offsets)

    def __iter__(self) -> Iterator[Document]:
        self._file.flush()
        self._file.seek(0)
        for _ in range(len(self._offsets)):
            yield pickle.load(self._file)
        self._file.seek(0, os.SEEK_END)

    def _at(self, i: int) -> Document:
        self._file.seek(self._offsets[i])
        return pickle.load(self._file)

    def in_path_order(self) -> Iterator[Document]:
        """The documents sorted by path (read as they lie when they were appended so)."""
        if self.sorted:
            yield from self
            return
        if self._order is None:
            paths = [d.path for d in self]
            self._order = array("q", sorted(range(len(paths)), key=paths.__getitem__))
            del paths
        self._file.flush()
        try:
            for i in self._order:
                yield self._at(i)
        finally:
            self._file.seek(0, os.SEEK_END)

    def rewrite(self, change: Callable[[Document], Document | None]) -> DocumentSpool:
        """A new spool of `change(doc)` for every document, those it maps to None left out."""
        out = DocumentSpool()
        for doc in self:
            if (new := change(doc)) is not None:
                out.append(new)
        self.close()
        return out

    def close(self) -> None:
        self._file.close()


def spooled(docs: Iterable[Document]) -> DocumentSpool:
    spool = DocumentSpool()
    for doc in docs:
        spool.append(doc)
    return spool


@dataclass
class PipelineResult:
    documents: list[Document] | DocumentSpool
    skipped: list[Skipped]
    unchanged: dict[str, str]  # path -> sha256 of files identical to the known version
    notes: list[str]
    roots: list[str]
    seen: int  # candidates looked at


def _noop(stage: str, done: int, total: int, detail: str) -> None:
    pass


#: at least this many files before reading moves to worker processes (a pool costs ~0.2 s)
PARALLEL_FILES = 200
#: a picture, PDF or video costs seconds (OCR, decoding), not milliseconds: it counts as this
#: many files, so four scans are read on both cores (40 scans: 64 s on one core, 33 s on two)
HEAVY_FILE_WEIGHT = 50
HEAVY_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES | {".pdf"}
WINDOW_PER_WORKER = 32  # files in flight per worker: bounds what waits in memory
INLINE_HEAVY_BYTES = 256 * 1024  # a seen picture, PDF or video up to this size is read here
UNSEEN_INLINE = 64  # new files read here before a pool starts for the rest
SEEN_PROBE = 32  # new files in a row after which the pool is assumed to get the rest


@dataclass
class _Read:
    """What reading one candidate gave: a document, a skip, or "unchanged" (its sha256)."""

    index: int
    document: Document | None = None
    skipped: Skipped | None = None
    unchanged: str | None = None
    noise: str | None = None  # the path rule that matched but is switched off
    verdicts: dict[str, str] = field(default_factory=dict)  # new content verdicts to remember
    #: the bytes came from the file as it was listed (its stamp then and as read agree): only
    #: then may a stat memo keep what they gave
    settled: bool = False


class _Memo:
    """Content verdicts read from the cache, new ones kept to hand back to the parent (a
    worker never writes the cache: the parent does, once)."""

    def __init__(self, cache: TokenCache | None):
        self._cache, self.new = cache, {}

    def verdict(self, key: str) -> str | None:
        return self.new.get(key) or (self._cache.verdict(key) if self._cache else None)

    def put_verdict(self, key: str, reason: str) -> None:
        self.new[key] = reason


def _read_one(i: int, cand: Candidate, options: ProcessOptions, known_sha: str | None,
              memo: _Memo, seen_only: bool = False) -> _Read | None:
    """Candidate i read and processed. With `seen_only`, only when it is cheap here: its
    content seen before (the cache holds its verdicts) and no large picture, PDF or video to
    OCR; else None (a worker does it)."""
    noise = options.noise
    reason = noise.by_path(cand.path, cand.size)
    if reason is not None and noise.enabled(reason):
        return _Read(i, skipped=Skipped(cand.path, cand.root, cand.size, "skipped", reason),
                     settled=cand.stamp is not None)  # decided by its path and listed size
    if seen_only and cand.size > INLINE_HEAVY_BYTES and _heavy(cand.path, options):
        return None
    stamped: list = []
    data = read_bytes(cand, stamped if cand.stamp is not None else None)
    if isinstance(data, Skipped):
        return _Read(i, skipped=data)
    settled = cand.stamp is not None and stamped == [cand.stamp]
    sha = hashlib.sha256(data).hexdigest()
    if known_sha == sha:
        return _Read(i, unchanged=sha)
    if seen_only and memo.verdict(f"{sha}|{options.noise.options!r}") is None:
        return None
    memo.new = {}
    result = process(cand, data, options, sha, memo)
    if isinstance(result, Skipped):
        return _Read(i, skipped=result, verdicts=memo.new, settled=settled)
    return _Read(i, document=result, noise=reason, verdicts=memo.new, settled=settled)


_worker: tuple[ProcessOptions, _Memo, Tokenizer | None] | None = None


def _init_reader(options: ProcessOptions, cache: tuple[Path, str] | None, parent: int,
                 counter: tuple[str, Path | None] | None = None) -> None:
    global _worker
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and SIGTERM
    limit_threads()  # before this worker's first OCR
    tokenizer = load_tokenizer(*counter) if counter is not None else None
    _worker = (options, _Memo(TokenCache(*cache) if cache else None), tokenizer)


def _read_in_worker(job: tuple[int, Candidate, str | None]) -> _Read:
    assert _worker is not None
    options, memo, tokenizer = _worker
    read = _read_one(job[0], job[1], options, job[2], memo)
    if tokenizer is not None and read is not None and read.document is not None:
        _count_here(read.document, tokenizer)
    return read


def _count_here(doc: Document, tokenizer: Tokenizer) -> None:
    """Count a document's segments where it was read: its text is not sent to a second pool
    (10M tokens of the standard library: 32 MB pickled there and back again, and two more
    processes on the cores)."""
    for child in doc.children:
        if isinstance(child, Document):
            _count_here(child, tokenizer)
    doc.segments = [replace(seg, tokens=tokenizer.count(seg.text) + seg.extra_tokens)
                    for seg in doc.segments]
    doc.tokens = sum(seg.tokens for seg in doc.segments)
    doc.counted = True


def _heavy(path: str, options: ProcessOptions) -> bool:
    return options.ocr and os.path.splitext(path)[1].lower() in HEAVY_SUFFIXES


def _work(candidates: Candidates, options: ProcessOptions) -> tuple[int, bool]:
    """How many files' worth of reading the candidates are (counted up to the threshold), and
    whether any of them is read by OCR."""
    total, ocr = 0, False
    for path in candidates.paths():
        heavy = options.ocr and os.path.splitext(path)[1].lower() in HEAVY_SUFFIXES
        total += HEAVY_FILE_WEIGHT if heavy else 1
        ocr = ocr or heavy
        if total >= PARALLEL_FILES and ocr:
            break
    return total, ocr


def _read_all(candidates: Candidates, options: ProcessOptions, known: dict[str, str],
              cache: TokenCache | None, workers: int,
              starting: Callable[[int], None],
              counter: tuple[str, Path | None] | None = None,
              recalled: Container[int] = ()) -> Iterator[_Read]:
    """Every candidate read and processed, in order, but those `recalled` (from a stat memo):
    in worker processes (both cores busy: parsing, secret scanning and hashing are CPU work)
    when there are enough files, with a bounded number in flight so finished work never piles
    up in memory. `starting(i)` is called as candidate i is handed out to be read."""
    jobs = ((i, candidates[i], known.get(candidates.shown(i)[0]))
            for i in range(len(candidates)) if i not in recalled)
    work, ocr = _work(candidates, options) if len(recalled) < len(candidates) else (0, False)
    if workers <= 1 or work < PARALLEL_FILES:
        memo = _Memo(cache)
        for i, cand, sha in jobs:
            starting(i)
            yield _read_one(i, cand, options, sha, memo)
        return
    ctx = multiprocessing.get_context("spawn")  # until the pool starts (see _start_method)
    where = (cache.path, cache.fingerprint) if cache is not None else None
    # a file whose content the cache has seen is read and processed here (its scans are
    # looked up, ~0.1 ms), and so are the first UNSEEN_INLINE it has not; the pool starts for
    # the rest: a re-pack of the standard library after one change starts none
    memo = _Memo(cache) if cache is not None else None
    pool: ProcessPoolExecutor | None = None
    unseen = 0
    misses = 0  # files in a row the check above found new, since the pool started
    try:
        pending: deque[Future | _Read] = deque()
        for job in jobs:
            starting(job[0])
            # checking reads the file here, and a worker reads a new one again: a cold run
            # read every file twice (0.5 s of 3.5 s on the standard library). After
            # SEEN_PROBE new files in a row, only every SEEN_PROBE-th file is checked
            probe = memo is not None and (pool is None or misses < SEEN_PROBE
                                          or job[0] % SEEN_PROBE == 0)
            done = (_read_one(job[0], job[1], options, job[2], memo, seen_only=True)
                    if probe else None)
            if probe and pool is not None:
                misses = misses + 1 if done is None else 0
            if (done is None and memo is not None and pool is None and unseen < UNSEEN_INLINE
                    and not (job[1].size > INLINE_HEAVY_BYTES and _heavy(job[1].path, options))):
                unseen += 1  # a few new files (the ones a re-pack changed) do not pay for a pool
                done = _read_one(job[0], job[1], options, job[2], memo)
            if done is not None:
                pending.append(done)
            else:
                if pool is None:
                    ctx = multiprocessing.get_context(_start_method(ocr))
                    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_reader,
                                               initargs=(options, where, os.getpid(),
                                                         counter))
                with _main_kept_from_workers(ctx):  # a spawned worker starts inside submit()
                    pending.append(pool.submit(_read_in_worker, job))
            if len(pending) >= workers * WINDOW_PER_WORKER:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _start_method(ocr: bool) -> str:
    """How reading workers start. OCR runs on OpenMP (libgomp), which hangs in a child forked
    from a parent that used it (an earlier OCR, the embedded model's torch): workers that may
    OCR start fresh ("spawn": each imports the ingest again, ~0.45 s of a 3.7 s cold pack on 2
    cores), unless no OpenMP runtime is loaded here yet, so a fork inherits none."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    return "fork" if not ocr or not openmp_loaded() else "spawn"


def _result(item: Future | _Read) -> _Read:
    return item.result() if isinstance(item, Future) else item


@contextmanager
def _main_kept_from_workers(ctx) -> Iterator[None]:
    """A spawned worker first runs its parent's `__main__` again, by file when it was not run
    by module name. Inside Streamlit `__main__` is the page script being run, so each worker
    would run the UI page (or, in Streamlit's AppTest, a script that fails outside it and
    breaks the pool). While a worker starts, `__main__` is a bare module, which nothing re-runs;
    a fork start, or a program's own main (a script or `python -m`), is left as it is."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    foreign = (ctx.get_start_method() != "fork" and main is not None
               and getattr(main, "__spec__", None) is None and path is not None
               and os.path.abspath(path) != os.path.abspath(sys.argv[0] if sys.argv else ""))
    if not foreign:
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _share_strings(doc: Document, root: str) -> None:
    """A document back from a worker holds its own copy of every string: the root, kind and
    language are the same few for a million files, so keep one of each."""
    doc.root = root if doc.root == root else doc.root
    doc.kind = sys.intern(doc.kind)
    if doc.language:
        doc.language = sys.intern(doc.language)


def run_pipeline(inputs: list[Path], tokenizer: Tokenizer, options: PipelineOptions,
                 known: dict[str, str] | None = None, cache: TokenCache | None = None,
                 progress: Progress = _noop, spool: bool = False,
                 memo: StatMemo | None = None) -> PipelineResult:
    """Every input read, processed and counted. With `spool`, the documents wait in a staging
    file (a DocumentSpool) rather than in memory, for a caller that writes them in batches.
    With a `memo`, a file whose stamp it remembers is not read (its documents come back as they
    were, in their place), and what the others give is kept in it for next time."""
    known = known or {}
    skipped: list[Skipped] = []
    unchanged: dict[str, str] = {}
    if memo is not None:
        memo.listing()
    with collect(inputs, options.collect, stamps=memo is not None) as found:
        candidates = found.candidates
        skipped.extend(found.skipped)
        total = len(candidates)
        progress("collect", total, total, f"{total} files")
        roots = sorted(candidates.roots() | {s.root for s in found.skipped}
                       | {str(p.expanduser().resolve()) for p in inputs})
        recalled: dict[int, list[Output]] = {}
        if memo is not None:
            recalled = memo.recall((i, *candidates.stamped(i)) for i in range(total))
        order: deque[int] = deque()  # the candidate each document sent to be counted came from
        fresh: dict[int, tuple[Candidate, list[Output], list[int]]] = {}  # to keep in the memo

        def documents() -> Iterator[Document]:
            workers = options.workers or default_workers()

            def starting(i: int) -> None:
                progress("read", i + 1, total, candidates.shown(i)[0])

            # a tokenizer that counts in processes counts in the reading workers too
            counter = ((tokenizer.spec, tokenizer.cache_dir)
                       if tokenizer.parallelism == "processes" else None)
            for read in _read_all(candidates, options.process, known, cache, workers, starting,
                                  counter, frozenset(recalled)):
                path, root, cand_flags = candidates.shown(read.index)
                cand = candidates[read.index] if memo is not None and read.settled else None
                # read: let it go (a million candidates held to the end took ~0.5 GB)
                candidates[read.index] = None  # type: ignore[call-overload]
                if cache is not None:
                    for key, reason in read.verdicts.items():
                        cache.put_verdict(key, reason)
                if read.skipped is not None:
                    skipped.append(read.skipped)
                    if memo is not None and cand is not None:
                        memo.keep(cand, [read.skipped])
                elif read.unchanged is not None:
                    unchanged[path] = read.unchanged
                elif read.document is not None:
                    _share_strings(read.document, root)
                    if read.noise is not None:  # noise by path, but that rule is switched off
                        read.document.flags.append(f"noise:{read.noise}")
                    read.document.flags.extend(cand_flags)
                    children, read.document.children = read.document.children, []
                    # skipped children first: the file's documents may be counted (and the
                    # file kept in the memo) before this generator runs again
                    kept: list[Output] = [c for c in children if isinstance(c, Skipped)]
                    skipped.extend(kept)  # type: ignore[arg-type]
                    waiting = [1 + sum(isinstance(c, Document) for c in children)]
                    if cand is not None:
                        fresh[read.index] = (cand, kept, waiting)
                    order.append(read.index)
                    yield read.document
                    for child in children:  # an mbox's messages, a mail's attachments
                        if isinstance(child, Document):
                            order.append(read.index)
                            yield child

        def in_place(counted: Iterator[Document]) -> Iterator[Document]:
            """The counted documents with the recalled ones between them, in candidates' order;
            what each read file gave kept in the memo once all its documents are counted."""
            ahead = iter(sorted(recalled))
            nxt = next(ahead, None)
            for doc in counted:
                i = order.popleft()
                while nxt is not None and nxt < i:
                    yield from _recalled(recalled.pop(nxt), skipped)
                    nxt = next(ahead, None)
                if (got := fresh.get(i)) is not None and memo is not None:
                    got[1].append(doc)
                    got[2][0] -= 1
                    if not got[2][0]:
                        memo.keep(got[0], got[1])
                        del fresh[i]
                yield doc
            while nxt is not None:
                yield from _recalled(recalled.pop(nxt), skipped)
                nxt = next(ahead, None)

        counted = in_place(count_stream(documents(), tokenizer, cache, options.workers))
        docs: list[Document] | DocumentSpool = spooled(counted) if spool else list(counted)
        tokens = docs.tokens if isinstance(docs, DocumentSpool) else sum(d.tokens for d in docs)
        progress("count", total, total, f"{tokens:,} tokens")
        return PipelineResult(docs, skipped, unchanged, found.notes, roots, total)


def _recalled(outputs: list[Output], skipped: list[Skipped]) -> Iterator[Document]:
    for out in outputs:
        if isinstance(out, Skipped):
            skipped.append(out)
        else:
            yield out
