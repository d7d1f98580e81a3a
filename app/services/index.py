"""A corpus's retrieval index: built once per corpus version (at ingest), loaded per question.

With SCOUTLENS_DENSE on, the index carries sentence vectors too: embedded at ingest (the cost
belongs there: 2,100-4,300 word pieces/s on two cores, ~3.4 min per 1M corpus tokens), or, for a
corpus ingested before dense was turned on, at its first question when that takes under
BUILD_ON_USE_S; a larger corpus answers without the dense signal, with a note naming the command
that builds its vectors once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from app.models import Source, StoredSegment
from app.services.snapshot import Snapshot, open_snapshot
from app.settings import get_settings
from ingest.counting import default_workers
from ingest.retrieval import TERM_KEYS, Reusable, SegmentIndex, embed_segments
from ingest.types import IngestError

if TYPE_CHECKING:
    from ingest.embeddings import Embedder

Note = Callable[[str], None]
#: the ingest pipeline's progress(stage, done, total, detail), as app.progress shows it
Progress = Callable[[str, int, int, str], None]
PIECES_PER_S = 2_500  # all-MiniLM-L6-v2, 2 cores: 2,100 busy (bench_dense), 4,300 idle
PIECES_PER_SEGMENT = 250  # a segment's digest, mean (bench_dense: 252; cap 256)
BUILD_ON_USE_S = 60.0  # missing vectors are built at a question when estimated under this
REUSE_AT_MOST_NEW = 0.5  # an earlier index is reused when at most this share of segments is new


@dataclass(frozen=True)
class LocatedSegment:
    id: int
    source_id: int
    path: str
    kind: str
    position: int
    span_kind: str
    start: int
    end: int
    tokens: int
    text: str
    flags: tuple[str, ...]
    locator: str = ""  # a part's citation: "slide 5 (notes)", "Opex!A1:C5"

    @property
    def where(self) -> str:
        """The segment's place as a citation writes it after the path."""
        if self.locator:
            return self.locator
        if self.span_kind == "lines":
            return f"L{self.start}-L{self.end}"
        if self.span_kind == "page":
            return f"p.{self.start}"
        return f"{self.span_kind} {self.start}"


def index_dir(name: str, version: str) -> Path:
    return get_settings().home_dir / "indexes" / name / version[:16]


def models_dir() -> Path:
    return get_settings().home_dir / "models"


def embedder(note: Note | None = None) -> Embedder | None:
    """The sentence-embedding model (extracted under SCOUTLENS_HOME/models once, loaded once
    per process), or None with a one-line note saying why the dense signal is off."""
    from ingest.embeddings import EmbeddingUnavailable, load

    try:
        return load(models_dir())
    except EmbeddingUnavailable as exc:
        if note:
            note(f"dense retrieval skipped: {exc}; BM25, symbols and paths answer alone")
        return None


def vectors_model() -> str | None:
    """The name vectors of the installed model are stored under; None when it is missing."""
    from ingest.embeddings import EmbeddingUnavailable, model_name

    try:
        return model_name()
    except EmbeddingUnavailable:
        return None


def embed_estimate(segments: int) -> str:
    """How long embedding `segments` segments takes on CPU, in words."""
    seconds = segments * PIECES_PER_SEGMENT / PIECES_PER_S
    return f"~{seconds:.0f} s" if seconds < 120 else f"~{seconds / 60:.0f} min"


KEY_COLUMNS = (Source.path, Source.sha256, Source.flags, StoredSegment.order,
               StoredSegment.span_kind, StoredSegment.start, StoredSegment.end)


def content_key(tokenizer: str, path: str, sha: str | None, flags, order: int, span_kind: str,
                start: int, end: int) -> int:
    """What identifies a segment's text across versions of a corpus: its file's bytes (and
    whether their secrets were kept), the tokenizer that cut it, and its place in the file.
    Segment ids do not: SQLite hands a deleted row's id to the next insert."""
    raw = json.dumps([tokenizer, path, sha, sorted(flags or ()), order, span_kind, start, end])
    return int.from_bytes(hashlib.blake2b(raw.encode(), digest_size=8).digest(), "big",
                          signed=True)


