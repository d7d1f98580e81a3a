"""Any OpenAI-compatible server (vLLM, SGLang, ...) over plain httpx, with our own SSE reading.

KV reuse here is the server's prefix cache: the corpus goes first and byte-identical, the question
last, and the hit is read back from `usage.prompt_tokens_details.cached_tokens`.

Nothing a server sends is trusted: every chunk and answer is type-checked (a wrong type is a
one-line EngineError, never a traceback), and a stream is bounded three ways, since a broken
server can otherwise hold a caller forever: the first chunk must come within a wait that grows
with the prompt (a cold prefill of a long corpus sends nothing for minutes), later chunks within
`idle_timeout` of each other (SSE keep-alive comments are not progress), and the whole answer
within a total deadline; past `max_tokens` (with slack for servers that count differently) the
client stops reading. Status codes 408/409/429/5xx and connection failures are retried with
backoff (Retry-After honoured); a timeout is not, since re-sending a prompt repeats its prefill.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from engine.types import (
    Completion,
    CompletionRequest,
    EngineError,
    PromptTooLong,
    Stream,
    Timings,
    Usage,
)

CHARS_PER_TOKEN = 4  # to size timeouts before the exact count is known
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_EVENT_BYTES = 1 << 20  # one SSE line or event; a real chunk is a few hundred bytes
MAX_COUNT = 2**31 - 1  # token counts are stored in 32-bit integer columns
MAX_ERROR_BODY = 64 << 10
MAX_ANSWER_BYTES = 16 << 20  # a model list, a one-token completion
HINT = "(e.g. http://127.0.0.1:8000/v1)"


def api_base(endpoint: str) -> str:
    """`http://host:port`, `.../v1` or `.../v1/` -> `http://host:port/v1`; anything that is not
    a usable http(s) URL is a one-line EngineError here, before any request is built."""
    text = endpoint.strip() if isinstance(endpoint, str) else ""
    shown = repr(text[:200])
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number in range)
    except ValueError as exc:
        raise EngineError(f"not an http(s) endpoint URL: {shown} ({exc}) {HINT}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EngineError(f"not an http(s) endpoint URL: {shown} {HINT}")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise EngineError(f"not an http(s) endpoint URL: {shown} (it holds spaces or control "
                          f"characters) {HINT}")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    base = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    try:
        httpx.URL(base)
    except (httpx.InvalidURL, ValueError) as exc:
        raise EngineError(f"not an http(s) endpoint URL: {shown} ({exc}) {HINT}") from None
    return base


# --- reading what a server sends ----------------------------------------------------------------


def one_line(value: object, limit: int = 300) -> str:
    """Server text for a message: one line, printable, at most `limit` characters."""
    text = value if isinstance(value, str) else repr(value)
    text = " ".join("".join(c if c.isprintable() else " " for c in text[: limit * 4]).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SSEParser:
    """Server-sent events from bytes split anywhere: `feed` returns the data of each complete
    event. Comments (`: ping` keep-alives) and other fields are dropped but counted; a line or
    event over `max_bytes` is an EngineError, so a server cannot make the client buffer without
    end. Lines end with CRLF, LF or CR, as the SSE specification allows."""

    def __init__(self, max_bytes: int = MAX_EVENT_BYTES):
        self.max_bytes = max_bytes
        self.comments = 0
        self._buf = b""
        self._data: list[str] | None = None
        self._size = 0

    def feed(self, data: bytes) -> list[str]:
        buf, out, pos = self._buf + data, [], 0
        while True:
            cut = _eol(buf, pos)
            if cut is None:
                break
            end, nxt = cut
            if buf[end:end + 1] == b"\r" and nxt == len(buf):
                break  # a CR at the very end may be half of a CRLF: wait for the next byte
            self._line(buf[pos:end], out)
            pos = nxt
        self._buf = buf[pos:]
        if len(self._buf) > self.max_bytes:
            raise EngineError(f"a stream line is over {self.max_bytes:,} bytes")
        return out

    def close(self) -> list[str]:
        """At the end of the body: an event the server did not end with a blank line counts."""
        out: list[str] = []
        if self._buf:
            self._line(self._buf.rstrip(b"\r"), out)
            self._buf = b""
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[str]) -> None:
        if not line:
            if self._data is not None:
                out.append("\n".join(self._data))
            self._data, self._size = None, 0
            return
        if line.startswith(b":"):
            self.comments += 1
            return
        name, _, value = line.partition(b":")
        if name != b"data":
            return  # event:, id:, retry: change nothing for a completion stream
        value = value[1:] if value.startswith(b" ") else value
        self._size += len(value) + 1
        if self._size > self.max_bytes:
            raise EngineError(f"a stream event is over {self.max_bytes:,} bytes")
        self._data = (self._data or []) + [value.decode("utf-8", "replace")]


def _eol(buf: bytes, pos: int) -> tuple[int, int] | None:
    """(end of the line, start of the next) for the first line ending at or after `pos`."""
    lf, cr = buf.find(b"\n", pos), buf.find(b"\r", pos)
    if cr < 0 and lf < 0:
        return None
    if cr < 0 or (0 <= lf < cr):
        return lf, lf + 1
    return cr, cr + 2 if buf[cr + 1:cr + 2] == b"\n" else cr + 1


@dataclass(frozen=True)
class Piece:
    """What one stream chunk says: its text, a finish reason, usage (the last chunk's)."""

    text: str = ""
    finish: str | None = None
    usage: Usage | None = None


def parse_json(payload: str | bytes, what: str) -> object:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):
        raise EngineError(f"{what} is not JSON: {one_line(payload, 120)}") from None


