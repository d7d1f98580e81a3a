"""The context of a question: the whole corpus when it fits the model's window less a reserve
for the answer (packed exactly as `scoutlens pack` would, so it is byte-identical from one
question to the next and its KV cache is reused), else the segments retrieval selects (bm25s
plus symbol and path matches), packed in corpus order. Used by ask, and by prewarm (which must
send the very prefix ask will)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from app.services.citations import ContextSource, sources_of
from app.services.pictures_sent import Vision, picture_report
from app.services.prompting import corpus_request
from app.services.search import SIGNALS, SearchHit, rank
from app.services.snapshot import Snapshot, documents, source_documents
from app.services.tokencache import tokenizer as tokenizer_for
from app.settings import get_settings
from engine.images import Choice, choose
from engine.types import (
    Backend,
    CompletionRequest,
    EngineError,
    ModelTokenizer,
    PromptCount,
    PromptTooLong,
)
from ingest.pack import Packer, PackResult
from ingest.textsplit import split_lines
from ingest.types import Document
from ingest.types import Segment as SegmentData

Mode = Literal["auto", "full", "retrieval"]
TEMPLATE_RESERVE = 384  # instructions, chat template, question framing
RETRIEVAL_CANDIDATES = 400  # fused hits considered for the budget
ESTIMATE_MARGIN = 0.1  # kept free when the backend's counts are only an estimate
RUNNER_UPS = 5  # places left out that "what went in" names
#: the fused score the best place in the context needs over the best one left out for the
#: ranking to count as clear (under it, ask says the answer may not be in what it read);
#: chosen on bench_plain.py's questions: see docs/performance.md
CLEAR_LEAD = 1.2
#: Whole segments fill this share of the retrieval budget; places ranked after them go in as
#: their best lines (the second look's focus) with FOCUS_PAD lines either side, so more of the
#: ranking fits: on bench_plain.py's standard-library questions the answer was within the best
#: 10 places for 73% and the best 30 for 92%, but 80-line segments fit about 10.
WHOLE_SHARE = 0.7
FOCUS_PAD = 10


@dataclass
class Context:
    packed: str
    plan: PackResult
    sources: list[ContextSource]
    mode: str
    docs: list[Document]
    version: str = ""  # the corpus version these sources were read from
    corpus_tokens: int = 0  # the whole corpus, in its own tokenizer's tokens
    budget: int = 0  # model tokens the window leaves for the context
    #: what will be sent (corpus prefix, earlier turns, the question; pictures when the
    #: backend shows them) and what it costs the window, counted once, images included
    request: CompletionRequest | None = None
    cost: PromptCount | None = None
    #: retrieval: the ranked hits that went in (best first), with the signals that found them
    hits: list[SearchHit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the user should know (index rebuilt)
    #: every picture in the context and how it went (`picture_report`): the "what went in" view
    pictures: list[dict] = field(default_factory=list)
    #: retrieval: the packages, folders or modules the question named, ranked inside too
    scope: list[str] = field(default_factory=list)
    #: retrieval: the best-ranked places that did not go in, best first
    runner_ups: list[SearchHit] = field(default_factory=list)
    #: retrieval: why the answer may not be in what went in ("" when the ranking was clear)
    unsure: str = ""
    lead: float = 0.0  # the best fused score that went in over the best left out

    def to_json(self, with_text: bool = False) -> dict:
        """What went in: mode, sources with their spans and tokens, the request's cost; with
        `with_text`, the context text as `context`."""
        cost = self.cost or PromptCount(0)
        out = {"mode": self.mode, "corpus_version": self.version,
               "corpus_tokens": self.corpus_tokens, "budget": self.budget,
               "prompt_tokens": cost.tokens, "images": cost.images,
               "image_tokens": cost.image_tokens, "exact": cost.exact,
               "sources": [{"id": b.id, "path": b.path, **b.attrs, "tokens": b.tokens}
                           for b in self.plan.blocks],
               "hits": [h.to_json() for h in self.hits], "notes": self.notes,
               "pictures": self.pictures, "scope": self.scope,
               "runner_ups": [h.to_json() for h in self.runner_ups], "unsure": self.unsure,
               "lead": round(self.lead, 3)}
        if with_text:
            out["context"] = self.packed
            if self.request is not None:
                out["system"], out["prompt"] = self.request.system, self.request.prompt
        return out


def full_pack(docs: list[Document], spec: str, name: str) -> Context:
    """The whole corpus packed exactly as a full-mode question packs it (its documents read
    with their symbols): the prefix a prewarmed corpus has in the cache."""
    return _pack(docs, spec, name, "full")


def _pack(docs: list[Document], spec: str, name: str, mode: str) -> Context:
    tok = tokenizer_for(spec)
    packer = Packer(tok, "xml", name, toc="top", outline=mode == "full")
    plan = packer.plan(docs)
    import io

    buf = io.StringIO()
    packer.write(plan, buf)
    return Context(buf.getvalue(), plan, sources_of(plan), mode, docs)


def _retrieve(snap: Snapshot, question: str, budget_model_tokens: int, tok: ModelTokenizer,
              fits: Callable[[Context], Context | None], signals: tuple[str, ...],
              notes: list[str]) -> Context:
    """Segments by relevance until the budget is spent, then packed in corpus order; while the
    request does not fit (`fits` gives the context with its request, or None), the least
    relevant piece goes."""
    name, spec = snap.name, snap.tokenizer
    ranking = rank(snap, question, k=RETRIEVAL_CANDIDATES, signals=signals)
    notes.extend(ranking.notes)
    ranked = ranking.hits
    order = [h.segment.id for h in ranked]
    rank_of = {sid: i for i, sid in enumerate(order)}
    rows = {h.segment.id: h.segment for h in ranked}
    found = {h.segment.id: h for h in ranked}
    # model tokens per corpus token, measured on a sample of what would go in
    sample = "".join(rows[i].text for i in order[:20] if i in rows)[:20_000] or "x"
    ratio = max(0.5, tok.count(sample) / max(1, tokenizer_for(spec).count(sample)))
    chosen: list[int] = []
    spent = 0
    limit = int(budget_model_tokens / ratio * 0.92)  # wrappers and the manifest take the rest
    counter = tokenizer_for(spec)
    cut: set[int] = set()  # the places that went in as their best lines only
    for sid in order:
        r = rows.get(sid)
        if r is None:
            continue
        cost = r.tokens + 24
        # the best place goes in whole when it fits at all, the rest while the share lasts
        if spent + cost > limit * WHOLE_SHARE and (chosen or cost > limit):
            focused = _focused(r, found[sid].focus, counter)
            if focused is not None and focused.tokens < r.tokens:
                rows[sid] = r = focused
                found[sid] = replace(found[sid], segment=focused)
                cost = r.tokens + 24
                cut.add(sid)
        if spent + cost > limit:
            continue
        chosen.append(sid)
        spent += cost
    picked = [rows[i] for i in chosen]
    hits = [found[i] for i in chosen]
    if not picked:
        raise EngineError(f"retrieval found nothing in {name} for this question; try other "
                          "words, or --mode full with a model whose window fits the corpus")
    # group by source, contiguous runs of segments become one block each, in corpus order
    by_source: dict[str, list] = {}
    for r in picked:
        by_source.setdefault(r.path, []).append(r)
    doc_of = source_documents(snap, sorted(by_source))
    pieces: list[tuple[int, Document]] = []  # (best rank among its segments, the piece)
    for path in sorted(by_source, key=lambda p: by_source[p][0].position):
        if path not in doc_of:
            continue
        segs = sorted(by_source[path], key=lambda r: r.start)
        run: list = []
        for r in segs + [None]:
            if r is not None and run and (r.span_kind != "lines" or r.start > run[-1].end + 1):
                pieces.append((min(rank_of[x.id] for x in run), _piece(doc_of[path], run)))
                run = []
            if r is not None:
                run.append(r)
        if run:
            pieces.append((min(rank_of[x.id] for x in run), _piece(doc_of[path], run)))
    while True:
        ctx = _pack([d for _, d in pieces], spec, name, "retrieval")
        kept = {(d.path, s.start) for _, d in pieces for s in d.segments}
        ctx = replace(ctx, hits=[h for h in hits if (h.segment.path, h.segment.start) in kept],
                      notes=notes, scope=ranking.scope)
        done = fits(ctx)
        if done is not None:
            return _doubt(done, ranked, cut)
        if len(pieces) == 1:
            return ctx  # the caller says how far over it is
        worst = max(range(len(pieces)), key=lambda i: pieces[i][0])
        del pieces[worst]  # the least relevant piece, wherever it sits in the corpus


def _doubt(ctx: Context, ranked: list[SearchHit], cut: set[int] = frozenset()) -> Context:
    """The context with the places ranked best that did not go in, and, when the ranking
    did not set what went in whole clearly apart from the rest (the places left out, and
    those `cut` to their best lines), a note saying the answer may not be in what was read
    (and where else to look)."""
    kept = {h.segment.id for h in ctx.hits}
    seen = {h.segment.text for h in ctx.hits}
    runner_ups: list[SearchHit] = []
    for h in ranked:  # a copy of what went in (a vendored file) is no other place
        if h.segment.id not in kept and h.segment.text not in seen:
            runner_ups.append(h)
            seen.add(h.segment.text)
            if len(runner_ups) == RUNNER_UPS:
                break
    unsure, ratio = "", 0.0
    read = [h for h in ctx.hits if h.segment.id not in cut] or ctx.hits
    partly = [h for h in ctx.hits if h not in read]
    rest = [h.score for h in partly] + ([runner_ups[0].score] if runner_ups else [])
    if read and rest:
        best = max(h.score for h in read)
        ratio = best / max(max(rest), 1e-9)
        places = ", ".join(f"{h.segment.path}:{h.segment.where}"
                           for h in (runner_ups or partly)[:3])
        if ratio < CLEAR_LEAD:
            unsure = (f"the answer may not be in what was read: the best place scored only "
                      f"{math.floor(ratio * 100) / 100:.2f}x the best one not read whole "
                      f"(next: {places})")
    notes = ctx.notes + [unsure] if unsure else ctx.notes
    return replace(ctx, runner_ups=runner_ups, unsure=unsure, notes=notes, lead=ratio)


def _focused(segment, focus: tuple[int, int] | None, counter):
    """The segment cut to its best lines and FOCUS_PAD lines either side (counted in the
    corpus's tokens), or None where it has no best lines or is not lines of text."""
    if focus is None or segment.span_kind != "lines":
        return None
    lines = split_lines(segment.text)
    first, last = max(0, focus[0] - FOCUS_PAD), min(len(lines) - 1, focus[1] + FOCUS_PAD)
    if first == 0 and last >= len(lines) - 1:
        return None
    text = "".join(lines[first:last + 1])
    return replace(segment, text=text, start=segment.start + first,
                   end=segment.start + last, tokens=counter.count(text))


def _piece(doc: Document, rows: list) -> Document:
    segs = [SegmentData(i, r.text, r.span_kind, r.start, r.end, r.tokens,
                        locator=getattr(r, "locator", ""))
            for i, r in enumerate(rows)]
    return replace(doc, segments=segs, tokens=sum(s.tokens for s in segs))


def build_context(snap: Snapshot, question: str, mode: Mode, backend: Backend,
                  max_tokens: int, window: int | None = None, turns: str = "",
                  signals: tuple[str, ...] = SIGNALS) -> Context:
    """The context for a question over a snapshot of a corpus, with the request that will be
    sent and its cost (text, template and the pictures a vision backend sends, counted as the
    server counts them) checked against the window. `turns`: earlier questions and answers of
    the conversation, sent before the question. Everything is read from the one snapshot, so
    the context is of one corpus version however long it takes to build."""
    if not snap.sources:
        raise EngineError(f"corpus {snap.name} has no readable sources (scoutlens corpora show "
                          f"{snap.name})")
    window = window or backend.window or get_settings().default_window
    tok = backend.tokenizer()
    images_root = str(get_settings().frames_dir) if backend.vision else None
    vision = Vision(images_root, getattr(backend, "max_images", None))
    budget = window - max_tokens - TEMPLATE_RESERVE - tok.count(turns + question)
    if budget <= 0:
        raise EngineError(f"the model's window ({window:,} tokens) leaves no room for context "
                          f"after {max_tokens:,} answer tokens; lower --max-tokens")

    def fits(ctx: Context) -> Context | None:
        request, choices = _request(ctx.packed, question, turns, max_tokens, vision)
        cost = tok.count_request(request)
        ctx = replace(ctx, corpus_tokens=snap.tokens, budget=budget, request=request,
                      cost=cost, version=snap.version)
        ctx.pictures = picture_report(ctx.plan.blocks, ctx.sources, ctx.docs, choices, vision)
        need = cost.tokens if cost.exact else int(cost.tokens * (1 + ESTIMATE_MARGIN))
        return ctx if need + max_tokens <= window else None

    if mode in ("auto", "full") and snap.tokens <= budget * 3:
        full = _pack(documents(snap, symbols=True), snap.tokenizer, snap.name, "full")
        ctx = fits(full)
        if ctx is not None:
            return ctx
        if mode == "full":
            raise PromptTooLong(_cost(tok, full, question, turns, max_tokens, vision),
                                window, max_tokens, hint="use --mode retrieval")
    elif mode == "full":
        raise EngineError(f"the corpus is {snap.tokens:,} tokens ({snap.tokenizer}) but the "
                          f"model's window leaves {budget:,} for context: use --mode retrieval")
    fill = min(1.0, max(0.1, get_settings().retrieval_fill))
    ctx = _retrieve(snap, turns + question, int(budget * fill), tok, fits, signals, [])
    if ctx.request is None:
        raise PromptTooLong(_cost(tok, ctx, question, turns, max_tokens, vision), window,
                            max_tokens, hint="ask with a lower --max-tokens")
    return replace(ctx, version=snap.version)


def _request(packed: str, question: str, turns: str, max_tokens: int,
             vision: Vision) -> tuple[CompletionRequest, list[Choice]]:
    """The request, with the pictures that go as images chosen once for the question (its
    cost and what is sent both follow the choice), and that choice."""
    request = corpus_request(packed, question, max_tokens)
    choices: list[Choice] = []
    if vision.root and ' image="' in packed:  # frames and pictures go as images
        choices = choose(packed, Path(vision.root), turns + question, vision.limit)
        request = replace(request, images_root=vision.root,
                          pictures=tuple(c.name for c in choices if c.sent))
    request = replace(request, prompt=turns + request.prompt) if turns else request
    return request, choices


def _cost(tok: ModelTokenizer, ctx: Context, question: str, turns: str, max_tokens: int,
          vision: Vision) -> PromptCount:
    return tok.count_request(_request(ctx.packed, question, turns, max_tokens, vision)[0])
