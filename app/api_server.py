"""`scoutlens serve api`: an OpenAI-compatible chat endpoint whose models are corpora, so any
OpenAI client or chat UI can ask one (`model="corpus:myrepo"`), answered by the ask service
(the same retrieval, context, model and citation checks as `scoutlens ask`).

- `GET /v1/models`: the corpora the caller may read, as `corpus:NAME`.
- `POST /v1/chat/completions`: the last user message is the question. Earlier turns continue a
  stored conversation when their questions are exactly that conversation's (the answers come
  from the store, not from what the client sends back), or the one named by a `conversation`
  field; otherwise the question is answered on its own, and the response says so in
  `scoutlens.notes`. System messages are not used (scoutlens has its own instructions).
  The answer carries its sources in the text and as `choices[0].message.citations` (streamed:
  in the last chunk's `delta.citations`); `usage` has prompt, completion and cached tokens.
- Errors are OpenAI-shaped (`{"error": {"message", "type", "param", "code"}}`): 400 for a bad
  body, 404 for a model that is no corpus, 401 for a shared server's request that did not come
  through the signing-in proxy, 429 (with Retry-After) when the caller has MAX_PER_PERSON
  questions being answered or waiting, 503 when the server has MAX_IN_FLIGHT, or while it stops.

One slow caller never stalls the rest: no request holds a worker thread while it waits for the
model. A streamed answer's deltas come over an async channel, a question's model work runs on a
limiter of its own, and the quick work (who asks, the corpus list, checks before asking) on
another, so `/v1/models` answers while every question waits. On SIGTERM (`serve`), every
stream in flight ends at once with a "server is stopping" error event and [DONE], generation
stops, and the process ends within GRACE_S.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.daemon_threads import Abandoned, run_daemon
from app.mcp.runtime import Runtime
from app.services.access import Who
from common.errors import UserError

PREFIX = "corpus:"
MAX_BODY = 1 << 20  # a question is at most 4,000 characters; history rides along
MAX_TOKENS = 8192
DEFAULT_MAX_TOKENS = 512
MAX_IN_FLIGHT = 128  # questions answered or waiting for the model; more are told to retry
MAX_PER_PERSON = 64  # of those, one person's (the operator of a loopback server is one person)
QUICK_THREADS = 8  # threads for the quick work (sign-in, listing, checks), apart from asks
GRACE_S = 3.0  # after SIGTERM: how long requests that are not streams may take to finish
RETRY_AFTER_S = 5
#: connections of one address still sending a request (or idle between two): past it the
#: oldest is closed, so a client that opens thousands and never finishes their headers
#: (slowloris) cannot use up the server's file descriptors and lock everyone out
PENDING_PER_PEER = 256
REQUEST_S = 30.0  # to send a whole request, headers and body, once the connection waits on it


class ApiError(UserError):
    """A request refused with an HTTP status and an OpenAI error type."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.kind, self.code = status, param, kind, code

    def body(self) -> dict:
        return {"error": {"message": " ".join(str(self).split()), "type": self.kind,
                          "param": self.param, "code": self.code}}


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


def continued(corpus: str, earlier: list[str], who: Who) -> str | None:
    """The stored conversation over `corpus` whose questions are exactly `earlier`, in order
    (the newest such), or None."""
    if not earlier:
        return None
    from app.services.history import history

    turns: dict[str, dict[int, str]] = {}
    for row in history(corpus, limit=1000, who=who):
        turns.setdefault(row.conversation, {})[row.turn] = row.question
    for conversation, asked in turns.items():  # newest first
        if [asked.get(i + 1) for i in range(len(asked))] == earlier:
            return conversation
    return None


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


def usage_of(result) -> dict:
    u = result.completion.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens}}


def extra_of(result, notes: list[str]) -> dict:
    return {"mode": result.mode, "share_of_corpus": round(result.share, 4),
            "corpus_tokens": result.corpus_tokens, "in_context_tokens": result.in_context_tokens,
            "conversation": result.conversation, "turn": result.turn, "notes": notes}


def _finish(result) -> str:
    c = result.completion
    return "length" if c.finish_reason == "length" else "stop"


def error_response(exc: ApiError) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status in (429, 503) else None
    return JSONResponse(exc.body(), exc.status, headers=headers)


