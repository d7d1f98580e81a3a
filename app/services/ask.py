"""Ask: a question over a corpus (or a path, ingested first) -> an answer with verified sources.

The flow is ingest -> pack -> engine -> answer -> store. The context is either the whole corpus
(packed exactly as `scoutlens pack` would, so it is byte-identical from one question to the next
and its KV cache is reused) or, when that does not fit the model's window less a reserve for the
answer, the segments retrieval selects (bm25s plus symbol and path matches), packed in corpus
order. The prompt is instructions + manifest + corpus as one stable prefix, then earlier turns of
the conversation, then the question.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from sqlalchemy import select

from app.database import session_scope
from app.models import Corpus, Question
from app.services.citations import ContextSource, SourceRef, matched_evidence, verify
from app.services.prompting import corpus_request
from app.services.tokencache import tokenizer as tokenizer_for
from app.settings import get_settings
from engine.types import Backend, Completion, EngineError
from ingest.pack import Packer, PackResult
from ingest.types import Document, IngestError
from ingest.types import Segment as SegmentData

Mode = Literal["auto", "full", "retrieval"]
MAX_QUESTION_CHARS = 4_000
TEMPLATE_RESERVE = 384  # instructions, chat template, question framing
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


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
        }


@dataclass
class Context:
    packed: str
    plan: PackResult
    sources: list[ContextSource]
    mode: str
    docs: list[Document]
    version: str = ""  # the corpus version these sources were read from


def _check_question(question: str) -> str:
    q = question.strip()
    if not q:
        raise EngineError("the question is empty")
    if len(q) > MAX_QUESTION_CHARS:
        raise EngineError(f"the question is {len(q):,} characters; the limit is "
                          f"{MAX_QUESTION_CHARS:,} (put long material into the corpus instead)")
    return q


def looks_like_path(target: str) -> bool:
    """`./x`, `../x`, `/x`, `~`, `.` or anything with a separator: a bare word is a name."""
    seps = [c for c in (os.sep, os.altsep) if c]
    return target in (".", "..") or target.startswith("~") or any(c in target for c in seps)


def resolve_corpus(target: str, progress=None, note: Callable[[str], None] | None = None,
                   corpus_only: bool = False, as_path: bool = False) -> str:
    """The corpus to ask. A bare word is a stored corpus name, even when the working directory
    has a folder of that name (which would otherwise be merged in silently); a path is a path
    only when it looks like one, or with `as_path` (`--path`): it is ingested (incrementally)
    into a corpus named after it. `corpus_only` (the web UI): never a path, so a corpus named
    like a folder of the server's working directory cannot pull that folder in. `note` is told
    which of the two was used."""
    from app.services.corpora import corpus_exists, ingest

    if corpus_only:
        if not corpus_exists(target):
            raise IngestError(f"no such corpus: {target}")
        return target
    if not as_path and not looks_like_path(target):
        here = Path(target).exists()
        if corpus_exists(target):
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
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.resolve().name).strip("-.") or "corpus"
    if note:
        note(f"ingesting {path} into corpus {name!r}")
    ingest([path], name, progress=progress)
    return name


@dataclass(frozen=True)
class CorpusInfo:
    spec: str  # tokenizer the corpus was counted with
    version: str
    tokens: int
    sources: list[Document]  # metadata only: path, kind, language, flags (no segments)


def _corpus_info(name: str) -> CorpusInfo:
    """What deciding full vs retrieval needs, without reading the corpus's text."""
    from app.models import Source

    with session_scope(get_settings().db_url) as session:
        row = session.scalar(select(Corpus).where(Corpus.name == name))
        if row is None:
            raise IngestError(f"no such corpus: {name}")
        srcs = session.execute(select(
            Source.path, Source.root, Source.kind, Source.language, Source.sha256, Source.bytes,
            Source.flags, Source.tokens).where(Source.corpus_id == row.id, Source.status == "ok")
            .order_by(Source.position)).all()
        docs = [Document(p, r, k, lang, sha or "", size, [], flags=list(fl or []), tokens=t)
                for p, r, k, lang, sha, size, fl, t in srcs]
        return CorpusInfo(row.tokenizer, row.version_hash, sum(d.tokens for d in docs), docs)


def _documents(name: str) -> list[Document]:
    from app.services.corpora import load_documents

    return load_documents(name, symbols=True)[1]


def _version_of(docs: list[Document], spec: str) -> str:
    """The version an ingest gives exactly these sources (read in one transaction), so a
    context's version holds even if an ingest landed between reading the corpus's row and
    its text."""
    from app.services.corpora import _version_hash

    return _version_hash([(d.path, d.sha256) for d in docs], tokenizer_for(spec).fingerprint)


def _current_version(name: str) -> str | None:
    with session_scope(get_settings().db_url) as session:
        return session.scalar(select(Corpus.version_hash).where(Corpus.name == name))


