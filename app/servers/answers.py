"""A chat request answered by the ask service (the same retrieval, context, model and citation
checks as `scoutlens ask`), on the model's turn, and the answer in OpenAI's shape: the sources
as the text's last lines and as citations, the usage, and scoutlens's own extras."""

from __future__ import annotations

from collections.abc import Callable

from app.servers.chat_request import PREFIX, ChatRequest
from app.servers.runtime import Runtime
from app.services.access import Who


def ask_chat(rt: Runtime, req: ChatRequest, who: Who, on_delta: Callable[[str], None] | None):
    """The answer on the model's turn. The corpus's snapshot is opened then, not while the
    question waits: 128 waiting questions would otherwise hold 128 database connections (the
    404 before anything streams is a check of its own, app.servers.conversations)."""
    from app.services.ask import AskInput, ask

    asked = AskInput(req.corpus, req.question, max_tokens=req.max_tokens,
                     conversation=req.conversation, corpus_only=True)
    with rt.turn() as backend:
        return ask(asked, backend, who=who, on_delta=on_delta, note=req.notes.append)


def sources_text(result) -> str:
    """The sources as the answer's last lines (what a plain chat UI shows)."""
    cited = [s for s in result.sources if s.kind == "cited"]
    matched = [s for s in result.sources if s.kind == "matched"]
    lines = []
    if cited:
        lines += ["Sources:"] + [f"[{s.id}] {s.label()}" + ("" if s.verified else
                                 f" (not verified: {s.why})") for s in cited]
    if matched:
        lines += ["Matched evidence (spans that best match the answer; not citations):"]
        lines += [f"[{s.id}] {s.label()}" for s in matched]
    return ("\n\n" + "\n".join(lines)) if lines else ""


def citations_of(result) -> list[dict]:
    return [s.to_json() | {"label": s.label()} for s in result.sources]


def usage_of(result) -> dict:
    u = result.completion.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens}}


def extra_of(result, notes: list[str]) -> dict:
    return {"mode": result.mode, "share_of_corpus": round(result.share, 4),
            "corpus_tokens": result.corpus_tokens, "in_context_tokens": result.in_context_tokens,
            "conversation": result.conversation, "turn": result.turn, "notes": notes}


def finish_of(result) -> str:
    c = result.completion
    return "length" if c.finish_reason == "length" else "stop"


def completion_body(req: ChatRequest, result, completion_id: str, created: int) -> dict:
    """A whole answer as a chat.completion."""
    return {
        "id": completion_id, "object": "chat.completion",
        "created": created, "model": PREFIX + req.corpus,
        "choices": [{"index": 0, "finish_reason": finish_of(result), "message": {
            "role": "assistant", "content": result.answer + sources_text(result),
            "citations": citations_of(result)}}],
        "usage": usage_of(result), "scoutlens": extra_of(result, req.notes)}
