"""Analyses in the database: begun (or found again to resume), their finished calls kept one by
one, their result stored with its owner; listed and read back by their owner (or an admin)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.database import session_scope
from app.models import Analysis, AnalysisStep
from app.services.access import Who, audit, can_change, owner_of_new
from app.services.analysis.types import AnalyzeInput
from app.settings import database_url
from common.errors import UserError


class NoSuchAnalysis(UserError):
    """No such analysis, or none this person may see (the two read the same)."""


@dataclass(frozen=True)
class Stored:
    """An analysis as listed: what was asked, how far it got."""

    analysis_id: str
    created_at: str
    corpus: str
    kind: str
    status: str
    request: dict
    result: dict | None
    error: str | None
    owner: str


def begin(asked: AnalyzeInput, version: str, fingerprint: str, who: Who,
          resume: str | None = None) -> str:
    """A new analysis's id, or `resume`'s when it is `who`'s, of the same request over the
    same corpus version on the same engine (its finished calls are then reused)."""
    with session_scope(database_url()) as session:
        if resume is not None:
            row = _row(session, resume, who)
            if AnalyzeInput.of(row.request) != asked:
                raise UserError(f"analysis {resume} asked for something else: run it again "
                                "without --resume, or resume it as it was")
            if row.corpus_version != version:
                raise UserError(f"corpus {asked.corpus} changed since analysis {resume} began: "
                                "start a new one")
            if row.fingerprint != fingerprint:
                raise UserError(f"analysis {resume} ran on another model or window: its parts "
                                "would not fit; start a new one")
            row.status, row.error = "running", None
            return row.analysis_id
        analysis_id = uuid.uuid4().hex[:12]
        session.add(Analysis(analysis_id=analysis_id, owner=owner_of_new(who),
                             corpus_name=asked.corpus, corpus_version=version, kind=asked.kind,
                             request=asked.to_json(), fingerprint=fingerprint,
                             status="running"))
        audit(session, who, "analyze", asked.corpus, kind=asked.kind, analysis=analysis_id)
        return analysis_id


def _row(session, analysis_id: str, who: Who) -> Analysis:
    row = session.scalar(select(Analysis).where(Analysis.analysis_id == analysis_id))
    if row is None or not can_change(who, row.owner):
        raise NoSuchAnalysis(f"no such analysis: {analysis_id!r} (scoutlens analyses lists "
                             "yours)")
    return row


class StepStore:
    """The finished calls of one analysis (app.services.analysis.mapreduce.Steps)."""

    def __init__(self, analysis_id: str):
        self.analysis_id = analysis_id
        with session_scope(database_url()) as session:
            rows = session.scalars(select(AnalysisStep).where(
                AnalysisStep.analysis_id == analysis_id)).all()
            self._done = {(s.level, s.position): (s.key, s.output) for s in rows}
            #: the kept calls whose answer stopped at max_tokens
            self.cut_off = {(s.level, s.position) for s in rows
                            if (s.usage or {}).get("finish_reason") == "length"}

    def get(self, level: int, position: int, key: str) -> str | None:
        found = self._done.get((level, position))
        return found[1] if found and found[0] == key else None

    def put(self, level: int, position: int, key: str, output: str, usage: dict,
            seconds: float) -> None:
        text = output.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL
        try:
            with session_scope(database_url()) as session:
                old = session.scalar(select(AnalysisStep).where(
                    AnalysisStep.analysis_id == self.analysis_id, AnalysisStep.level == level,
                    AnalysisStep.position == position))
                if old is not None:  # a call of another request at this place: replaced
                    session.delete(old)
                    session.flush()
                session.add(AnalysisStep(analysis_id=self.analysis_id, level=level,
                                         position=position, key=key, output=text,
                                         usage=usage, seconds=seconds))
        except IntegrityError:  # the analysis was removed meanwhile: nothing to keep
            return
        self._done[(level, position)] = (key, text)


def finish(analysis_id: str, result: dict) -> None:
    with session_scope(database_url()) as session:
        row = session.scalar(select(Analysis).where(Analysis.analysis_id == analysis_id))
        if row is not None:
            row.status, row.result, row.error = "done", result, None


def fail(analysis_id: str, error: str) -> None:
    """Left resumable: the finished calls stay."""
    with session_scope(database_url()) as session:
        row = session.scalar(select(Analysis).where(Analysis.analysis_id == analysis_id))
        if row is not None:
            row.status, row.error = "interrupted", error[:2000]


def analyses(corpus: str | None = None, who: Who = None, limit: int = 50) -> list[Stored]:
    """`who`'s analyses (everyone's for the operator and admins), newest first."""
    with session_scope(database_url()) as session:
        query = select(Analysis).order_by(Analysis.id.desc()).limit(limit)
        if corpus is not None:
            query = query.where(Analysis.corpus_name == corpus)
        if who is not None and not who.admin:
            query = query.where(Analysis.owner == who.name)
        return [_stored(r) for r in session.scalars(query)]


def analysis(analysis_id: str, who: Who = None) -> Stored:
    with session_scope(database_url()) as session:
        return _stored(_row(session, analysis_id, who))


def _stored(r: Analysis) -> Stored:
    return Stored(r.analysis_id, r.created_at.isoformat(timespec="seconds"), r.corpus_name,
                  r.kind, r.status, dict(r.request or {}), r.result, r.error, r.owner)
