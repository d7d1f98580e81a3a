"""What an ingest changes: the stored sources before it, which of them it replaces or drops,
and which it must read again (their secrets now kept or redacted)."""

from __future__ import annotations

from itertools import chain

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from app.models import Source
from ingest.documents import KEPT_SECRETS
from ingest.pipeline import PipelineResult


class ChangedMeanwhile(Exception):
    """Files taken as unchanged were changed or removed by another writer before ours."""

    def __init__(self, paths: list[str]):
        super().__init__(", ".join(paths[:3]))
        self.paths = paths


def secrets_differ(flags: list[str], redact: bool) -> bool:
    """Whether a stored source's text holds its secrets the other way than `redact` asks."""
    if not any(f.startswith("secret:") for f in flags):
        return False
    return redact == (KEPT_SECRETS in flags)


def previous_sources(session: Session, corpus_id: int) -> dict[str, Row]:
    """The corpus's sources as plain rows (ORM objects took ~3 KB each: a re-ingest of a
    million files held them all)."""
    return {r.path: r for r in session.execute(
        select(Source.id, Source.path, Source.root, Source.sha256, Source.status, Source.flags,
               Source.bytes, Source.tokens).where(Source.corpus_id == corpus_id))}


def gone_and_replaced(result: PipelineResult, previous: dict[str, Row],
                       prune: bool) -> tuple[list[Row], list[int]]:
    """The previous sources no longer there (under a root ingested now), and the ids of the
    previous rows this ingest replaces: what is held is the size of the previous corpus,
    never a set of the new one's paths."""
    if not previous:
        return [], []
    # a mail's attachments and an mbox's messages ("<file> > <name>") go with their file:
    # kept while it is unchanged, dropped when it is read again without them
    missing = set(previous) if prune else {p for p in previous if " > " in p}
    replaced: list[int] = []
    reread: set[str] = set()
    docs = (d.path for d in result.documents)
    for p in chain(docs, (s.path for s in result.skipped)):
        missing.discard(p)
        if p in previous:
            replaced.append(previous[p].id)
            reread.add(p)
    missing.difference_update(result.unchanged)
    roots = set(result.roots)
    gone = [s for p, s in previous.items() if p in missing and (
        p.split(" > ", 1)[0] in reread if " > " in p and not prune else
        s.root in roots and p.split(" > ", 1)[0] not in result.unchanged)]
    return gone, replaced + [s.id for s in gone]
