"""The OpenAI-compatible backend against a small real HTTP server in this module.

Why a stand-in: a real server (vLLM) cannot be made to answer 429 with Retry-After, fail with 500
every time, stall past the read timeout, refuse a prompt, or die half-way through a stream on
demand. `FakeOpenAI` is a real `ThreadingHTTPServer` on 127.0.0.1 that speaks enough of the
OpenAI API for the official `openai` client (`GET /v1/models`, `POST /tokenize`, streamed
`POST /v1/chat/completions` and `/v1/completions` as chunked SSE in the real chunk format) and
plays a queue of scripted `Reply`s, one per completion request. The real vLLM server is exercised
end to end in tests/test_vllm_cpu.py (slow test).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.openai_backend import OpenAIBackend, api_base
from engine.types import CompletionRequest, EngineError, PromptTooLong, Usage

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
    # hostile servers (tests/test_stream_hostile.py)
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
            words = text.split()
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


@pytest.fixture
def server():
    fake = FakeOpenAI().start()
    yield fake
    fake.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backend(server: FakeOpenAI, **kw) -> OpenAIBackend:
    kw.setdefault("max_retries", 0)
    return OpenAIBackend(server.url, **kw)


# --- a normal answer ------------------------------------------------------------------------------


def test_a_streamed_answer_is_assembled_with_usage_and_timings(server):
    stream = _backend(server).stream(CompletionRequest(prompt="What is it?", prefix="corpus\n"))
    deltas = list(stream)
    result = stream.result
    assert result is not None
    assert deltas == list(ANSWER)
    assert result.text == "".join(deltas) == "The answer is 42."
    assert result.usage == Usage(prompt_tokens=30, cached_tokens=16, completion_tokens=3)
    assert result.finish_reason == "stop"
    assert not result.incomplete and result.error is None
    assert (result.model, result.backend) == (MODEL, "openai")
    t = result.timings
    assert 0 < t.ttft_s <= t.total_s
    assert t.decode_s > 0 and t.prefill_s == t.ttft_s
    assert t.total_s == pytest.approx(t.ttft_s + t.decode_s, abs=1e-6)
    as_json = result.to_json()
    assert set(as_json["usage"]) == {"prompt_tokens", "cached_tokens", "completion_tokens"}
    assert set(as_json["timings"]) == {"ttft_s", "prefill_s", "decode_s", "total_s"}


def test_the_request_body_puts_the_prefix_first_and_byte_identical(server):
    backend = _backend(server, api_key="sk-test")
    prefix = "Corpus: café ☕ — naïve\n\n" + "line of text\n" * 50
    for question in ("First question?", "Second, different question?"):
        backend.stream(CompletionRequest(prompt=question, prefix=prefix, system="Be brief.",
                                         max_tokens=77, temperature=0.3,
                                         stop=("END",))).collect()
    assert server.seen[0].method == "GET" and server.seen[0].path == "/v1/models"
    first, second = server.posts("/v1/chat/completions")
    body = first.body
    assert body["model"] == MODEL  # resolved from /v1/models: none was given
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": prefix + "First question?"}]
    assert body["max_tokens"] == 77
    assert body["temperature"] == 0.3
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["stop"] == ["END"]
    assert first.headers["authorization"] == "Bearer sk-test"
    # the reusable part goes first and byte for byte the same, so the server's cache can hit
    users = [s.body["messages"][-1]["content"].encode() for s in (first, second)]
    assert all(u.startswith(prefix.encode()) for u in users)
    assert users[0][: len(prefix.encode())] == users[1][: len(prefix.encode())]


def test_no_system_message_and_a_given_model_name(server):
    backend = _backend(server, model="my-served-name")
    backend.stream(CompletionRequest(prompt="Q", prefix="P ")).collect()
    (post,) = server.posts("/v1/chat/completions")
    assert post.body["model"] == "my-served-name"
    assert post.body["messages"] == [{"role": "user", "content": "P Q"}]
    assert "stop" not in post.body


def test_raw_completions_go_to_v1_completions(server):
    result = _backend(server).stream(
        CompletionRequest(prompt="continue:", prefix="Once upon a time ", chat=False,
                          max_tokens=5)).collect()
    assert result.text == "The answer is 42."
    assert result.usage.cached_tokens == 16
    assert server.posts("/v1/chat/completions") == []
    (post,) = server.posts("/v1/completions")
    assert post.body["prompt"] == "Once upon a time continue:"
    assert "messages" not in post.body
    assert post.body["max_tokens"] == 5
    assert post.body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("reply, finish", [
    (Reply(usage=False), "stop"),  # a server that never sends the usage chunk
    (Reply(usage=False, finish_reason="length"), "length"),
])
def test_no_usage_chunk_still_completes_with_zero_usage(server, reply, finish):
    server.script(reply)
    result = _backend(server).stream(CompletionRequest(prompt="Q")).collect()
    assert result.text == "The answer is 42."
    assert result.finish_reason == finish
    assert not result.incomplete and result.error is None
    assert result.usage == Usage()


# --- retries and faults ---------------------------------------------------------------------------


def test_429_with_retry_after_is_waited_out_then_succeeds(server):
    server.script(Reply(status=429, headers={"Retry-After": "1"},
                        body={"error": {"message": "slow down", "type": "rate_limit"}}))
    backend = _backend(server, max_retries=2)
    backend.model  # noqa: B018 (resolve the model first: time only the completion)
    t0 = time.monotonic()
    result = backend.stream(CompletionRequest(prompt="Q")).collect()
    elapsed = time.monotonic() - t0
    assert result.text == "The answer is 42." and result.finish_reason == "stop"
    posts = server.posts("/v1/chat/completions")
    assert len(posts) == 2
    assert posts[1].t - posts[0].t >= 0.95  # Retry-After, not the 0.5 s default backoff
    assert elapsed >= 0.95


def test_500_every_time_fails_after_the_retry_policy(server):
    server.script(*[Reply(status=500, body="upstream exploded")] * 10)
    backend = _backend(server, max_retries=2)
    with pytest.raises(EngineError) as info:
        backend.stream(CompletionRequest(prompt="Q")).collect()
    assert not isinstance(info.value, PromptTooLong)
    message = str(info.value)
    assert server.url in message
    assert "500" in message and "upstream exploded" in message
    assert len(server.posts("/v1/chat/completions")) == 2 + 1


def test_an_endpoint_that_is_down_fails_quickly_with_cannot_reach():
    backend = OpenAIBackend(f"http://127.0.0.1:{_closed_port()}/v1", max_retries=1)
    t0 = time.monotonic()
    with pytest.raises(EngineError, match="cannot reach"):
        backend.stream(CompletionRequest(prompt="Q")).collect()
    assert time.monotonic() - t0 < 5


def test_a_server_slower_than_the_read_timeout_is_a_clear_error(server):
    server.script(Reply(delay_s=3))
    backend = _backend(server, base_timeout=0.3, max_retries=0)
    t0 = time.monotonic()
    with pytest.raises(EngineError) as info:
        backend.stream(CompletionRequest(prompt="Q")).collect()
    assert time.monotonic() - t0 < 2.5
    assert "time" in str(info.value)
    assert len(server.posts("/v1/chat/completions")) == 1


def test_a_longer_prompt_gets_a_longer_read_timeout():
    backend = OpenAIBackend("http://127.0.0.1:1", base_timeout=60, max_retries=0)
    reads = [backend._timeout(chars).read for chars in (0, 1_000, 100_000, 4_000_000)]
    assert reads[0] == 60
    assert reads == sorted(reads) and len(set(reads)) == len(reads)
    assert reads[-1] > 60 + 3600  # 1M tokens at >= 200 tokens/s: over an hour of prefill
    assert backend._timeout(4_000_000).connect == backend._timeout(0).connect == 10.0


def test_the_grown_timeout_is_the_one_the_request_uses(server):
    """0.8 s of silence: too long for a short prompt's 0.3 s, fine for a long prompt's ~1.5 s."""
    backend = _backend(server, base_timeout=0.3, min_prefill_tokens_per_s=1000)
    long_prompt = "word " * 1000  # 5,000 chars ~ 1,250 tokens: +1.25 s
    server.script(Reply(delay_s=0.8), Reply(delay_s=0.8))
    assert backend.stream(CompletionRequest(prompt=long_prompt)).collect().text == \
        "The answer is 42."
    with pytest.raises(EngineError, match="time"):
        backend.stream(CompletionRequest(prompt="short")).collect()


@pytest.mark.parametrize("reply", [
    Reply(deltas=("Partial", " answer", " never", " finished"), die_after=2),
    Reply(deltas=("Partial", " answer", " never", " finished"), end_after=2),
], ids=["connection-dropped", "body-ended-without-done"])
def test_a_server_dying_mid_stream_leaves_a_partial_incomplete_answer(server, reply):
    server.script(reply)
    stream = _backend(server, max_retries=3).stream(CompletionRequest(prompt="Q"))
    deltas = list(stream)
    result = stream.result
    assert result is not None
    assert deltas == ["Partial", " answer"]
    assert result.text == "Partial answer"
    assert result.finish_reason == "incomplete" and result.incomplete
    assert result.error
    assert result.to_json()["incomplete"] is True
    assert len(server.posts("/v1/chat/completions")) == 1  # a half-sent answer is not re-asked


def test_a_stall_mid_stream_past_the_read_timeout_keeps_the_partial_text(server):
    server.script(Reply(stall_after=1, stall_s=3))
    backend = _backend(server, base_timeout=0.4)
    t0 = time.monotonic()
    result = backend.stream(CompletionRequest(prompt="Q")).collect()
    assert time.monotonic() - t0 < 2.5
    assert result.text == "The answer"
    assert result.incomplete and result.error


def test_an_error_event_mid_stream_marks_the_answer_incomplete(server):
    server.script(Reply(error_event="the engine died"))
    result = _backend(server).stream(CompletionRequest(prompt="Q")).collect()
    assert result.text == "The answer is 42."
    assert result.incomplete
    assert "the engine died" in result.error


# --- prompts too long -----------------------------------------------------------------------------

CONTEXT_400 = {"object": "error", "type": "BadRequestError", "param": None, "code": 400,
               "message": "This model's maximum context length is 4096 tokens. However, you "
                          "requested 5000 tokens (4744 in the messages, 256 in the completion). "
                          "Please reduce the length of the messages or completion."}


def test_400_maximum_context_length_says_the_prompt_is_too_long(server):
    server.script(Reply(status=400, body=CONTEXT_400))
    prompt = "word " * 300
    with pytest.raises(EngineError) as info:
        _backend(server).stream(CompletionRequest(prompt=prompt)).collect()
    message = str(info.value).lower()
    assert "prompt" in message and ("too long" in message or "does not fit" in message)
    if isinstance(info.value, PromptTooLong):
        assert info.value.window == 4096
        assert info.value.prompt_tokens == 300  # the exact count, from /tokenize
        assert "4,096" in message


def test_400_context_length_without_a_known_window(server):
    server.max_model_len = None
    server.script(Reply(status=400, body=CONTEXT_400))
    with pytest.raises(EngineError) as info:
        _backend(server).stream(CompletionRequest(prompt="Q")).collect()
    message = str(info.value)
    assert "too long" in message
    assert "maximum context length is 4096" in message  # the server's own words


def test_another_400_is_not_reported_as_a_prompt_too_long(server):
    server.script(Reply(status=400, body={"object": "error", "type": "BadRequestError",
                                          "message": "temperature must be at most 2, got 7",
                                          "param": None, "code": 400}))
    with pytest.raises(EngineError) as info:
        _backend(server).stream(CompletionRequest(prompt="Q", temperature=7.0)).collect()
    assert not isinstance(info.value, PromptTooLong), str(info.value)
    assert "400" in str(info.value)
    assert "temperature must be at most 2" in str(info.value)


def test_a_prompt_far_over_the_window_is_refused_before_sending(server):
    server.max_model_len = 100
    with pytest.raises(PromptTooLong) as info:
        _backend(server).stream(CompletionRequest(prompt="word " * 400, max_tokens=10))
    assert (info.value.prompt_tokens, info.value.window) == (400, 100)
    assert "400 prompt tokens + 10 to generate > 100 tokens" in str(info.value)
    assert server.completions == []


# --- server facts ---------------------------------------------------------------------------------


def test_count_uses_the_servers_tokenize(server):
    backend = _backend(server)
    text = "a b c d e f g h"  # 8 words; the local estimate would say 15 // 4 = 3
    assert backend.count(text) == 8
    (post,) = server.posts("/tokenize")
    assert post.body == {"model": MODEL, "prompt": text, "add_special_tokens": False}
    assert backend.window == 4096
    assert backend.tokenize_chat("x y z", system="s") == [100, 101, 102, 103]
    assert server.posts("/tokenize")[-1].body["messages"] == [
        {"role": "system", "content": "s"}, {"role": "user", "content": "x y z"}]


def test_count_falls_back_to_an_estimate_without_tokenize(server):
    server.tokenize = False
    backend = _backend(server)
    assert backend.count("a b c d e f g h") == 15 // 4
    assert backend.count("") == 0
    assert backend.tokenize_chat("x y z") is None


@pytest.mark.parametrize("endpoint, base", [
    ("http://h:1", "http://h:1/v1"),
    ("http://h:1/", "http://h:1/v1"),
    ("http://h:1/v1", "http://h:1/v1"),
    ("http://h:1/v1/", "http://h:1/v1"),
    ("  https://h:1/v1/  ", "https://h:1/v1"),
    ("http://h:1/proxy", "http://h:1/proxy/v1"),
])
def test_api_base_normalisation(endpoint, base):
    assert api_base(endpoint) == base
    backend = OpenAIBackend(endpoint, max_retries=0)
    assert backend.base_url == base
    assert backend.server_root == base[: -len("/v1")]


@pytest.mark.parametrize("endpoint", ["ftp://h:1/v1", "h:1", "localhost:8000", "", "http://"])
def test_api_base_refuses_what_is_not_an_http_url(endpoint):
    with pytest.raises(EngineError, match="not an http"):
        api_base(endpoint)
    with pytest.raises(EngineError):
        OpenAIBackend(endpoint)


# --- the CLI --------------------------------------------------------------------------------------


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOUTLENS_")}
    env.update(SCOUTLENS_HOME=str(tmp_path / "cli-home"), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "app.cli", "complete", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60)


def test_cli_complete_json_against_the_server(server, tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("What is the answer?\n", encoding="utf-8")
    proc = _cli(tmp_path, "--endpoint", server.url, "-p", str(prompt), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"text", "usage", "timings"} <= set(out)
    assert out["text"] == "The answer is 42."
    assert out["usage"] == {"prompt_tokens": 30, "cached_tokens": 16, "completion_tokens": 3}
    assert set(out["timings"]) == {"ttft_s", "prefill_s", "decode_s", "total_s"}
    assert out["incomplete"] is False
    (post,) = server.posts("/v1/chat/completions")
    assert post.body["messages"] == [{"role": "user", "content": "What is the answer?\n"}]
    assert post.body["model"] == MODEL


def test_cli_complete_mid_stream_death_exits_2_with_the_partial_json(server, tmp_path):
    server.script(Reply(die_after=1))
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Q", encoding="utf-8")
    proc = _cli(tmp_path, "--endpoint", server.url, "-p", str(prompt), "--json")
    assert proc.returncode == 2, proc.stderr
    out = json.loads(proc.stdout)
    assert out["text"] == "The answer" and out["incomplete"] is True
    assert "incomplete" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_complete_against_a_closed_port_is_a_clear_error(tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Q", encoding="utf-8")
    proc = _cli(tmp_path, "--endpoint", f"http://127.0.0.1:{_closed_port()}/v1",
                "-p", str(prompt), "--json")
    assert proc.returncode == 1
    assert "cannot reach" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
