"""Ask: a question over a corpus (or a path, ingested first) -> an answer with verified sources.

The flow is ingest -> pack -> engine -> answer -> store: resolve the corpus (a stored name, or a
path ingested first), build the context (app.services.context), run the conversation (the prompt
is instructions + manifest + corpus as one stable prefix, then earlier turns, then the question),
verify citations, store the answer (listed by app.services.history).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from app.database import session_scope
from app.models import Corpus, Question
from app.services.access import Who, audit, owner_of_new
from app.services.citations import SourceRef, matched_evidence, verify
from app.services.context import Context, Mode, build_context
from app.services.history import conversation_turns, last_conversation
from app.settings import get_settings
from engine.types import Backend, Completion, EngineError
from ingest.types import IngestError

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


def check_question(question: str) -> str:
    q = question.strip()
    if not q:
        raise EngineError("the question is empty")
    if len(q) > MAX_QUESTION_CHARS:
        raise EngineError(f"the question is {len(q):,} characters; the limit is "
                          f"{MAX_QUESTION_CHARS:,} (put long material into the corpus instead)")
    return q


def resolve_corpus(target: str, progress=None, note: Callable[[str], None] | None = None,
                   corpus_only: bool = False, as_path: bool = False, who: Who = None) -> str:
    """The corpus to ask. A bare word is a stored corpus name, even when the working directory
    has a folder of that name (which would otherwise be merged in silently); a path is a path
    only when it looks like one, or with `as_path` (`--path`): it is ingested (incrementally)
    into a corpus named after it. `corpus_only` (the web UI): never a path, so a corpus named
    like a folder of the server's working directory cannot pull that folder in. `note` is told
    which of the two was used. A corpus `who` may not read is not there."""
    from app.services.corpora import corpus_exists, corpus_name_for, ingest, looks_like_path

    if corpus_only:
        if not corpus_exists(target, who=who):
            raise IngestError(f"no such corpus: {target}")
        return target
    if not as_path and not looks_like_path(target):
        here = Path(target).exists()
        if corpus_exists(target, who=who):
            if note:
                note(f"using the stored corpus {target!r}" + (
                    f" (not ./{target}: pass ./{target} or --path to ingest it)" if here else ""))
            return target
        hint = f"; ./{target} exists: pass ./{target} or --path to ingest it" if here else ""
        raise IngestError(f"no such corpus or path: {target} (scoutlens corpora list shows the "
                          f"corpora){hint}")
    path = Path(target).expanduser()
    if not path.exists():
        raise IngestError(f"no such corpus or path: {target} (no such file or folder)")
    name = corpus_name_for(path)
    if note:
        note(f"ingesting {path} into corpus {name!r}")
    ingest([path], name, progress=progress, who=who)
    return name


@dataclass
class Prepared:
    """A question made ready to send: the corpus, the conversation it continues, the context."""

    corpus: str
    question: str
    conversation: str
    turns: list[tuple[str, str]]
    context: Context


def prepare(target: str, question: str, backend: Backend, mode: Mode = "auto",
            max_tokens: int = 512, continue_last: bool = False, conversation: str | None = None,
            note: Callable[[str], None] | None = None, progress=None, corpus_only: bool = False,
            as_path: bool = False, who: Who = None) -> Prepared:
    """Everything ask does before it generates: the context and the exact request (what
    `ask --dry-run` shows, and what ask then sends)."""
    question = check_question(question)
    if mode not in ("auto", "full", "retrieval"):
        raise EngineError(f"unknown mode {mode!r}: auto | full | retrieval")
    name = resolve_corpus(target, progress, note, corpus_only, as_path, who)
    if continue_last and conversation is None:
        conversation = last_conversation(name, who)
    turns = conversation_turns(conversation, name, who) if conversation else []
    if conversation and not turns:
        raise EngineError(f"no such conversation: {conversation} (scoutlens history {name} "
                          "lists them; leave out --conversation to start one)")
    earlier = "".join(f"Earlier question: {q}\nEarlier answer: {a}\n\n" for q, a in turns)
    ctx = build_context(name, question, mode, backend, max_tokens, turns=earlier)
    if note:
        for text in ctx.notes:
            note(text)
    return Prepared(name, question, conversation or uuid.uuid4().hex[:12], turns, ctx)


def ask(target: str, question: str, backend: Backend, mode: Mode = "auto",
        max_tokens: int = 512, continue_last: bool = False, conversation: str | None = None,
        on_delta: Callable[[str], None] | None = None, note: Callable[[str], None] | None = None,
        progress=None, corpus_only: bool = False, as_path: bool = False,
        who: Who = None) -> AskResult:
    """Answer `question` over a corpus `who` may read, with verified citations; stored as
    `who`'s (a conversation is its asker's alone)."""
    p = prepare(target, question, backend, mode, max_tokens, continue_last, conversation, note,
                progress, corpus_only, as_path, who)
    name, question, conversation, turns, ctx = (p.corpus, p.question, p.conversation, p.turns,
                                                p.context)
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
    answer = completion.text.strip()
    cited = verify(answer, ctx.sources)
    sources = list(cited)
    if not any(r.verified for r in cited):
        sources += matched_evidence(answer, ctx.sources)
    in_context = sum(b.tokens for b in ctx.plan.blocks)
    injections = [f"{d.path}: {f.removeprefix('injection:')}" for d in ctx.docs
                  for f in d.flags if f.startswith("injection:")]
    result = AskResult(answer, ctx.mode, sources, completion, name, ctx.corpus_tokens, in_context,
                       conversation, len(turns) + 1, injections, corpus_version=ctx.version,
                       context=ctx.to_json())
    _store(result, question, who)
    return result


def _text(value: str) -> str:
    """NUL (pasted into the UI, or from a model) as U+FFFD: PostgreSQL text cannot hold it."""
    return value.replace("\x00", "\ufffd")


def _store(result: AskResult, question: str, who: Who = None) -> None:
    c = result.completion
    with session_scope(get_settings().db_url) as session:
        row = session.scalar(select(Corpus).where(Corpus.name == result.corpus))
        audit(session, who, "ask", result.corpus, conversation=result.conversation,
              turn=result.turn, mode=result.mode)
        session.add(Question(  # the version answered from, not the one stored now
            owner=owner_of_new(who), corpus_id=row.id if row else None, corpus_name=result.corpus,
            corpus_version=result.corpus_version, conversation=result.conversation,
            turn=result.turn, question=_text(question), answer=_text(result.answer),
            mode=result.mode,
            in_context_tokens=result.in_context_tokens, corpus_tokens=result.corpus_tokens,
            sources=[s.to_json() for s in result.sources], backend=c.backend, model=c.model,
            usage=result.to_json()["usage"], timings={
                "ttft_s": c.timings.ttft_s, "prefill_s": c.timings.prefill_s,
                "decode_s": c.timings.decode_s, "total_s": c.timings.total_s},
            finish_reason=c.finish_reason, context=result.context))
