"""SQLAlchemy models: a corpus is a set of sources, each split into citable segments."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Corpus(Base):
    __tablename__ = "corpora"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)
    version_hash: Mapped[str] = mapped_column(String(64), default="")
    tokenizer: Mapped[str] = mapped_column(String(500), default="cl100k")
    #: who may see it (app.services.access): its owner, and as shared (private | groups |
    #: everyone, with `shared_groups` for groups)
    owner: Mapped[str] = mapped_column(String(200), default="admin", server_default="admin")
    visibility: Mapped[str] = mapped_column(String(10), default="private",
                                            server_default="private")
    shared_groups: Mapped[list | None] = mapped_column(JSON, default=list, nullable=True)

    sources: Mapped[list[Source]] = relationship(
        back_populates="corpus", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Source.position",
    )


class Source(Base):
    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("corpus_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    corpus_id: Mapped[int] = mapped_column(ForeignKey("corpora.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(2000))
    root: Mapped[str] = mapped_column(String(2000), default="")
    kind: Mapped[str] = mapped_column(String(20))
    language: Mapped[str | None] = mapped_column(String(50), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bytes: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="ok")
    skip_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    flags: Mapped[list] = mapped_column(JSON, default=list)
    meta: Mapped[dict] = mapped_column(JSON, default=dict)

    corpus: Mapped[Corpus] = relationship(back_populates="sources")
    segments: Mapped[list[StoredSegment]] = relationship(
        back_populates="source", cascade="all, delete-orphan", passive_deletes=True,
        order_by="StoredSegment.order",
    )
    symbols: Mapped[list[Symbol]] = relationship(
        back_populates="source", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Symbol.start_line",
    )


class StoredSegment(Base):
    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    order: Mapped[int] = mapped_column(Integer)
    span_kind: Mapped[str] = mapped_column(String(10))
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str] = mapped_column(Text)
    #: a part's citation ("§4 Renewal ¶2", "slide 5 (notes)", "Opex!A1:C5"); None for lines,
    #: pages, cells and times, whose numbers say where they are
    locator: Mapped[str | None] = mapped_column(String(500), nullable=True, default=None)

    source: Mapped[Source] = relationship(back_populates="segments")


class Symbol(Base):
    __tablename__ = "symbols"
    __table_args__ = (Index("ix_symbols_name", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(50))
    start_line: Mapped[int] = mapped_column(Integer)
    end_line: Mapped[int] = mapped_column(Integer)
    signature: Mapped[str] = mapped_column(Text, default="")
    parent: Mapped[str | None] = mapped_column(String(500), nullable=True)

    source: Mapped[Source] = relationship(back_populates="symbols")


class Question(Base):
    """A question asked over a corpus and its answer, with what it cost: the history."""

    __tablename__ = "questions"
    __table_args__ = (Index("ix_questions_corpus_created", "corpus_name", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    corpus_id: Mapped[int | None] = mapped_column(
        ForeignKey("corpora.id", ondelete="SET NULL"), nullable=True)
    corpus_name: Mapped[str] = mapped_column(String(200))
    corpus_version: Mapped[str] = mapped_column(String(64), default="")
    conversation: Mapped[str] = mapped_column(String(40), index=True)
    turn: Mapped[int] = mapped_column(Integer, default=1)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(20))
    in_context_tokens: Mapped[int] = mapped_column(Integer, default=0)
    corpus_tokens: Mapped[int] = mapped_column(Integer, default=0)
    sources: Mapped[list] = mapped_column(JSON, default=list)
    backend: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(500))
    usage: Mapped[dict] = mapped_column(JSON, default=dict)
    timings: Mapped[dict] = mapped_column(JSON, default=dict)
    finish_reason: Mapped[str] = mapped_column(String(20), default="stop")
    #: what went into the context (Context.to_json without its text); None before 0004
    context: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    #: the person who asked: a conversation is theirs alone
    owner: Mapped[str] = mapped_column(String(200), default="admin", server_default="admin",
                                       index=True)


class EvalRun(Base):
    """One eval run: its config and the endpoint it ran against (model, server, flags)."""

    __tablename__ = "eval_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    fingerprint: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="running")
    owner: Mapped[str] = mapped_column(String(200), default="admin", server_default="admin")


class EvalCell(Base):
    """One scored sample; unique per (run, task, length, depth, sample) so a resumed run never
    duplicates a finished cell."""

    __tablename__ = "eval_cells"
    __table_args__ = (UniqueConstraint("run_id", "task", "length", "depth", "sample"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.run_id", ondelete="CASCADE"),
                                        index=True)
    task: Mapped[str] = mapped_column(String(30))
    length: Mapped[int] = mapped_column(Integer)
    depth: Mapped[float] = mapped_column()
    sample: Mapped[int] = mapped_column(Integer)
    prompt_hash: Mapped[str] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    response: Mapped[str] = mapped_column(Text, default="")
    answers: Mapped[list] = mapped_column(JSON, default=list)
    metric: Mapped[str] = mapped_column(String(200), default="all")
    score: Mapped[float | None] = mapped_column(nullable=True)
    ttft_s: Mapped[float] = mapped_column(default=0.0)
    total_s: Mapped[float] = mapped_column(default=0.0)
    status: Mapped[str] = mapped_column(String(20), default="done")  # done | failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class User(Base):
    """Someone who signed in, with the groups they had at their last sign-in."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    groups: Mapped[list | None] = mapped_column(JSON, default=list, nullable=True)
    via: Mapped[str] = mapped_column(String(20), default="oidc")  # oidc | header
    first_seen: Mapped[datetime] = mapped_column(default=_now)
    last_seen: Mapped[datetime] = mapped_column(default=_now)


class AuditEntry(Base):
    """Who ingested, asked, shared or deleted what, and when."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_user_at", "user", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=_now, index=True)
    user: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(30))
    target: Mapped[str] = mapped_column(String(500))
    detail: Mapped[dict | None] = mapped_column(JSON, default=dict, nullable=True)


class Analysis(Base):
    """One analysis of a whole corpus (a briefing, an extraction into a table, a comparison):
    what was asked, how far it got, and its result with coverage and citations. Its owner's
    alone, as a conversation is."""

    __tablename__ = "analyses"

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[str] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)
    owner: Mapped[str] = mapped_column(String(200), default="admin", server_default="admin",
                                       index=True)
    corpus_name: Mapped[str] = mapped_column(String(200), index=True)
    corpus_version: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(20))  # brief | extract | compare
    request: Mapped[dict] = mapped_column(JSON, default=dict)  # the AnalyzeInput
    #: the engine it ran on: parts made for one model's window do not fit another's
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(20), default="running")  # running | done | failed
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class AnalysisStep(Base):
    """One finished model call of an analysis (a map over one part, or a reduce over a group
    of earlier outputs): what an interrupted analysis resumes from."""

    __tablename__ = "analysis_steps"
    __table_args__ = (UniqueConstraint("analysis_id", "level", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[str] = mapped_column(
        ForeignKey("analyses.analysis_id", ondelete="CASCADE"), index=True)
    level: Mapped[int] = mapped_column(Integer)  # 0: a map call; 1, 2, ...: reduce levels
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))  # sha256 of the request: a changed part reruns
    output: Mapped[str] = mapped_column(Text)
    usage: Mapped[dict] = mapped_column(JSON, default=dict)
    seconds: Mapped[float] = mapped_column(default=0.0)