TOO_DEEP = ApiError(400, "the body nests arrays or objects too deeply for a chat request")


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


def _as_api_error(exc: UserError) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    from app.mcp.signin import NotSignedIn

    if isinstance(exc, NotSignedIn):
        return ApiError(401, str(exc), kind="authentication_error")
    return ApiError(400, str(exc))


class ClientGone(Exception):
    """The client of a streamed answer went away, or the server stops: generation stops
    (nothing is stored)."""


STOPPING = ApiError(503, "the server is stopping: ask again when it is back",
                    kind="server_error", code="server_stopping")


@dataclass(eq=False)
class Asking:
    """One question in flight: `gone` stops its generation at the next delta; `wake` (a
    stream's) lets its reader know at once."""

    person: str | None = None
    gone: threading.Event = field(default_factory=threading.Event)
    wake: Callable[[], None] | None = None
    stopped: bool = False  # by the server stopping, not by its client

    def check(self, delta: str = "") -> None:
        if self.gone.is_set():
            raise ClientGone

    def stop(self) -> None:
        self.stopped = True
        self.gone.set()
        if self.wake is not None:
            self.wake()


class InFlight:
    """The questions being answered or waiting for the model: admitted up to a bound (a 503
    past it, not an ever longer queue; a 429 past a person's share, so one caller cannot take
    every place), and stopped together when the server stops. Used on the event loop's thread
    only."""

    def __init__(self, limit: int = MAX_IN_FLIGHT, per_person: int = MAX_PER_PERSON):
        self.limit, self.per_person = limit, per_person
        self.asks, self.stopping = set[Asking](), False

    def admit(self, who: Who = None) -> Asking:
        person = getattr(who, "name", None)
        if self.stopping:
            raise STOPPING
        if len(self.asks) >= self.limit:
            raise ApiError(503, f"the server is busy: {self.limit} questions are being answered "
                                f"or waiting; ask again in a few seconds", kind="server_error",
                           code="server_busy")
        if sum(a.person == person for a in self.asks) >= self.per_person:
            raise ApiError(429, f"you have {self.per_person} questions being answered or "
                                "waiting; ask again when one is done", kind="rate_limit_error",
                           code="too_many_questions")
        asking = Asking(person)
        self.asks.add(asking)
        return asking

    def release(self, asking: Asking) -> None:
        self.asks.discard(asking)

    def stop_all(self) -> None:
        self.stopping = True
        for asking in list(self.asks):
            asking.stop()