def _segment_rows(session, corpus_id: int, tokenizer: str, keys: array):
    """(segment id, path, text) of the corpus, in corpus order, streamed in batches (the
    corpus's text is never in memory at once); each one's content key is appended to `keys`."""
    for sid, text, *key in session.execute(
            select(StoredSegment.id, StoredSegment.text, *KEY_COLUMNS).join(Source)
            .where(Source.corpus_id == corpus_id, Source.status == "ok")
            .order_by(Source.position, StoredSegment.order)
            .execution_options(yield_per=2000)):
        keys.append(content_key(tokenizer, *key))
        yield sid, key[0], text


def _count(session, corpus_id: int) -> int:
    from sqlalchemy import func

    return session.scalar(select(func.count(StoredSegment.id)).join(Source).where(
        Source.corpus_id == corpus_id, Source.status == "ok")) or 0


def _embed_progress(progress: Progress | None, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    return lambda done: progress("embed", done, total, "sentence vectors for dense retrieval")


def build_index(snap: Snapshot, note: Note | None = None, progress: Progress | None = None,
                dense: bool | None = None, prune: bool = True) -> Path:
    """Index every segment of the snapshot's version; with `dense` (default: the setting)
    their sentence vectors too. With `prune` (an ingest's build), the other versions' indexes
    are removed; a question rebuilding its own version's leaves them (an ingest may have
    just built a newer one)."""
    dense = get_settings().dense if dense is None else dense
    model = embedder(note) if dense else None
    session = snap.session
    folder = index_dir(snap.name, snap.version)
    if note:
        note("indexing the corpus's segments for retrieval")
    step = None
    if model is not None:
        total = _count(session, snap.id)
        step = _embed_progress(progress, total)
        if note:
            note(f"embedding {total:,} segments for dense retrieval "
                 f"({embed_estimate(total)} on CPU)")
    keys = array("q")  # 8 bytes a segment, not a Python int each
    reuse = _reusable(folder, model)
    rows = _rows_reusing(session, snap.id, snap.tokenizer, reuse, keys) if reuse else None
    if rows is None:
        del keys[:]
        reuse, rows = None, _segment_rows(session, snap.id, snap.tokenizer, keys)
    # the matrix is written beside the index folder: saving it is a link, not a copy
    _remove_stale_builds(folder.parent)
    index = SegmentIndex.build(rows, model, step, reuse, keys, workdir=folder.parent,
                               workers=get_settings().workers or default_workers())
    if note and index.reused:
        note(f"kept the terms of {index.reused:,} of {len(index.ids):,} segments from the "
             "previous version's index")
    index.save(folder)
    for old in folder.parent.iterdir() if prune else ():
        if old != folder and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return folder


STALE_BUILD_S = 6 * 3600  # a build's work folder untouched this long was left by a crash


def _remove_stale_builds(folder: Path) -> None:
    """Work folders of builds that died (kill -9, power loss): a live build appends to its
    files as segments stream in, so one whose files are all untouched for STALE_BUILD_S is
    removed."""
    if not folder.is_dir():
        return
    for old in folder.glob(".index-build.*"):
        try:
            touched = max([old.stat().st_mtime, *(p.stat().st_mtime for p in old.iterdir())])
        except OSError:
            continue  # removed by its own build meanwhile
        if time.time() - touched > STALE_BUILD_S:
            shutil.rmtree(old, ignore_errors=True)


def build_index_of(name: str, url: str | None = None, note: Note | None = None,
                   progress: Progress | None = None, dense: bool | None = None) -> Path:
    """The index of corpus `name` as it is stored now (after an ingest, or on request)."""
    with open_snapshot(name, url=url) as snap:
        return build_index(snap, note, progress, dense)


def _reusable(folder: Path, model: Embedder | None) -> Reusable | None:
    """The newest earlier index of this corpus (or this version's own, rebuilt) whose terms,
    and vectors when dense is on, a new build can keep."""
    if not folder.parent.is_dir():
        return None
    candidates = sorted((p for p in folder.parent.iterdir() if not p.name.startswith(".")
                         and (p / TERM_KEYS).exists()),
                        key=lambda p: p.stat().st_mtime, reverse=True)
    for previous in candidates[:1]:
        index = SegmentIndex.load(previous)
        reuse = index.reusable(previous, model.name if model else None) if index else None
        if reuse is not None and (model is None or reuse.vectors is not None):
            return reuse
    return None


def _rows_reusing(session, corpus_id: int, tokenizer: str, reuse: Reusable, keys: array):
    """(id, path, text) rows in corpus order with text None for segments whose content `reuse`
    has (their keys go to `keys`); None when most segments are new (then streaming them all is
    cheaper than holding the new ones)."""
    order: list[int] = []
    paths: dict[int, str] = {}  # where each file's segments start in `order`: its path
    last = None
    for sid, *key in session.execute(
            select(StoredSegment.id, *KEY_COLUMNS).join(Source)
            .where(Source.corpus_id == corpus_id, Source.status == "ok")
            .order_by(Source.position, StoredSegment.order)
            .execution_options(yield_per=5000)):  # not every row's tuple at once
        if key[0] != last:
            paths[len(order)] = last = key[0]
        order.append(sid)
        keys.append(content_key(tokenizer, *key))
    reuse.match(dict(zip(order, keys, strict=True)))
    new = [sid for sid in order if sid not in reuse.rows]
    if len(new) > REUSE_AT_MOST_NEW * len(order):
        return None
    texts: dict[int, tuple[str, str]] = {}
    for i in range(0, len(new), 500):
        for sid, path, text in session.execute(
                select(StoredSegment.id, Source.path, StoredSegment.text).join(Source)
                .where(StoredSegment.id.in_(new[i:i + 500]))):
            texts[sid] = (path, text)
    return _with_paths(order, paths, texts)


def _with_paths(order: list[int], paths: dict[int, str], texts: dict[int, tuple[str, str]]):
    """(id, path, text or None) in corpus order: the index's file table needs every path."""
    path = ""
    for i, sid in enumerate(order):
        path = paths.get(i, path)
        yield (sid, *texts[sid]) if sid in texts else (sid, path, None)


def remove_indexes(name: str) -> None:
    shutil.rmtree(get_settings().home_dir / "indexes" / name, ignore_errors=True)


def load_index(snap: Snapshot, note: Note | None = None, dense: bool = False,
               build_vectors: bool | None = None,
               progress: Progress | None = None) -> SegmentIndex:
    """The index of the snapshot's version; one missing (another machine ingested it, or it
    was deleted), damaged or of an older format is rebuilt from the snapshot first. With
    `dense`, its vectors too when they are the installed model's; missing or another model's,
    they are built now when `build_vectors` (None: when that is quick, see BUILD_ON_USE_S),
    else the index comes without them and a note says how to build them."""
    folder = index_dir(snap.name, snap.version)
    model = vectors_model() if dense else None
    index = SegmentIndex.load(folder, model)
    if index is None:
        if note:
            why = "of an older format or damaged" if (folder / "segments.json").exists() \
                else "missing"
            note(f"the retrieval index of {snap.name} was {why}: rebuilt it from the database")
        build_index(snap, dense=False, prune=False)  # vectors follow below, as ever
        if any(p != folder and not p.name.startswith(".") for p in folder.parent.iterdir()):
            # an ingest built another version meanwhile: this one is an older snapshot's, the
            # last an ingest should take terms from (the next ingest removes it)
            os.utime(folder, (0, 0))
        index = SegmentIndex.load(folder, model)
    if index is None:
        raise IngestError(f"cannot build the retrieval index for {snap.name}")
    if model and index.vectors is None:
        index = _add_vectors(snap, folder, index, note, build_vectors, progress)
    return index


def vectors_missing(name: str, version: str) -> bool:
    """Whether the index of `version` lacks vectors of the installed model (cheap: reads
    segments.json only), e.g. for an ingest to build them when dense retrieval is on."""
    try:
        meta = json.loads((index_dir(name, version) / "segments.json").read_text())
        return (meta.get("vectors") or {}).get("model") != vectors_model()
    except (OSError, ValueError, AttributeError):
        return True


def _add_vectors(snap: Snapshot, folder: Path, index: SegmentIndex, note: Note | None,
                 build: bool | None, progress: Progress | None) -> SegmentIndex:
    """The index with its segments' vectors embedded and saved with it, or as it is (a note
    says why, and how to build them)."""
    note = note or (lambda _: None)
    n = len(index.ids)
    estimate = embed_estimate(n)
    problem = index.vectors_problem or "missing"
    if build is False or (build is None
                          and n * PIECES_PER_SEGMENT / PIECES_PER_S > BUILD_ON_USE_S):
        note(f"dense retrieval skipped: the sentence vectors of {snap.name} are {problem} "
             f"({n:,} segments, {estimate} to embed on CPU); build them once with "
             f"`scoutlens search {snap.name} WORDS --build-vectors`")
        return index
    model = embedder(note)
    if model is None:
        return index
    note(f"the sentence vectors of {snap.name} were {problem}: embedding {n:,} segments "
         f"({estimate} on CPU), once")
    ids, vectors = embed_segments(_segment_rows(snap.session, snap.id, snap.tokenizer, []),
                                  model, _embed_progress(progress, n), model.dim)
    if array("q", ids) != index.ids:  # an index of other rows: the next build fixes it
        note(f"dense retrieval skipped: the index of {snap.name} does not match its rows")
        return index
    index = index.with_vectors(vectors, model.name)
    try:
        index.save(folder)
    except OSError as exc:
        note(f"the sentence vectors of {snap.name} could not be saved ({exc}); used this once")
    return index


def fetch_segments(snap: Snapshot, ids: list[int]) -> list[LocatedSegment]:
    """The segments with these ids (of the snapshot's corpus only), with where they sit.
    Segments and their sources are read by primary key in two queries: joined in one, SQLite
    chose to walk the corpus's sources and took 1.5 s for 400 segments of a 77M-token corpus
    (3 ms now)."""
    if not ids:
        return []
    session, corpus = snap.session, snap.id
    segs = []
    for i in range(0, len(ids), 500):
        segs += session.execute(
            select(StoredSegment.id, StoredSegment.source_id, StoredSegment.span_kind,
                   StoredSegment.start, StoredSegment.end, StoredSegment.tokens,
                   StoredSegment.text, StoredSegment.locator)
            .where(StoredSegment.id.in_(ids[i:i + 500]))).all()
    wanted = sorted({s.source_id for s in segs})
    sources = {}
    for i in range(0, len(wanted), 500):
        for sid, path, kind, position, flags, owner in session.execute(
                select(Source.id, Source.path, Source.kind, Source.position, Source.flags,
                       Source.corpus_id).where(Source.id.in_(wanted[i:i + 500]))):
            if owner == corpus:
                sources[sid] = (path, kind, position, tuple(flags or ()))
    out = []
    for sid, source_id, span_kind, start, end, tokens, text, locator in segs:
        if source_id in sources:
            path, kind, position, flags = sources[source_id]
            out.append(LocatedSegment(sid, source_id, path, kind, position, span_kind, start,
                                      end, tokens, text, flags, locator or ""))
    return out
