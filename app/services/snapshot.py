"""One question's view of one corpus: its row read once, access checked once, and every later
read of that question made in the same read transaction.

A question reads a corpus several times (its size to choose full or retrieval, its documents or
its index, the segments retrieval picks, their sources' metadata). Made in one transaction that
sees one state of the database (SQLite WAL: a deferred `BEGIN`; PostgreSQL: REPEATABLE READ), an
ingest landing meanwhile cannot mix two versions into one context, so nothing is read twice to
check and nothing retries.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.database import session_scope
from app.models import Corpus, Source, StoredSegment, Symbol
from app.services.access import Who, corpus_readable, not_found
from app.settings import database_url
from ingest.types import Document
from ingest.types import Segment as SegmentData
from ingest.types import Symbol as SymbolData


@dataclass(frozen=True)
class Snapshot:
    """A corpus as one question sees it. `session` is the open read transaction: pass the
    snapshot down, never the name, so nothing below reads the corpus's row again."""

    id: int
    name: str
    tokenizer: str  # the spec its counts were made with
    version: str
    tokens: int  # of its readable sources, in its own tokenizer's tokens
    sources: int  # readable sources
    session: Session = field(repr=False, compare=False)


def _begin_reading(session: Session) -> None:
    """Start the transaction now, as one consistent read (the driver would otherwise run each
    SELECT in a transaction of its own)."""
    conn = session.connection(execution_options={"isolation_level": "REPEATABLE READ"}) \
        if session.get_bind().dialect.name == "postgresql" else session.connection()
    if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN")


@contextmanager
def open_snapshot(name: str, who: Who = None, url: str | None = None) -> Iterator[Snapshot]:
    """Corpus `name` as `who` may read it (else CorpusNotFound, worded as for a corpus that
    does not exist), held in one read transaction until the block ends."""
    with session_scope(database_url(url)) as session:
        _begin_reading(session)
        row = session.scalar(select(Corpus).where(Corpus.name == name))
        if row is None or not corpus_readable(who, row):
            raise not_found(session, name, who)
        count, tokens = session.execute(
            select(func.count(), func.coalesce(func.sum(Source.tokens), 0))
            .where(Source.corpus_id == row.id, Source.status == "ok")).one()
        yield Snapshot(row.id, row.name, row.tokenizer, row.version_hash, int(tokens),
                       int(count), session)


def documents(snap: Snapshot, symbols: bool = False) -> list[Document]:
    """The corpus's readable sources in pack order (by position), with their segments (and
    their symbols with `symbols`)."""
    session = snap.session
    sources = session.scalars(select(Source).where(
        Source.corpus_id == snap.id, Source.status == "ok").order_by(Source.position)).all()
    segs: dict[int, list[SegmentData]] = {s.id: [] for s in sources}
    for sid, order, kind, start, end, tokens, text, locator in session.execute(
            select(StoredSegment.source_id, StoredSegment.order, StoredSegment.span_kind,
                   StoredSegment.start, StoredSegment.end, StoredSegment.tokens,
                   StoredSegment.text, StoredSegment.locator)
            .join(Source).where(Source.corpus_id == snap.id, Source.status == "ok")
            .order_by(StoredSegment.source_id, StoredSegment.order)):
        segs[sid].append(SegmentData(order, text, kind, start, end, tokens,
                                     locator=locator or ""))
    syms: dict[int, list[SymbolData]] = {s.id: [] for s in sources}
    if symbols:
        for y in session.scalars(select(Symbol).join(Source).where(
                Source.corpus_id == snap.id).order_by(Symbol.source_id, Symbol.start_line)):
            syms[y.source_id].append(SymbolData(y.name, y.kind, y.start_line, y.end_line,
                                                y.signature, y.parent))
    return [Document(s.path, s.root, s.kind, s.language, s.sha256 or "", s.bytes,
                     segs[s.id], syms[s.id], dict(s.meta or {}), list(s.flags or []),
                     s.tokens) for s in sources]


def load_documents(name: str, symbols: bool = False, url: str | None = None,
                   who: Who = None) -> tuple[str, list[Document]]:
    """(tokenizer spec, documents) of corpus `name`, for a caller that needs nothing else of
    it (pack, an eval's copy)."""
    with open_snapshot(name, who, url) as snap:
        return snap.tokenizer, documents(snap, symbols)


def source_documents(snap: Snapshot, paths: list[str]) -> dict[str, Document]:
    """Metadata of these sources (path, kind, language, flags; no text)."""
    out: dict[str, Document] = {}
    for i in range(0, len(paths), 500):
        for p, r, k, lang, sha, size, fl, t in snap.session.execute(select(
                Source.path, Source.root, Source.kind, Source.language, Source.sha256,
                Source.bytes, Source.flags, Source.tokens).where(
                Source.corpus_id == snap.id, Source.path.in_(paths[i:i + 500]),
                Source.status == "ok")):
            out[p] = Document(p, r, k, lang, sha or "", size, [], flags=list(fl or []),
                              tokens=t)
    return out