class _Stream(StreamingResponse):
    """A streamed answer that gives its place back when the response ends, however it ends
    (its generator may never start when the client left first)."""

    def __init__(self, body: AsyncIterator[bytes], release: Callable[[], None]):
        super().__init__(body, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache"})
        self._release = release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def _host_ok(request: Request) -> bool:
    """A loopback server answers only requests addressed to loopback: a web page whose name
    an attacker re-points at 127.0.0.1 (DNS rebinding) sends its own name as Host."""
    host = request.headers.get("host", "")
    name, colon, port = host.rpartition(":") if not host.endswith("]") else ("", "", host)
    if not colon:
        name, port = port, ""
    return name.lower() in LOOPBACK_HOSTS and (port == "" or port.isdigit())


async def _body(request: Request) -> bytes:
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


def create_app(rt: Runtime, who_of: Callable[[Request], Who], loopback_only: bool = True,
               max_in_flight: int = MAX_IN_FLIGHT,
               max_per_person: int = MAX_PER_PERSON) -> Starlette:
    """The ASGI app. `who_of(request)` is who asks (blocking: run in a thread; raises
    NotSignedIn on a shared server); the person is settled before the body is read.
    `loopback_only`: refuse requests addressed to any other host name. `app.state.in_flight`
    is what `serve` stops on SIGTERM."""
    in_flight = InFlight(max_in_flight, max_per_person)
    quick = anyio.CapacityLimiter(QUICK_THREADS)
    asks = anyio.CapacityLimiter(max_in_flight)  # never the one that runs out: admission does

    async def run_quick(func: Callable, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(func, *args, limiter=quick)

    def refused(request: Request) -> Response | None:
        if loopback_only and not _host_ok(request):
            return error_response(ApiError(421, "invalid Host header: this server answers "
                                                "requests to 127.0.0.1 or localhost only"))
        return None

    async def models(request: Request) -> Response:
        from app.services.corpora import list_corpora

        if (no := refused(request)) is not None:
            return no
        try:
            who = await run_quick(who_of, request)
            rows = await run_quick(lambda: list_corpora(who=who))
        except UserError as exc:
            return error_response(_as_api_error(exc))
        return JSONResponse({"object": "list", "data": [
            {"id": PREFIX + c.name, "object": "model", "owned_by": c.owner,
             "created": _epoch(c.created_at)} for c in rows]})

    async def chat(request: Request) -> Response:
        if (no := refused(request)) is not None:
            return no
        try:
            who = await run_quick(who_of, request)
            raw = await _body(request)
            req = parse_chat(valid_text(parsed(raw)))
            await run_quick(_prepare, req, who)
            asking = in_flight.admit(who)
        except UserError as exc:
            return error_response(_as_api_error(exc))
        if req.stream:
            return _Stream(_events(rt, req, who, asking), lambda: in_flight.release(asking))
        try:
            result = await _answer(rt, req, who, asking, asks)
        except UserError as exc:
            return error_response(_as_api_error(exc))
        finally:
            in_flight.release(asking)
        citations = [s.to_json() | {"label": s.label()} for s in result.sources]
        return JSONResponse({
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": PREFIX + req.corpus,
            "choices": [{"index": 0, "finish_reason": _finish(result), "message": {
                "role": "assistant", "content": result.answer + sources_text(result),
                "citations": citations}}],
            "usage": usage_of(result), "scoutlens": extra_of(result, req.notes)})

    app = Starlette(routes=[Route("/v1/models", models, methods=["GET"]),
                            Route("/v1/chat/completions", chat, methods=["POST"])])
    app.state.in_flight = in_flight
    return app


async def _answer(rt: Runtime, req: ChatRequest, who: Who, asking: Asking,
                  limiter: anyio.CapacityLimiter):
    """A whole answer, from a daemon thread with a place on the asks' limiter. The server
    stopping answers at once (503) and leaves the thread to stop at its next delta, or with
    the process."""
    stopped = anyio.Event()
    asking.wake = stopped.set
    try:
        return await run_daemon(_ask, rt, req, who, asking.check, name="scoutlens-api-ask",
                                limiter=limiter, finished=stopped)
    except (ClientGone, Abandoned):
        raise STOPPING from None
    except BaseException:
        asking.gone.set()
        raise


def serve(app: Starlette, host: str, port: int) -> None:
    """Run the app until SIGTERM or Ctrl-C: the peer address is the socket's (never
    X-Forwarded-For's, app.services.signin), and stopping ends the streams in flight at once
    and any other request within GRACE_S."""
    import uvicorn

    from app.services.signin import PEER_FROM_SOCKET

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            app.state.in_flight.stop_all()  # before uvicorn waits for the connections
            await super().shutdown(sockets)

    Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                          timeout_graceful_shutdown=GRACE_S, http=bounded_http(),
                          **PEER_FROM_SOCKET)).run()