def _sources(plan: PackResult) -> list[ContextSource]:
    out = []
    for b in plan.blocks:
        a = b.attrs
        start = end = page = None
        if "lines" in a:
            s, _, e = a["lines"].partition("-")
            start, end = int(s), int(e or s)
        if "page" in a:
            page = int(a["page"])
        kind = "video" if a.get("media") == "video" else "pdf" if page else "text"
        out.append(ContextSource(b.id, b.path, kind, b.text, start, end, page, a.get("t")))
    return out


def _pack(docs: list[Document], spec: str, name: str, mode: str) -> Context:
    tok = tokenizer_for(spec)
    packer = Packer(tok, "xml", name, toc="top", outline=mode == "full")
    plan = packer.plan(docs)
    import io

    buf = io.StringIO()
    packer.write(plan, buf)
    return Context(buf.getvalue(), plan, _sources(plan), mode, docs)


def _retrieve(name: str, version: str, docs: list[Document], question: str, spec: str,
              budget_model_tokens: int, backend: Backend) -> Context:
    """Segments by relevance until the budget is spent, then packed in corpus order."""
    from app.services.index import fetch_segments, load_index, path_segments, symbol_segments

    index = load_index(name, version)
    wanted = set(IDENT.findall(question))
    # a question naming a file (or its stem) brings in its start; a symbol, its definition
    lowered = question.lower()
    named = [d.path for d in docs if d.path.rsplit("/", 1)[-1].lower() in lowered
             or d.path.rsplit("/", 1)[-1].split(".")[0] in wanted][:3]
    ranked = (symbol_segments(name, wanted) + path_segments(name, named)
              + [h.segment for h in index.search(question, k=400)])
    seen: set[int] = set()
    order = [i for i in ranked if not (i in seen or seen.add(i))]
    rows = {r.id: r for r in fetch_segments(name, order)}
    # model tokens per corpus token, measured on a sample of what would go in
    sample = "".join(rows[i].text for i in order[:20] if i in rows)[:20_000] or "x"
    ratio = max(0.5, backend.count(sample) / max(1, tokenizer_for(spec).count(sample)))
    chosen: list[int] = []
    spent = 0
    limit = int(budget_model_tokens / ratio * 0.92)  # wrappers and the manifest take the rest
    for sid in order:
        r = rows.get(sid)
        if r is None:
            continue
        cost = r.tokens + 24
        if spent + cost > limit:
            continue
        chosen.append(sid)
        spent += cost
    picked = [rows[i] for i in chosen]
    if not picked:
        raise EngineError(f"retrieval found nothing in {name} for this question; try other "
                          "words, or --mode full with a model whose window fits the corpus")
    # group by source, contiguous runs of segments become one block each, in corpus order
    by_source: dict[str, list] = {}
    for r in picked:
        by_source.setdefault(r.path, []).append(r)
    doc_of = {d.path: d for d in docs}
    pieces: list[Document] = []
    for path in sorted(by_source, key=lambda p: by_source[p][0].position):
        segs = sorted(by_source[path], key=lambda r: r.start)
        run: list = []
        for r in segs + [None]:
            if r is not None and run and (r.span_kind != "lines" or r.start > run[-1].end + 1):
                pieces.append(_piece(doc_of[path], run))
                run = []
            if r is not None:
                run.append(r)
        if run:
            pieces.append(_piece(doc_of[path], run))
    ctx = _pack(pieces, spec, name, "retrieval")
    # exact check under the model's tokenizer; trim from the least relevant end if over
    while backend.count(ctx.packed) > budget_model_tokens and len(pieces) > 1:
        pieces = pieces[:-1]
        ctx = _pack(pieces, spec, name, "retrieval")
    return ctx


def _piece(doc: Document, rows: list) -> Document:
    segs = [SegmentData(i, r.text, r.span_kind, r.start, r.end, r.tokens)
            for i, r in enumerate(rows)]
    return replace(doc, segments=segs, tokens=sum(s.tokens for s in segs))


def build_context(name: str, question: str, mode: Mode, backend: Backend,
                  max_tokens: int, window: int | None = None) -> tuple[Context, int, int]:
    """(context, corpus tokens, budget in model tokens) for a question over a stored corpus;
    the context carries the corpus version it was read from. Retrieval reads the corpus in
    several transactions: an ingest landing in between means building it again."""
    for _ in range(3):
        ctx, corpus_tokens, budget = _build_context(name, question, mode, backend, max_tokens,
                                                    window)
        if ctx.mode == "full" or _current_version(name) == ctx.version:
            return ctx, corpus_tokens, budget
    raise EngineError(f"corpus {name} changed three times while its context was being built; "
                      "ask again when the ingest is done")


