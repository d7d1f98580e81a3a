"""The corpora a user may see: list, show, exists, remove, share."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.database import session_scope
from app.models import Corpus, Source
from app.services.access import (
    VISIBILITIES,
    NotAllowed,
    Who,
    audit,
    corpus_for,
    corpus_readable,
)
from app.services.kept_pictures import prune_pictures
from app.services.reports import FileRow
from app.settings import database_url


@dataclass(frozen=True)
class CorpusSummary:
    name: str
    created_at: str
    updated_at: str
    tokenizer: str
    version_hash: str
    sources: int
    skipped: int
    tokens: int
    bytes: int
    owner: str = "admin"
    visibility: str = "private"
    groups: tuple[str, ...] = ()

    @property
    def shared(self) -> str:
        """`private`, `everyone` or the groups it is shared with."""
        return ", ".join(self.groups) if self.visibility == "groups" else self.visibility


def list_corpora(url: str | None = None, who: Who = None) -> list[CorpusSummary]:
    """The corpora `who` may read, by name."""
    with session_scope(database_url(url)) as session:
        return [_summary(session, c) for c in session.scalars(select(Corpus).order_by(Corpus.name))
                if corpus_readable(who, c)]


def _summary(session: Session, c: Corpus) -> CorpusSummary:
    ok = session.execute(select(func.count(), func.coalesce(func.sum(Source.tokens), 0),
                                func.coalesce(func.sum(Source.bytes), 0))
                         .where(Source.corpus_id == c.id, Source.status == "ok")).one()
    skipped = session.scalar(select(func.count()).where(Source.corpus_id == c.id,
                                                        Source.status != "ok")) or 0
    return CorpusSummary(c.name, c.created_at.isoformat(timespec="seconds"),
                         c.updated_at.isoformat(timespec="seconds"), c.tokenizer,
                         c.version_hash, ok[0], skipped, ok[1], ok[2], c.owner, c.visibility,
                         tuple(c.shared_groups or ()))


def corpus_exists(name: str, url: str | None = None, who: Who = None) -> bool:
    """Whether `who` may see a corpus of that name."""
    with session_scope(database_url(url)) as session:
        row = session.scalar(select(Corpus).where(Corpus.name == name))
        return row is not None and corpus_readable(who, row)


def show_corpus(name: str, url: str | None = None,
                who: Who = None) -> tuple[CorpusSummary, list[FileRow]]:
    with session_scope(database_url(url)) as session:
        row = corpus_for(session, name, who)
        files = [FileRow(s.path, s.status, s.tokens, s.bytes, s.skip_reason or "",
                         tuple(s.flags or ()))
                 for s in session.scalars(select(Source).where(Source.corpus_id == row.id)
                                          .order_by(Source.path))]
        return _summary(session, row), files


def remove_corpus(name: str, url: str | None = None, who: Who = None) -> CorpusSummary:
    with session_scope(database_url(url)) as session:
        row = corpus_for(session, name, who, change="delete")
        summary = _summary(session, row)
        session.execute(delete(Corpus).where(Corpus.id == row.id))
        audit(session, who, "delete", name, tokens=summary.tokens)
    from app.services.index import remove_indexes

    remove_indexes(name)  # a corpus created again under this name must not find them
    prune_pictures(url)
    return summary


def share_corpus(name: str, visibility: str, groups: list[str] | None = None,
                 who: Who = None, url: str | None = None) -> CorpusSummary:
    """Make corpus `name` private, shared with `groups`, or shared with everyone signed in
    (its owner or an admin only)."""
    if visibility not in VISIBILITIES:
        raise NotAllowed(f"share as one of {' | '.join(VISIBILITIES)}, not {visibility!r}")
    # "a,b" names two groups, as a proxy's comma-joined groups header does
    wanted = sorted({g.strip() for part in groups or () for g in (part or "").split(",")
                     if g.strip()})
    if visibility == "groups" and not wanted:
        raise NotAllowed("name at least one group to share with")
    with session_scope(database_url(url)) as session:
        row = corpus_for(session, name, who, change="share")
        row.visibility = visibility
        row.shared_groups = wanted if visibility == "groups" else []
        audit(session, who, "share", name, visibility=visibility,
              groups=wanted if visibility == "groups" else None)
        session.flush()
        return _summary(session, row)


def corpus_version(name: str, url: str | None = None) -> str | None:
    """The stored version of corpus `name` now (None when there is none)."""
    with session_scope(database_url(url)) as session:
        return session.scalar(select(Corpus.version_hash).where(Corpus.name == name))
