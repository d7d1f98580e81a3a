"""A stand-in OpenAI-compatible server for tests: `FakeOpenAI` is a real `ThreadingHTTPServer` on
127.0.0.1 that speaks enough of the OpenAI API (`GET /v1/models`, `POST /tokenize`, streamed
`POST /v1/chat/completions` and `/v1/completions` as chunked SSE in the real chunk format) and
plays a queue of scripted `Reply`s, one per completion request. `reader_server()` is a second
stand-in for evals: it answers with the needle it finds in the prompt. `ScriptedBackend` is a
Backend with no server at all, counting with `ToyTokenizer` (a token per character).

Why a stand-in: a real server (vLLM) cannot be made to answer 429 with Retry-After, fail with 500
every time, stall past the read timeout, refuse a prompt, or die half-way through a stream on
demand. The real vLLM server is exercised end to end in tests/integration/test_vllm_cpu.py.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from engine.types import (
    Completion,
    CompletionRequest,
    ModelTokenizer,
    PromptCount,
    Stream,
    Usage,
)

REPO = Path(__file__).resolve().parents[1]
MODEL = "fake-model"
ANSWER = ("The answer", " is", " 42.")


# --- the stand-in server --------------------------------------------------------------------------


@dataclass
class Reply:
    """What the server does with one completion request."""

    deltas: tuple[str, ...] = ANSWER
    finish_reason: str | None = "stop"
    usage: bool = True  # send the usage chunk (when the client asks with include_usage)
    prompt_tokens: int = 30
    cached_tokens: int = 16
    status: int = 200
    body: str | dict = ""  # the error body when status != 200 (or a raw non-streamed answer)
    headers: dict = field(default_factory=dict)
    delay_s: float = 0.0  # silence before the status line
    gap_s: float = 0.01  # between deltas
    die_after: int | None = None  # after this many deltas: drop the connection mid-body
    end_after: int | None = None  # after this many deltas: end the body cleanly, no [DONE]
    stall_after: int | None = None  # after this many deltas: go silent for stall_s
    stall_s: float = 0.0
    error_event: str | None = None  # a `data: {"error": ...}` event after the deltas
    # hostile servers (tests/unit/test_stream_hostile.py)
    raw: tuple[bytes, ...] = ()  # sent verbatim after the deltas, then the body ends
    pings_after: int | None = None  # after this many deltas: only `: ping` comments, forever
    ping_s: float = 0.05
    endless: bool = False  # after the deltas: one more delta every gap_s until the client leaves


@dataclass
class Seen:
    method: str
    path: str
    body: dict | None
    headers: dict  # lower-case names
    t: float


class FakeOpenAI:
    def __init__(self, max_model_len: int | None = 4096, tokenize: bool = True,
                 tokenize_body: str | None = None, models_body: str | None = None):
        self.max_model_len, self.tokenize = max_model_len, tokenize
        # raw bodies (200, application/json) instead of the real answers, for hostile tests
        self.tokenize_body, self.models_body = tokenize_body, models_body
        self.events_sent = 0  # SSE data events written, over all streams
        self.replies: deque[Reply] = deque()
        self.seen: list[Seen] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.fake = self
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop.set()  # wakes any scripted sleep
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def next_reply(self) -> Reply:
        with self._lock:
            return self.replies.popleft() if self.replies else Reply()

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def posts(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.path == path]

    @property
    def completions(self) -> list[Seen]:
        return [s for s in self.seen if s.path in ("/v1/chat/completions", "/v1/completions")]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI

    def handle_error(self, request, client_address):  # a client that hung up: keep it quiet
        self.fake.errors.append(sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, as uvicorn serves them
    server: _Server

    def log_message(self, format, *args):
        pass

    @property
    def fake(self) -> FakeOpenAI:
        return self.server.fake

    def _headers(self) -> dict:
        return {k.lower(): v for k, v in self.headers.items()}

    def _json(self, status: int, payload: dict | str, headers: dict | None = None) -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.fake.record(Seen("GET", self.path, None, self._headers(), time.monotonic()))
        if self.path != "/v1/models":
            self._json(404, {"detail": "Not Found"})
            return
        if self.fake.models_body is not None:
            self._json(200, self.fake.models_body)
            return
        model = {"id": MODEL, "object": "model", "created": 1700000000, "owned_by": "tests"}
        if self.fake.max_model_len:
            model["max_model_len"] = self.fake.max_model_len
        self._json(200, {"object": "list", "data": [model]})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.fake.record(Seen("POST", self.path, body, self._headers(), time.monotonic()))
        if self.path == "/tokenize" and self.fake.tokenize_body is not None:
            self._json(200, self.fake.tokenize_body)
        elif self.path == "/tokenize" and self.fake.tokenize:
            text = body.get("prompt") or " ".join(m["content"] for m in body.get("messages", []))
            special = r"<\|[a-z_]+\|>"  # a token of its own, wherever it stands
            words = re.sub(special, "", text).split() + re.findall(special, text)
            self._json(200, {"count": len(words), "max_model_len": self.fake.max_model_len,
                             "tokens": list(range(100, 100 + len(words)))})
        elif self.path in ("/v1/chat/completions", "/v1/completions"):
            self._complete(body, self.path.endswith("/chat/completions"), self.fake.next_reply())
        else:
            self._json(404, {"detail": "Not Found"})

    # --- completions ----------------------------------------------------------------------------

    def _complete(self, body: dict, chat: bool, reply: Reply) -> None:
        if reply.delay_s and self.fake.stop.wait(reply.delay_s):
            return
        if reply.status != 200:
            self._json(reply.status, reply.body or {"error": {"message": "scripted failure"}},
                       reply.headers)
            return
        if not body.get("stream") and reply.body:  # a raw non-streamed answer
            self._json(200, reply.body)
            return
        if not body.get("stream"):
            self._json(200, {**self._base(chat=False), "choices": [
                {"index": 0, "text": "".join(reply.deltas), "logprobs": None,
                 "finish_reason": reply.finish_reason}], "usage": self._usage(reply)})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self._events(body, chat, reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _events(self, body: dict, chat: bool, reply: Reply) -> None:
        for i, piece in enumerate(reply.deltas):
            if i == reply.die_after:
                self.close_connection = True  # no terminating chunk: the body is cut off
                return
            if i == reply.end_after:
                self._chunk(b"")  # the body ends cleanly, but without finish_reason or [DONE]
                return
            if i == reply.stall_after and self.fake.stop.wait(reply.stall_s):
                return
            if i == reply.pings_after:
                self._pings(reply)
                return
            self._event(self._delta(chat, piece, None))
            time.sleep(reply.gap_s)
        if reply.pings_after is not None:
            self._pings(reply)
            return
        while reply.endless and not self.fake.stop.is_set():
            self._event(self._delta(chat, "tok ", None))
            time.sleep(reply.gap_s)
        if reply.raw:
            for data in reply.raw:
                self._chunk(data)
                time.sleep(reply.gap_s)
            self._chunk(b"")
            return
        if reply.die_after is not None:
            self.close_connection = True
            return
        if reply.error_event:
            self._event({"error": {"object": "error", "message": reply.error_event,
                                   "type": "InternalServerError", "code": 500}})
        elif reply.finish_reason:
            self._event(self._delta(chat, "", reply.finish_reason))
        if reply.usage and (body.get("stream_options") or {}).get("include_usage"):
            self._event({**self._base(chat), "choices": [], "usage": self._usage(reply)})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _base(self, chat: bool) -> dict:
        return {"id": "cmpl-test-1", "created": int(time.time()), "model": MODEL,
                "object": "chat.completion.chunk" if chat else "text_completion"}

    def _delta(self, chat: bool, piece: str, finish: str | None) -> dict:
        if chat:
            choice = {"index": 0, "delta": {"role": "assistant", "content": piece},
                      "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": finish}
        return {**self._base(chat), "choices": [choice]}

    @staticmethod
    def _usage(reply: Reply) -> dict:
        n = len(reply.deltas)
        return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": n,
                "total_tokens": reply.prompt_tokens + n,
                "prompt_tokens_details": {"cached_tokens": reply.cached_tokens}}

    def _pings(self, reply: Reply) -> None:
        while not self.fake.stop.wait(reply.ping_s):
            self._chunk(b": ping\n\n")

    def _event(self, payload: dict) -> None:
        self._chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.fake.events_sent += 1

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


# --- a careful reader, for evals ------------------------------------------------------------------
# An OpenAI-compatible stand-in whose /tokenize is o200k (scoutlens counts endpoints with cl100k
# locally, so exact o200k lengths prove they came from /tokenize) and whose answer is the first
# needle it finds in the prompt; it keeps every prompt, and reports as cached the prefix shared
# with an earlier one (in 16-token blocks). `raw` on the server scripts a 200 body per path, or
# "HANG" to accept and never answer.

NEEDLE = re.compile(r"(?:magic number is|magic numbers? for \S+ is:|return|reference number "
                    r"is|ACCESS CODE) (\d{7})")


class _ReaderHandler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _json(self, data: dict) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/version":
            self._json({"version": "reader-1"})
        else:
            self._json({"object": "list", "data": [{"id": "reader", "object": "model",
                                                    "created": 0, "owned_by": "t",
                                                    "max_model_len": 8192}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        raw = getattr(server, "raw", {}).get(self.path)
        if raw == "HANG":  # accept, then never answer
            time.sleep(2)
            return None
        if raw is not None:  # a scripted body, 200 and application/json, whatever it holds
            data = raw.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if self.path == "/tokenize":
            ids = server.tok.encode(body["prompt"])
            return self._json({"tokens": ids, "count": len(ids), "max_model_len": 8192})
        if self.path == "/detokenize":
            return self._json({"prompt": server.tok.decode(body["tokens"])})
        content = body["messages"][-1]["content"]
        ids = server.tok.encode(content)
        with server.lock:
            cached = max((_common_prefix(ids, p) for p in server.prompts), default=0) // 16 * 16
            server.prompts.append(ids)
        m = NEEDLE.search(content)
        answer = f"It is {m.group(1)}." if m else "I cannot find it."
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "reader"}
        events = [{**base, "choices": [{"index": 0, "delta": {"content": answer},
                                        "finish_reason": None}]},
                  {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                  {**base, "choices": [], "usage": {
                      "prompt_tokens": len(ids), "completion_tokens": 5,
                      "total_tokens": len(ids) + 5,
                      "prompt_tokens_details": {"cached_tokens": cached}}}]
        for e in events:
            self.wfile.write(f"data: {json.dumps(e)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n



@contextmanager
def reader_server() -> Iterator[ThreadingHTTPServer]:
    """The careful reader on 127.0.0.1 (a free port), shut down afterwards."""
    from ingest.tokenizers import load_tokenizer

    server = ThreadingHTTPServer(("127.0.0.1", 0), _ReaderHandler)
    server.tok = load_tokenizer("o200k")
    server.prompts = []
    server.lock = threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# --- a backend without a model -------------------------------------------------------------------


class ToyTokenizer(ModelTokenizer):
    """One token per character (its code point): exact, decodes back what it encoded, and every
    count can be checked by hand. A request adds TEMPLATE tokens per chat turn."""

    TEMPLATE = 4
    spec, name = "toy", "toy (a token per character)"

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(chr(i) for i in ids)

    def count_request(self, request: CompletionRequest) -> PromptCount:
        turns = 2 if request.system else 1
        return PromptCount(len(request.system or "") + len(request.prefix + request.prompt)
                           + self.TEMPLATE * turns)


class ScriptedBackend:
    """A Backend without a model: answers `reply` (in `pieces` deltas), runs `during()` while it
    "generates", and keeps every request it was sent."""

    name, model = "scripted", "scripted"
    vision = False

    def __init__(self, reply: str = "The vault code is 7291 [S1].", during=None,
                 finish: str = "stop", window: int | None = 100_000, concurrent: bool = True):
        self.reply, self.during, self.finish = reply, during, finish
        self.window, self.concurrent = window, concurrent
        self.requests: list[CompletionRequest] = []
        self._tokenizer = ToyTokenizer()

    def tokenizer(self) -> ToyTokenizer:
        return self._tokenizer

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model, "window": self.window}

    def stream(self, request: CompletionRequest) -> Stream:
        self.requests.append(request)
        prompt = self._tokenizer.count_request(request).tokens

        def deltas():
            if self.during:
                self.during()
            yield self.reply

        return Stream(deltas(), lambda: Completion(
            self.reply, Usage(prompt, 0, len(self.reply)), finish_reason=self.finish,
            model=self.model, backend=self.name))
