"""Ask: a question over a corpus (or a path, ingested first) -> an answer with verified sources.

Every entry point (CLI, UI, API, MCP) goes the same way, in two steps: `prepare` (over one
snapshot of the corpus, app.services.snapshot: the conversation it continues, the context and
the exact request, which is what `ask --dry-run` shows) then `answer` (generate, verify the
citations, store the answer, listed by app.services.history). The prompt is instructions +
manifest + corpus as one stable prefix, then earlier turns, then the question. `ask` does both.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from app.database import session_scope
from app.models import Corpus, Question
from app.services.access import Who, audit, owner_of_new
from app.services.citations import SourceRef, matched_evidence, verify
from app.services.context import Context, Mode, build_context
from app.services.history import conversation_turns, last_conversation
from app.services.snapshot import Snapshot
from app.services.targets import open_target
from app.settings import database_url
from common.errors import UserError
from engine.types import Backend, Completion

MAX_QUESTION_CHARS = 4_000


@dataclass
class AskResult:
    answer: str
    mode: str
    sources: list[SourceRef]
    completion: Completion
    corpus: str
    corpus_tokens: int
    in_context_tokens: int
    conversation: str
    turn: int
    injections: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    corpus_version: str = ""  # of the context the answer was built from (stored with it)
    context: dict = field(default_factory=dict)  # what went in (Context.to_json, no text)

    @property
    def share(self) -> float:
        return self.in_context_tokens / self.corpus_tokens if self.corpus_tokens else 0.0

    def to_json(self) -> dict:
        c = self.completion
        return {
            "answer": self.answer, "mode": self.mode,
            "sources": [s.to_json() for s in self.sources],
            "usage": {"prompt_tokens": c.usage.prompt_tokens,
                      "cached_tokens": c.usage.cached_tokens,
                      "completion_tokens": c.usage.completion_tokens},
            "timings": {"ttft_s": round(c.timings.ttft_s, 4),
                        "total_s": round(c.timings.total_s, 4)},
            "corpus": {"name": self.corpus, "tokens": self.corpus_tokens,
                       "in_context_tokens": self.in_context_tokens,
                       "share": round(self.share, 4)},
            "conversation": self.conversation, "turn": self.turn,
            "finish_reason": c.finish_reason, "incomplete": c.incomplete,
            "injections": self.injections, "backend": c.backend, "model": c.model,
            "context": self.context,
        }


class BadQuestion(UserError):
    """A question that cannot be asked (empty, too long, an unknown mode)."""


@dataclass(frozen=True)
class AskInput:
    """What was asked, as every entry point (CLI, UI, API, MCP) hands it in; checked once,
    when made. `target`: a stored corpus's name, or a path to ingest first (see
    app.services.targets); `corpus_only` (the web UI, a shared server): never a path;
    `as_path` (`--path`): always one."""

    target: str
    question: str
    mode: Mode = "auto"
    max_tokens: int = 512
    conversation: str | None = None
    continue_last: bool = False
    corpus_only: bool = False
    as_path: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "question", check_question(self.question))
        if self.mode not in ("auto", "full", "retrieval"):
            raise BadQuestion(f"unknown mode {self.mode!r}: auto | full | retrieval")


def check_question(question: str) -> str:
    q = question.strip()
    if not q:
        raise BadQuestion("the question is empty")
    if len(q) > MAX_QUESTION_CHARS:
        raise BadQuestion(f"the question is {len(q):,} characters; the limit is "
                          f"{MAX_QUESTION_CHARS:,} (put long material into the corpus instead)")
    return q


@dataclass
class Prepared:
    """A question made ready to send: the corpus, the conversation it continues, the context
    (what `ask --dry-run` shows, and what `answer` then sends)."""

    corpus: str
    corpus_id: int
    question: str
    conversation: str
    turns: list[tuple[str, str]]
    context: Context


def prepare(snap: Snapshot, asked: AskInput, backend: Backend, who: Who = None,
            note: Callable[[str], None] | None = None) -> Prepared:
    """Everything ask does before it generates, over one snapshot of the corpus: the
    conversation it continues (`who`'s own), the context and the exact request."""
    name, conversation = snap.name, asked.conversation
    if asked.continue_last and conversation is None:
        conversation = last_conversation(name, who)
    turns = conversation_turns(conversation, name, who) if conversation else []
    if conversation and not turns:
        raise BadQuestion(f"no such conversation: {conversation} (scoutlens history {name} "
                          "lists them; leave out --conversation to start one)")
    earlier = "".join(f"Earlier question: {q}\nEarlier answer: {a}\n\n" for q, a in turns)
    ctx = build_context(snap, asked.question, asked.mode, backend, asked.max_tokens,
                        turns=earlier)
    if note:
        for text in ctx.notes:
            note(text)
    return Prepared(name, snap.id, asked.question, conversation or uuid.uuid4().hex[:12], turns,
                    ctx)


def answer(prepared: Prepared, backend: Backend, who: Who = None,
           on_delta: Callable[[str], None] | None = None) -> AskResult:
    """Generate the prepared request's answer, verify its citations and store it as `who`'s
    (a conversation is its asker's alone)."""
    ctx = prepared.context
    request = ctx.request
    assert request is not None
    stream = backend.stream(request)
    deltas = iter(stream)
    try:
        for delta in deltas:
            if on_delta:
                on_delta(delta)
    finally:  # stopped half-way (a closed page): end the generation now, not at GC time
        deltas.close()  # type: ignore[attr-defined]
    completion = stream.result
    assert completion is not None
    text = completion.text.strip()
    cited = verify(text, ctx.sources)
    sources = list(cited)
    if not any(r.verified for r in cited):
        sources += matched_evidence(text, ctx.sources)
    in_context = sum(b.tokens for b in ctx.plan.blocks)
    injections = [f"{d.path}: {f.removeprefix('injection:')}" for d in ctx.docs
                  for f in d.flags if f.startswith("injection:")]
    result = AskResult(text, ctx.mode, sources, completion, prepared.corpus, ctx.corpus_tokens,
                       in_context, prepared.conversation, len(prepared.turns) + 1, injections,
                       corpus_version=ctx.version, context=ctx.to_json())
    _store(result, prepared.question, prepared.corpus_id, who)
    return result


def ask(asked: AskInput, backend: Backend, who: Who = None,
        on_delta: Callable[[str], None] | None = None, note: Callable[[str], None] | None = None,
        progress=None) -> AskResult:
    """Answer a question over a corpus `who` may read, with verified citations: the corpus
    resolved and read once (a snapshot), prepared, then answered once the snapshot is closed
    (generation can take minutes)."""
    with open_target(asked.target, who, note, progress, asked.corpus_only,
                     asked.as_path) as snap:
        prepared = prepare(snap, asked, backend, who, note)
    return answer(prepared, backend, who, on_delta)


def _text(value: str) -> str:
    """NUL (pasted into the UI, or from a model) as U+FFFD: PostgreSQL text cannot hold it."""
    return value.replace("\x00", "\ufffd")


def _store(result: AskResult, question: str, corpus_id: int, who: Who = None) -> None:
    c = result.completion
    # the corpus's id when it is still there (removed while the model answered: none); part of
    # the INSERT, so the corpus's row is not read again
    still = select(Corpus.id).where(Corpus.id == corpus_id).scalar_subquery()
    with session_scope(database_url()) as session:
        audit(session, who, "ask", result.corpus, conversation=result.conversation,
              turn=result.turn, mode=result.mode)
        session.add(Question(  # the version answered from, not the one stored now
            owner=owner_of_new(who), corpus_id=still, corpus_name=result.corpus,
            corpus_version=result.corpus_version, conversation=result.conversation,
            turn=result.turn, question=_text(question), answer=_text(result.answer),
            mode=result.mode,
            in_context_tokens=result.in_context_tokens, corpus_tokens=result.corpus_tokens,
            sources=[s.to_json() for s in result.sources], backend=c.backend, model=c.model,
            usage=result.to_json()["usage"], timings={
                "ttft_s": c.timings.ttft_s, "prefill_s": c.timings.prefill_s,
                "decode_s": c.timings.decode_s, "total_s": c.timings.total_s},
            finish_reason=c.finish_reason, context=result.context))