def parse_chunk(payload: str, chat: bool = True) -> Piece:
    """One SSE data payload of a (chat) completion stream, type-checked field by field."""
    data = parse_json(payload, "a stream chunk")
    if not isinstance(data, dict):
        raise EngineError(f"a stream chunk is not a JSON object: {one_line(payload, 120)}")
    if data.get("error"):
        err = data["error"]
        message = err.get("message") if isinstance(err, dict) else err
        raise EngineError(f"the server reported an error: {one_line(message or err)}")
    choices = data.get("choices")
    if choices is None:
        choices = []
    if not isinstance(choices, list):
        raise EngineError(f"a stream chunk's choices is not a list: {one_line(choices, 80)}")
    text, finish = [], None
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise EngineError(f"a stream chunk's choices[{i}] is not an object")
        index = choice.get("index")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise EngineError(f"a stream chunk's choices[{i}].index is not a number")
        if index not in (None, 0):
            continue  # one answer is asked for (n=1): other indexes are not ours
        if chat:
            delta = choice.get("delta")
            if delta is not None and not isinstance(delta, dict):
                raise EngineError(f"a stream chunk's choices[{i}].delta is not an object")
            piece, field = (delta or {}).get("content"), "delta.content"
        else:
            piece, field = choice.get("text"), "text"
        if piece is not None and not isinstance(piece, str):
            raise EngineError(f"a stream chunk's choices[{i}].{field} is not a string")
        reason = choice.get("finish_reason")
        if reason is not None and not isinstance(reason, str):
            raise EngineError(f"a stream chunk's choices[{i}].finish_reason is not a string")
        text.append(piece or "")
        if reason:
            finish = one_line(reason, 20)  # stored in a 20-character column
    return Piece("".join(text), finish, parse_usage(data.get("usage")))


def parse_usage(u: object, where: str = "usage") -> Usage | None:
    """An OpenAI usage object (cached tokens included when the server reports them)."""
    if u is None:
        return None
    if not isinstance(u, dict):
        raise EngineError(f"{where} is not an object: {one_line(u, 80)}")
    details = u.get("prompt_tokens_details")
    if details is not None and not isinstance(details, dict):
        raise EngineError(f"{where}.prompt_tokens_details is not an object")
    return Usage(prompt_tokens=_count(u.get("prompt_tokens"), f"{where}.prompt_tokens"),
                 cached_tokens=_count((details or {}).get("cached_tokens"),
                                      f"{where}.prompt_tokens_details.cached_tokens"),
                 completion_tokens=_count(u.get("completion_tokens"),
                                          f"{where}.completion_tokens"))


