"""A chat completion request read and checked before anything is asked: the body (JSON only,
bounded in size while it arrives), its text (valid Unicode, not nested past the parser), and
the question with its options; every refusal is an ApiError with one line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request

from app.servers.errors import TOO_DEEP, ApiError

PREFIX = "corpus:"
MAX_BODY = 1 << 20  # a question is at most 4,000 characters; history rides along
MAX_TOKENS = 8192
DEFAULT_MAX_TOKENS = 512


@dataclass
class ChatRequest:
    corpus: str
    question: str
    earlier: list[str] = field(default_factory=list)  # earlier user messages, in order
    stream: bool = False
    include_usage: bool = False
    max_tokens: int = DEFAULT_MAX_TOKENS
    conversation: str | None = None
    notes: list[str] = field(default_factory=list)


def corpus_of(model: Any) -> str:
    if not isinstance(model, str) or not model.startswith(PREFIX) or not model[len(PREFIX):]:
        raise ApiError(404, f"model {model!r} not found: the models are corpora, named "
                            f"{PREFIX}NAME (GET /v1/models lists them)", "model",
                       code="model_not_found")
    return model[len(PREFIX):]


def _text(content: Any, where: str) -> str:
    """A message's text: a string, or a list of text parts (pictures are refused)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        if any(p.get("type") != "text" or not isinstance(p.get("text"), str) for p in content):
            raise ApiError(400, f"{where}: only text parts are read", where)
        return "\n".join(p["text"] for p in content)
    raise ApiError(400, f"{where}: content must be a string or a list of text parts", where)


def _int(body: dict, key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"{key} must be a whole number from {low} to {high:,}, not "
                            f"{json.dumps(value)[:40]}", key)
    return value


def parse_chat(body: Any) -> ChatRequest:
    """The question and options of a chat completion body; ApiError (400/404) with one line."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    corpus = corpus_of(body.get("model"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", "messages")
    turns: list[tuple[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user",
                                                             "assistant"):
            raise ApiError(400, f"messages[{i}]: role must be system, developer, user or "
                                "assistant", f"messages[{i}].role")
        turns.append((m["role"], _text(m.get("content") or "", f"messages[{i}].content")))
    if turns[-1][0] != "user":
        raise ApiError(400, "the last message must be the user's question", "messages")
    if not turns[-1][1].strip():
        raise ApiError(400, "the question (the last user message) is empty", "messages")
    if (body.get("n") or 1) != 1:
        raise ApiError(400, "n must be 1: one answer per question", "n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "stream_options must be an object", "stream_options")
    limit = (_int(body, "max_completion_tokens", 1, MAX_TOKENS)
             or _int(body, "max_tokens", 1, MAX_TOKENS) or DEFAULT_MAX_TOKENS)
    conversation = body.get("conversation")
    if conversation is not None and not isinstance(conversation, str):
        raise ApiError(400, "conversation must be a string (an id a response gave)",
                       "conversation")
    out = ChatRequest(corpus, turns[-1][1], [t for r, t in turns[:-1] if r == "user"],
                      stream, bool(options.get("include_usage")), limit, conversation)
    if any(r in ("system", "developer") for r, _ in turns):
        out.notes.append("system messages are not used: scoutlens answers with its own "
                         "instructions (answer from the corpus, cite sources)")
    return out


def parsed(raw: bytes) -> Any:
    """The body as JSON; ApiError (400) when it is none, or nests so deeply that the parser
    gives up (a RecursionError is no server fault: a client sent [[[[...)."""
    try:
        return json.loads(raw or b"null")
    except RecursionError:
        raise TOO_DEEP from None
    except ValueError:
        raise ApiError(400, "the body is not JSON") from None


def valid_text(body: Any) -> Any:
    """The parsed body, refused when a string in it is not Unicode text: JSON may escape a
    lone surrogate (\\ud800), which no storage or model can take."""
    try:
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ApiError(400, "the body holds text that is not valid Unicode (a lone surrogate "
                            "escape such as \\ud800)") from None
    except RecursionError:
        raise TOO_DEEP from None
    return body


async def read_body(request: Request) -> bytes:
    """The request body, refused past MAX_BODY before it is all read (a client cannot make
    the server hold a body of any size), and only as JSON (a web page can send text/plain
    without asking first)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, f"the body is {int(declared):,} bytes; the limit is {MAX_BODY:,}")
    raw = bytearray()
    try:
        async for part in request.stream():
            raw += part
            if len(raw) > MAX_BODY:
                raise ApiError(413, f"the body is over the limit of {MAX_BODY:,} bytes")
    except ClientDisconnect:  # nobody to answer: no traceback in the log either
        raise ApiError(400, "the client went away before its body arrived") from None
    return bytes(raw)


async def read_chat(request: Request) -> ChatRequest:
    """The request's chat completion, read and parsed (not yet checked against the store)."""
    return parse_chat(valid_text(parsed(await read_body(request))))
