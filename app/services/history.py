"""Stored questions and answers: a conversation's earlier turns, the last conversation over a
corpus, and the history listing (`scoutlens history`, the UI's Ask page)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from app.database import session_scope
from app.models import Question
from app.services.access import Who
from app.settings import database_url


def _mine(who: Who) -> list:
    """Conversations are private to the person who asked (the operator sees all)."""
    return [] if who is None else [Question.owner == who.name]


def conversation_turns(conversation: str, corpus: str | None = None,
                       who: Who = None) -> list[tuple[str, str]]:
    """(question, answer) of each turn so far; with `corpus`, only a conversation over it.
    Someone else's conversation has no turns (it reads as not found)."""
    where = [Question.conversation == conversation, *_mine(who)]
    if corpus is not None:
        where.append(Question.corpus_name == corpus)
    with session_scope(database_url()) as session:
        return [(q.question, q.answer) for q in session.scalars(
            select(Question).where(*where).order_by(Question.turn))]


def last_conversation(name: str, who: Who = None) -> str | None:
    with session_scope(database_url()) as session:
        q = session.scalars(select(Question).where(Question.corpus_name == name, *_mine(who))
                            .order_by(Question.created_at.desc(), Question.id.desc())
                            .limit(1)).first()
        return q.conversation if q else None


@dataclass(frozen=True)
class HistoryRow:
    id: int
    created_at: str
    corpus: str
    conversation: str
    turn: int
    question: str
    answer: str
    mode: str
    backend: str
    model: str
    usage: dict
    timings: dict
    sources: list
    finish_reason: str = "stop"  # stop | length | incomplete (the stream broke off)
    corpus_version: str = ""
    context: dict | None = None  # what went in (None for answers stored before it was kept)

    @property
    def incomplete(self) -> bool:
        return self.finish_reason == "incomplete"


def history(corpus: str | None = None, limit: int = 50, who: Who = None) -> list[HistoryRow]:
    """The latest answers, newest first: `who`'s own (the operator's view has everyone's)."""
    with session_scope(database_url()) as session:
        q = (select(Question).where(*_mine(who))
             .order_by(Question.created_at.desc(), Question.id.desc()).limit(limit))
        if corpus:
            q = q.where(Question.corpus_name == corpus)
        return [HistoryRow(r.id, r.created_at.isoformat(timespec="seconds"), r.corpus_name,
                           r.conversation, r.turn, r.question, r.answer, r.mode, r.backend,
                           r.model, dict(r.usage or {}), dict(r.timings or {}),
                           list(r.sources or []), r.finish_reason or "stop", r.corpus_version,
                           dict(r.context) if r.context else None)
                for r in session.scalars(q)]