def _build_context(name: str, question: str, mode: Mode, backend: Backend,
                   max_tokens: int, window: int | None) -> tuple[Context, int, int]:
    info = _corpus_info(name)
    spec, version = info.spec, info.version
    if not info.sources:
        raise EngineError(f"corpus {name} has no readable sources (scoutlens corpora show {name})")
    corpus_tokens = info.tokens
    window = window or backend.window or get_settings().default_window
    budget = window - max_tokens - TEMPLATE_RESERVE - backend.count(question)
    if budget <= 0:
        raise EngineError(f"the model's window ({window:,} tokens) leaves no room for context "
                          f"after {max_tokens:,} answer tokens; lower --max-tokens")
    if mode in ("auto", "full") and corpus_tokens <= budget * 3:
        docs = _documents(name)
        ctx = replace(_pack(docs, spec, name, "full"), version=_version_of(docs, spec))
        model_tokens = backend.count(ctx.packed)
        if model_tokens <= budget:
            return ctx, corpus_tokens, budget
        if mode == "full":
            raise EngineError(f"the corpus is {model_tokens:,} tokens but the model's window "
                              f"leaves {budget:,} for context (window {window:,}, "
                              f"{max_tokens:,} reserved for the answer): use --mode retrieval")
    elif mode == "full":
        raise EngineError(f"the corpus is {corpus_tokens:,} tokens ({spec}) but the model's "
                          f"window leaves {budget:,} for context: use --mode retrieval")
    fill = min(1.0, max(0.1, get_settings().retrieval_fill))
    ctx = _retrieve(name, version, info.sources, question, spec, int(budget * fill), backend)
    return replace(ctx, version=version), corpus_tokens, budget


def _history(conversation: str) -> list[tuple[str, str]]:
    with session_scope(get_settings().db_url) as session:
        return [(q.question, q.answer) for q in session.scalars(
            select(Question).where(Question.conversation == conversation)
            .order_by(Question.turn))]


def _last_conversation(name: str) -> str | None:
    with session_scope(get_settings().db_url) as session:
        q = session.scalars(select(Question).where(Question.corpus_name == name)
                            .order_by(Question.created_at.desc(), Question.id.desc())
                            .limit(1)).first()
        return q.conversation if q else None


def ask(target: str, question: str, backend: Backend, mode: Mode = "auto",
        max_tokens: int = 512, continue_last: bool = False, conversation: str | None = None,
        on_delta: Callable[[str], None] | None = None, note: Callable[[str], None] | None = None,
        progress=None, corpus_only: bool = False, as_path: bool = False) -> AskResult:
    question = _check_question(question)
    if mode not in ("auto", "full", "retrieval"):
        raise EngineError(f"unknown mode {mode!r}: auto | full | retrieval")
    name = resolve_corpus(target, progress, note, corpus_only, as_path)
    if continue_last and conversation is None:
        conversation = _last_conversation(name)
    turns = _history(conversation) if conversation else []
    conversation = conversation or uuid.uuid4().hex[:12]
    earlier = "".join(f"Earlier question: {q}\nEarlier answer: {a}\n\n" for q, a in turns)
    ctx, corpus_tokens, _ = build_context(name, earlier + question, mode, backend, max_tokens)
    request = corpus_request(ctx.packed, question, max_tokens)
    if backend.name == "openai" and ' image="' in ctx.packed:  # frames go as pictures
        request = replace(request, images_root=str(get_settings().frames_dir))
    if earlier:
        request = replace(request, prompt=earlier + request.prompt)
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
    result = AskResult(answer, ctx.mode, sources, completion, name, corpus_tokens, in_context,
                       conversation, len(turns) + 1, injections, corpus_version=ctx.version)
    _store(result, question)
    return result


def _text(value: str) -> str:
    """NUL (pasted into the UI, or from a model) as U+FFFD: PostgreSQL text cannot hold it."""
    return value.replace("\x00", "\ufffd")


def _store(result: AskResult, question: str) -> None:
    c = result.completion
    with session_scope(get_settings().db_url) as session:
        row = session.scalar(select(Corpus).where(Corpus.name == result.corpus))
        session.add(Question(  # the version answered from, not the one stored now
            corpus_id=row.id if row else None, corpus_name=result.corpus,
            corpus_version=result.corpus_version, conversation=result.conversation,
            turn=result.turn, question=_text(question), answer=_text(result.answer),
            mode=result.mode,
            in_context_tokens=result.in_context_tokens, corpus_tokens=result.corpus_tokens,
            sources=[s.to_json() for s in result.sources], backend=c.backend, model=c.model,
            usage=result.to_json()["usage"], timings={
                "ttft_s": c.timings.ttft_s, "prefill_s": c.timings.prefill_s,
                "decode_s": c.timings.decode_s, "total_s": c.timings.total_s},
            finish_reason=c.finish_reason))


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

    @property
    def incomplete(self) -> bool:
        return self.finish_reason == "incomplete"


def history(corpus: str | None = None, limit: int = 50) -> list[HistoryRow]:
    with session_scope(get_settings().db_url) as session:
        q = select(Question).order_by(Question.created_at.desc(), Question.id.desc()).limit(limit)
        if corpus:
            q = q.where(Question.corpus_name == corpus)
        return [HistoryRow(r.id, r.created_at.isoformat(timespec="seconds"), r.corpus_name,
                           r.conversation, r.turn, r.question, r.answer, r.mode, r.backend,
                           r.model, dict(r.usage or {}), dict(r.timings or {}),
                           list(r.sources or []), r.finish_reason or "stop", r.corpus_version)
                for r in session.scalars(q)]