def _count(value: object, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise EngineError(f"{where} is not a token count: {one_line(value, 40)}")
    return value


def token_ids(value: object, where: str) -> list[int]:
    """`value` when it is a list of token ids (ints in range), else a one-line EngineError."""
    if not isinstance(value, list) or not all(
            type(t) is int and 0 <= t <= MAX_COUNT for t in value):
        raise EngineError(f"{where} is not a list of token ids: {one_line(value, 80)}")
    return value


# --- time limits of one stream ------------------------------------------------------------------


class _Guard:
    """The first chunk within `first` s of the answer's headers, then at most `idle` s between
    chunks, and the last by `end` (a monotonic time). A watchdog thread shuts the socket down
    when a limit passes in silence: a blocked read would otherwise wait out the socket timeout,
    which is sized for the prefill."""

    def __init__(self, first: float, idle: float, end: float, total: float):
        self.t0, self.first, self.idle, self.end, self.total = (time.monotonic(), first, idle,
                                                                end, total)
        self.last: float | None = None
        self.fired = False
        self._done = threading.Event()
        self._lock = threading.Lock()

    def progress(self, now: float) -> None:
        self.last = now

    def expiry(self) -> float:
        due = self.t0 + self.first if self.last is None else self.last + self.idle
        return min(due, self.end)

    def reason(self, now: float, pings: int = 0) -> str | None:
        if now < self.expiry():
            return None
        if now >= self.end:
            return f"the answer did not end within the total deadline of {self.total:.3g} s"
        if self.last is None:
            sent = f"only {pings} keep-alive comments" if pings else "nothing"
            return f"did not answer in time: {sent} within {self.first:.3g} s"
        return f"went silent for {self.idle:.3g} s mid-answer (keep-alives do not count)"

    def watch(self, response: httpx.Response) -> None:
        threading.Thread(target=self._watch, args=(response,), daemon=True,
                         name="scoutlens-stream-guard").start()

    def _watch(self, response: httpx.Response) -> None:
        # woken at least every 0.2 s: the first chunk moves the expiry earlier (idle < first)
        while not self._done.wait(min(max(0.0, self.expiry() - time.monotonic()) + 0.005, 0.2)):
            if self.reason(time.monotonic()):
                with self._lock:
                    if not self._done.is_set():
                        self.fired = True
                        _shut(response)
                return

    def stop(self) -> None:
        with self._lock:
            self._done.set()


def _shut(response: httpx.Response) -> None:
    """Wake a read blocked on this response's socket (the reader then sees the body end)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


# --- the backend ----------------------------------------------------------------------------------


class OpenAIBackend:
    """Streams from `/v1/chat/completions` (or `/v1/completions` with `chat=False`).

    `base_timeout` + prompt tokens / `min_prefill_tokens_per_s`: the wait for the first chunk.
    `idle_timeout`: the most silence between chunks after it. Total deadline: that first wait +
    `idle_timeout` + max_tokens / `min_decode_tokens_per_s`. `max_tokens_slack`: how far past
    max_tokens (x slack + 16, counted in chunks or 8 characters a token) the client reads on.
    `info_timeout`: `/v1/models`, which any live server answers at once."""

    name = "openai"

    def __init__(self, endpoint: str, model: str | None = None, api_key: str | None = None,
                 max_retries: int = 4, connect_timeout: float = 10.0, base_timeout: float = 60.0,
                 min_prefill_tokens_per_s: float = 200.0, idle_timeout: float = 60.0,
                 min_decode_tokens_per_s: float = 2.0, max_tokens_slack: float = 2.0,
                 info_timeout: float = 20.0):
        self.base_url = api_base(endpoint)
        self.server_root = self.base_url[: -len("/v1")]
        self._model = model
        self.max_retries = max(0, max_retries)
        self.connect_timeout, self.base_timeout = connect_timeout, base_timeout
        self.min_rate, self.idle_timeout = min_prefill_tokens_per_s, idle_timeout
        self.min_decode_rate, self.slack = min_decode_tokens_per_s, max_tokens_slack
        self.info_timeout = info_timeout
        self._has_tokenize = True
        # one pooled client: building one (and loading the CA bundle) per call costs ~20 ms
        self._http = httpx.Client(
            timeout=httpx.Timeout(base_timeout, connect=connect_timeout),
            headers={"Authorization": f"Bearer {api_key or 'scoutlens'}",
                     "User-Agent": "scoutlens"})

    # --- requests -------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict | None, timeout: float,
                 deadline: float | None = None, sse: bool = False) -> httpx.Response:
        """A response with the body not yet read, after the retry policy; a non-2xx answer is a
        _StatusError (an EngineError) carrying the start of its body."""
        url = f"{self.base_url}{path}"
        t = httpx.Timeout(timeout, connect=self.connect_timeout)
        # identity: a compressed stream could expand a small read into a huge one
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity"} if sse else {}
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                resp = self._http.send(self._http.build_request(
                    method, url, json=body, timeout=t, headers=headers), stream=True)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout) and not last and \
                        self._pause(attempt, None, deadline):
                    continue
                raise EngineError(f"{self.base_url} did not answer in time: nothing within "
                                  f"{timeout:.3g} s ({type(exc).__name__})") from None
            except httpx.HTTPError as exc:
                if not last and self._pause(attempt, None, deadline):
                    continue
                raise EngineError(f"cannot reach {self.base_url} (after {attempt} retries): "
                                  f"{one_line(str(exc) or type(exc).__name__)}") from None
            if resp.status_code < 300:
                return resp
            if resp.status_code in RETRY_STATUS and not last and \
                    self._pause(attempt, resp, deadline):
                resp.close()
                continue
            text = _read(resp, MAX_ERROR_BODY, truncate=True).decode("utf-8", "replace")
            raise _StatusError(resp.status_code, text, self.base_url)
        raise AssertionError("unreachable")

    def _pause(self, attempt: int, resp: httpx.Response | None, deadline: float | None) -> bool:
        """Sleep before a retry (Retry-After, else backoff); False when that would pass the
        deadline, so the caller fails now instead."""
        wait = _retry_after(resp) if resp is not None else None
        if wait is None:
            wait = min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random())
        if deadline is not None and time.monotonic() + wait > deadline:
            return False
        time.sleep(wait)
        return True

    def _json(self, method: str, path: str, body: dict | None, timeout: float) -> dict:
        where = f"the answer of {self.base_url}{path}"
        data = parse_json(_read(self._request(method, path, body, timeout), MAX_ANSWER_BYTES),
                          where)
        if not isinstance(data, dict):
            raise EngineError(f"{where} is not a JSON object: {one_line(data, 80)}")
        return data

    # --- server facts ---------------------------------------------------------------------------

    @cached_property
    def _models(self) -> list[dict]:
        data = self._json("GET", "/models", None, self.info_timeout)
        items = data.get("data")
        where = f"{self.base_url}/models"
        if not isinstance(items, list):
            raise EngineError(f"{where} answered without a model list: {one_line(data, 120)}")
        models = []
        for i, m in enumerate(items):
            if not isinstance(m, dict) or not isinstance(m.get("id"), str) or not m["id"] or \
                    len(m["id"]) > 500:
                raise EngineError(f"{where}: data[{i}] has no model id (a string)")
            window = m.get("max_model_len")
            if window is not None and (type(window) is not int or not 0 < window <= MAX_COUNT):
                raise EngineError(f"{where}: data[{i}].max_model_len is not a token count: "
                                  f"{one_line(window, 40)}")
            models.append({"id": m["id"], "max_model_len": window})
        return models

    @property
    def model(self) -> str:
        if self._model is None:
            if not self._models:
                raise EngineError(f"{self.base_url} serves no model")
            self._model = self._models[0]["id"]
        return self._model

    @property
    def window(self) -> int | None:
        """The served max_model_len when the server says it (vLLM does)."""
        for m in self._models:
            if m["id"] == self.model and m.get("max_model_len"):
                return int(m["max_model_len"])
        return None

    def _tokenize(self, body: dict, chars: int) -> dict | None:
        """The server's `/tokenize` answer, or None when it has none (then it is not asked
        again, nor after a timeout: a count must not wait out a dead endpoint every time)."""
        if not self._has_tokenize:
            return None
        url = f"{self.server_root}/tokenize"
        try:
            resp = self._http.send(self._http.build_request(
                "POST", url, json={"model": self.model, **body}, timeout=self._timeout(chars)),
                stream=True)
        except httpx.TimeoutException:
            self._has_tokenize = False
            return None
        except httpx.HTTPError:
            return None
        if resp.status_code in (404, 405, 501) or "html" in resp.headers.get("content-type", ""):
            resp.close()
            self._has_tokenize = False  # none here (or a proxy's catch-all page)
            return None
        if resp.status_code != 200:
            resp.close()
            return None
        content = _read(resp, 16 * chars + (1 << 20))  # ids of `chars` characters, as JSON
        data = parse_json(content, f"the answer of {url}")
        if not isinstance(data, dict):
            raise EngineError(f"the answer of {url} is not a JSON object: {one_line(data, 80)}")
        return data

    def count(self, text: str) -> int:
        """Exact tokens from the server's `/tokenize` (vLLM, SGLang); else a local estimate."""
        if not text:
            return 0
        data = self._tokenize({"prompt": text, "add_special_tokens": False}, len(text))
        where = f"{self.server_root}/tokenize"
        if data is not None and "count" in data:
            return _count(data["count"], f"{where}: count")
        if data is not None and "tokens" in data:
            return len(token_ids(data["tokens"], f"{where}: tokens"))
        return max(1, len(text) // CHARS_PER_TOKEN)

    def tokenize_chat(self, content: str, system: str | None = None) -> list[int] | None:
        """The served model's token ids for a user turn (chat template applied, no generation
        prompt), or None when the server has no `/tokenize`."""
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": content})
        data = self._tokenize({"messages": messages, "add_generation_prompt": False},
                              len(content))
        if data is None or data.get("tokens") is None:
            return None
        return token_ids(data["tokens"], f"{self.server_root}/tokenize: tokens")

    def prefill_ids(self, ids: list[int]) -> Usage:
        """Send token ids to `/v1/completions` for one token: fills the server's prefix cache."""
        body = {"model": self.model, "prompt": ids, "max_tokens": 1, "temperature": 0.0}
        data = self._json("POST", "/completions", body,
                          self._timeout(len(ids) * CHARS_PER_TOKEN).read)
        return parse_usage(data.get("usage"), f"{self.base_url}/completions: usage") or Usage()

    def _timeout(self, chars: int) -> httpx.Timeout:
        """The wait for a first answer: grows with the prompt, since prefill sends nothing."""
        read = self.base_timeout + chars / CHARS_PER_TOKEN / self.min_rate
        return httpx.Timeout(read, connect=self.connect_timeout)

    def limits(self, chars: int, max_tokens: int) -> tuple[float, float, int]:
        """(first-chunk wait, total deadline, most answer tokens read) for one request."""
        first = self._timeout(chars).read
        total = first + self.idle_timeout + max_tokens / self.min_decode_rate
        return first, total, int(max_tokens * self.slack) + 16

    # --- generation -----------------------------------------------------------------------------

    def stream(self, request: CompletionRequest) -> Stream:
        state: dict = {"text": [], "usage": None, "finish": None, "error": None,
                       "t0": time.perf_counter(), "first": None, "end": None}
        chars = len(request.prefix) + len(request.prompt)
        if self.window and chars // (CHARS_PER_TOKEN * 2) > self.window:
            exact = self.count(request.prefix + request.prompt)
            if exact + request.max_tokens > self.window:
                raise PromptTooLong(exact, self.window, request.max_tokens)
        return Stream(self._deltas(request, state, chars), lambda: self._finish(state))

    def _body(self, request: CompletionRequest) -> tuple[str, dict]:
        body: dict = {"model": self.model, "max_tokens": request.max_tokens,
                      "temperature": request.temperature, "stream": True,
                      "stream_options": {"include_usage": True}}
        if request.stop:
            body["stop"] = list(request.stop)
        if not request.chat:
            return "/completions", {**body, "prompt": request.prefix + request.prompt}
        messages = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        content: str | list[dict] = request.prefix + request.prompt
        if request.images_root:
            from engine.images import content_parts

            content = content_parts(content, Path(request.images_root)) or content
        messages.append({"role": "user", "content": content})
        return "/chat/completions", {**body, "messages": messages}

    def _open(self, request: CompletionRequest, first: float, deadline: float) -> httpx.Response:
        path, body = self._body(request)
        try:
            return self._request("POST", path, body, first, deadline, sse=True)
        except _StatusError as exc:
            if exc.status == 400 and self.window and _too_long(exc.body):
                raise PromptTooLong(self.count(request.prefix + request.prompt), self.window,
                                    request.max_tokens) from None
            raise

    def _deltas(self, request: CompletionRequest, state: dict, chars: int) -> Iterator[str]:
        first, total, most = self.limits(chars, request.max_tokens)
        end = time.monotonic() + total
        resp = self._open(request, first, end)
        guard = _Guard(first, self.idle_timeout, end, total)
        guard.watch(resp)
        chunks = chars_in = 0
        try:
            for payload in self._events(resp, guard):
                if payload.strip().startswith("[DONE]"):
                    break
                piece = parse_chunk(payload, request.chat)
                guard.progress(time.monotonic())
                if piece.usage is not None:
                    state["usage"] = piece.usage
                    if piece.usage.completion_tokens > most:
                        self._cut(state, request.max_tokens, most)
                        break
                if piece.finish:
                    state["finish"] = piece.finish
                if piece.text:
                    chunks, chars_in = chunks + 1, chars_in + len(piece.text)
                    if max(chunks, chars_in // (2 * CHARS_PER_TOKEN)) > most:
                        self._cut(state, request.max_tokens, most)
                        break
                    if state["first"] is None:
                        state["first"] = time.perf_counter()
                    state["text"].append(piece.text)
                    yield piece.text
        except EngineError as exc:
            if not state["text"]:
                raise EngineError(_prefixed(self.base_url, str(exc))) from None
            # the server broke off (or broke the protocol) mid-answer: keep what came
            state["finish"] = "incomplete"
            state["error"] = f"the stream from {self.base_url} broke off: {exc}"
        finally:
            guard.stop()
            state["end"] = time.perf_counter()
            resp.close()  # a caller that stops early must not leave the connection open

    def _events(self, resp: httpx.Response, guard: _Guard) -> Iterator[str]:
        """SSE data payloads as they arrive; the time limits are checked at every read."""
        parser = SSEParser()
        try:
            for raw in resp.iter_bytes():
                yield from parser.feed(raw)
                if why := guard.reason(time.monotonic(), parser.comments):
                    raise EngineError(why)
        except (httpx.HTTPError, httpx.StreamError) as exc:
            if guard.fired or isinstance(exc, httpx.TimeoutException):
                raise EngineError(guard.reason(max(time.monotonic(), guard.expiry()),
                                               parser.comments)) from None
            raise EngineError(one_line(str(exc) or type(exc).__name__)) from None
        if guard.fired:  # the watchdog ended the body: that is no clean end
            raise EngineError(guard.reason(max(time.monotonic(), guard.expiry()),
                                           parser.comments))
        yield from parser.close()

    @staticmethod
    def _cut(state: dict, max_tokens: int, most: int) -> None:
        state["finish"] = "length"
        state["error"] = (f"stopped reading: the server sent over {most:,} tokens for "
                          f"max_tokens {max_tokens:,}")

    def _finish(self, state: dict) -> Completion:
        end = state["end"] or time.perf_counter()
        first = state["first"] or end
        usage = state["usage"] or Usage()
        if state["finish"] is None:
            state["finish"] = "incomplete"
            state["error"] = "the stream ended before the server said it was done"
        ttft = first - state["t0"]
        return Completion(text="".join(state["text"]), usage=usage,
                          timings=Timings(ttft_s=ttft, prefill_s=ttft, decode_s=end - first,
                                          total_s=end - state["t0"]),
                          finish_reason=state["finish"], model=self.model, backend=self.name,
                          error=state["error"])


class _StatusError(EngineError):
    """A non-2xx answer after the retries, worded for the user; `body` for callers that look."""

    def __init__(self, status: int, body: str, base_url: str):
        self.status, self.body = status, body
        text = one_line(body, 500)
        if status == 400 and _too_long(body):
            super().__init__(f"the server refused the prompt as too long: {text}")
        else:
            super().__init__(f"{base_url} answered HTTP {status}: {text or '(no body)'}")


def _prefixed(base_url: str, message: str) -> str:
    return message if base_url in message else f"{base_url}: {message}"


def _read(resp: httpx.Response, cap: int, truncate: bool = False) -> bytes:
    """A body of at most `cap` bytes (a server cannot make us hold more): cut there with
    `truncate`, else over it is an EngineError."""
    data = b""
    try:
        for raw in resp.iter_bytes():
            data += raw
            if len(data) > cap:
                if truncate:
                    return data[:cap]
                raise EngineError(f"{resp.request.url} sent an answer over {cap:,} bytes")
    except (httpx.HTTPError, httpx.StreamError) as exc:
        if truncate:
            return data
        raise EngineError(f"the answer of {resp.request.url} broke off: "
                          f"{one_line(str(exc) or type(exc).__name__)}") from None
    finally:
        resp.close()
    return data


def _retry_after(resp: httpx.Response) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), up to 60."""
    with contextlib.suppress(ValueError, TypeError, OverflowError):
        if (ms := resp.headers.get("retry-after-ms")) is not None:
            wait = float(ms) / 1000
            return wait if 0 <= wait <= 60 else None
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        wait = float(value)
    except ValueError:
        try:
            wait = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None
    return wait if 0 <= wait <= 60 else None


def _too_long(body: str) -> bool:
    """Whether a 400 body is the server refusing the prompt's length (vLLM, SGLang wordings)."""
    body = body.lower()
    return "maximum context length" in body or "longer than the maximum model length" in body