def bounded_http() -> type:
    """uvicorn's h11 protocol, with a bound on connections still sending their request: each
    has REQUEST_S to send it, and one peer address holds at most PENDING_PER_PEER of them (the
    oldest goes). uvicorn itself waits for a request's headers for ever. Also `scoutlens mcp`'s."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    pending: dict[str, dict[Any, None]] = {}  # peer -> its waiting connections, oldest first

    class Bounded(H11Protocol):
        _deadline: Any = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._peer = str((transport.get_extra_info("peername") or ("?",))[0])
            self._watch()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._settled()
            super().connection_lost(exc)

        def _watch(self) -> None:
            """Waiting on the client (no whole request yet): on the clock and in the peer's
            queue; otherwise off both."""
            if self.transport.is_closing():
                return self._settled()
            if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
                return self._settled()
            if self._deadline is None:
                self._deadline = self.loop.call_later(REQUEST_S, self._drop)
                queue = pending.setdefault(self._peer, {})
                queue[self] = None
                if len(queue) > PENDING_PER_PEER:
                    next(iter(queue))._drop()

        def _settled(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
                queue = pending.get(self._peer, {})
                queue.pop(self, None)
                if not queue:
                    pending.pop(self._peer, None)

        def _drop(self) -> None:
            self._settled()
            self.transport.close()

    return Bounded


def _epoch(iso: str) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(iso).timestamp())
    except ValueError:
        return 0


def _prepare(req: ChatRequest, who: Who) -> None:
    """Refuse an unknown corpus with a 404 before anything streams; find the conversation the
    earlier turns continue."""
    from app.services.ask import check_question
    from app.services.corpora import corpus_exists

    if not corpus_exists(req.corpus, who=who):
        raise ApiError(404, f"model {PREFIX + req.corpus!r} not found: no such corpus "
                            f"{req.corpus!r} (GET /v1/models lists them)", "model",
                       code="model_not_found")
    req.question = check_question(req.question)
    if req.conversation is None and req.earlier:
        req.conversation = continued(req.corpus, req.earlier, who)
        if req.conversation is None:
            req.notes.append("single-turn: the earlier messages are no stored conversation "
                             "over this corpus, so the question was answered on its own")


def _ask(rt: Runtime, req: ChatRequest, who: Who, on_delta: Callable[[str], None] | None):
    from app.services.ask import ask

    with rt.turn() as backend:
        return ask(req.corpus, req.question, backend, max_tokens=req.max_tokens,
                   conversation=req.conversation, on_delta=on_delta, note=req.notes.append,
                   corpus_only=True, who=who)


def _sse(data: dict | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


async def _events(rt: Runtime, req: ChatRequest, who: Who,
                  asking: Asking | None = None) -> AsyncIterator[bytes]:
    """The answer as chat.completion.chunk events: the role, the text as it is generated, the
    sources with the finish reason, usage when asked for, then [DONE]. The question runs in a
    thread of its own, handing deltas over an async channel: waiting for them holds no
    thread. The server stopping ends the stream at once with an error event and [DONE]."""
    asking = asking or Asking()
    done, stop = object(), object()
    send, receive = anyio.create_memory_object_stream[Any](math.inf)
    token = anyio.lowlevel.current_token()
    outcome: dict[str, Any] = {}

    def put(item: Any) -> None:
        """From the worker thread; ClientGone when the reader is no more."""
        try:
            anyio.from_thread.run_sync(send.send_nowait, item, token=token)
        except Exception:  # the reader closed, or the loop ended
            raise ClientGone from None

    def hand_over(delta: str) -> None:
        asking.check()  # the client left, or the server stops: stop generating, store nothing
        put(delta)

    def work() -> None:
        try:
            outcome["result"] = _ask(rt, req, who, hand_over)
        except ClientGone:
            pass
        except UserError as exc:
            outcome["error"] = exc
        except Exception as exc:  # a bug: said in one line, the stream still ends properly
            outcome["error"] = ApiError(500, f"internal error: {type(exc).__name__}: "
                                             f"{(str(exc).splitlines() or [''])[0][:200]}",
                                        kind="server_error")
        finally:
            with contextlib.suppress(ClientGone):
                put(done)

    def wake() -> None:
        with contextlib.suppress(anyio.BrokenResourceError):
            send.send_nowait(stop)

    asking.wake = wake
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": PREFIX + req.corpus}

    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> bytes:
        return _sse(head | {"choices": [{"index": 0, "delta": delta,
                                         "finish_reason": finish}]} | extra)

    with receive:
        if asking.stopped:
            item = stop
        else:
            threading.Thread(target=work, name="scoutlens-api-ask", daemon=True).start()
            try:
                yield chunk({"role": "assistant", "content": ""})
                while (item := await receive.receive()) not in (done, stop):
                    yield chunk({"content": item})
            except BaseException:  # cancelled: the client disconnected
                asking.gone.set()
                raise
    if item is stop:
        yield _sse(STOPPING.body())
        yield _sse("[DONE]")
        return
    if "error" in outcome:
        yield _sse(_as_api_error(outcome["error"]).body())
        yield _sse("[DONE]")
        return
    result = outcome["result"]
    citations = [s.to_json() | {"label": s.label()} for s in result.sources]
    yield chunk({"content": sources_text(result), "citations": citations}, _finish(result),
                scoutlens=extra_of(result, req.notes))
    if req.include_usage:
        yield _sse(head | {"choices": [], "usage": usage_of(result)})
    yield _sse("[DONE]")
