"""A corpus's retrieval index: built once per corpus version (at ingest), loaded per question."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from app.database import session_scope
from app.models import Corpus, Source, StoredSegment
from app.settings import get_settings
from ingest.retrieval import SegmentIndex
from ingest.types import IngestError


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


def _url(url: str | None) -> str:
    return url or get_settings().db_url


def index_dir(name: str, version: str) -> Path:
    return get_settings().home_dir / "indexes" / name / version[:16]


def build_index(name: str, url: str | None = None,
                note: Callable[[str], None] | None = None) -> Path:
    """Index every segment of the corpus's current version (older versions are removed)."""
    with session_scope(_url(url)) as session:
        row = session.scalar(select(Corpus).where(Corpus.name == name))
        if row is None:
            raise IngestError(f"no such corpus: {name}")
        version = row.version_hash
        rows = session.execute(
            select(StoredSegment.id, Source.path, StoredSegment.text).join(Source)
            .where(Source.corpus_id == row.id, Source.status == "ok")
            .order_by(Source.position, StoredSegment.order)).all()
    folder = index_dir(name, version)
    if note:
        note(f"indexing {len(rows):,} segments for retrieval")
    SegmentIndex.build(rows).save(folder)
    for old in folder.parent.iterdir():
        if old != folder and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return folder


def remove_indexes(name: str) -> None:
    shutil.rmtree(get_settings().home_dir / "indexes" / name, ignore_errors=True)


def load_index(name: str, version: str, url: str | None = None,
               note: Callable[[str], None] | None = None) -> SegmentIndex:
    """The corpus's index for `version`; one missing (another machine ingested it, or it was
    deleted), damaged or of an older format is rebuilt from the database first."""
    folder = index_dir(name, version)
    index = SegmentIndex.load(folder)
    if index is None:
        if note:
            why = "of an older format or damaged" if (folder / "segments.json").exists() \
                else "missing"
            note(f"the retrieval index of {name} was {why}: rebuilt it from the database")
        build_index(name, url)
        index = SegmentIndex.load(folder)
    if index is None:
        raise IngestError(f"cannot build the retrieval index for {name}")
    return index


def fetch_segments(name: str, ids: list[int], url: str | None = None) -> list[LocatedSegment]:
    if not ids:
        return []
    out: list[LocatedSegment] = []
    with session_scope(_url(url)) as session:
        for i in range(0, len(ids), 500):
            for r in session.execute(
                    select(StoredSegment.id, StoredSegment.source_id, Source.path, Source.kind,
                           Source.position, StoredSegment.span_kind, StoredSegment.start,
                           StoredSegment.end, StoredSegment.tokens, StoredSegment.text,
                           Source.flags)
                    .join(Source).join(Corpus, Corpus.id == Source.corpus_id)
                    .where(Corpus.name == name, StoredSegment.id.in_(ids[i:i + 500]))):
                out.append(LocatedSegment(*r[:10], tuple(r[10] or ())))
    return out
