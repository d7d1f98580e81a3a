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
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import httpx

from engine.images import content_parts
from engine.server_tokenizer import EstimateTokenizer, ServerTokenizer, probe
from engine.types import (
    Completion,
    CompletionRequest,
    EngineError,
    ModelTokenizer,
    PromptTooLong,
    Stream,
    StreamState,
    Timings,
    Usage,
)
from engine.wire import (
    MAX_COUNT,
    SSEParser,
    api_base,
    one_line,
    parse_chunk,
    parse_json,
    parse_usage,
    read_body,
)
from ingest.tokenizers import load_tokenizer

CHARS_PER_TOKEN = 4  # to size timeouts before the exact count is known
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_ERROR_BODY = 64 << 10
MAX_ANSWER_BYTES = 16 << 20  # a model list, a one-token completion


@dataclass
class _State(StreamState):
    """One server stream: the text pieces so far and the usage the server reported."""

    pieces: list[str] = field(default_factory=list)
    usage: Usage | None = None


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
    vision = True  # frame pictures go as image parts; a text-only model refuses them (HTTP 400)
    concurrent = True

    def __init__(self, endpoint: str, model: str | None = None, api_key: str | None = None,
                 max_retries: int = 4, connect_timeout: float = 10.0, base_timeout: float = 60.0,
                 min_prefill_tokens_per_s: float = 200.0, idle_timeout: float = 60.0,
                 min_decode_tokens_per_s: float = 2.0, max_tokens_slack: float = 2.0,
                 info_timeout: float = 20.0, max_images: int | None = None):
        self.base_url = api_base(endpoint)
        self.server_root = self.base_url[: -len("/v1")]
        self._model = model
        self.max_retries = max(0, max_retries)
        self.connect_timeout, self.base_timeout = connect_timeout, base_timeout
        self.min_rate, self.idle_timeout = min_prefill_tokens_per_s, idle_timeout
        self.min_decode_rate, self.slack = min_decode_tokens_per_s, max_tokens_slack
        self.info_timeout = info_timeout
        self.max_images = max_images  # the server's images per prompt (None: no limit known)
        self._tokenizer: ModelTokenizer | None = None
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
            text = read_body(resp, MAX_ERROR_BODY, truncate=True).decode("utf-8", "replace")
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
        data = parse_json(read_body(self._request(method, path, body, timeout), MAX_ANSWER_BYTES),
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

    def tokenizer(self) -> ModelTokenizer:
        """The server's own `/tokenize` when it has one (exact counts, images included), else a
        cl100k estimate that says it is one. Asked once per backend, with a short wait."""
        if self._tokenizer is None:
            server = ServerTokenizer(self.server_root, self.model, self._http,
                                     lambda chars: self._timeout(chars).read, self.max_images)
            self._tokenizer = server if probe(server, self.info_timeout) else \
                EstimateTokenizer(load_tokenizer("cl100k"), self.model, self.max_images)
        return self._tokenizer

    def describe(self) -> dict:
        """Backend, model, window, and the server's version where it says it (vLLM, SGLang)."""
        out: dict = {"backend": self.name, "model": self.model, "window": self.window}
        try:
            resp = self._http.get(f"{self.server_root}/version", timeout=5)
            if resp.status_code == 200 and isinstance(resp.json(), dict):
                out["server_version"] = one_line(resp.json().get("version", ""), 80)
        except (httpx.HTTPError, ValueError):
            pass
        return out

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
        state = _State()
        chars = len(request.prefix) + len(request.prompt)
        if self.window and chars // (CHARS_PER_TOKEN * 2) > self.window:
            need = self.tokenizer().count_request(request).tokens
            if need + request.max_tokens > self.window:
                raise PromptTooLong(need, self.window, request.max_tokens)
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
        messages += [{"role": role, "content": text} for role, text in request.history]
        content: str | list[dict] = request.prefix + request.prompt
        if request.images_root:
            content = content_parts(content, Path(request.images_root), self.max_images,
                                    request.pictures) or content
        messages.append({"role": "user", "content": content})
        return "/chat/completions", {**body, "messages": messages}

    def _open(self, request: CompletionRequest, first: float, deadline: float) -> httpx.Response:
        path, body = self._body(request)
        try:
            return self._request("POST", path, body, first, deadline, sse=True)
        except _StatusError as exc:
            if exc.status == 400 and self.window and _too_long(exc.body):
                raise PromptTooLong(self.tokenizer().count_request(request).tokens, self.window,
                                    request.max_tokens) from None
            raise

    def _deltas(self, request: CompletionRequest, state: _State, chars: int) -> Iterator[str]:
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
                    state.usage = piece.usage
                    if piece.usage.completion_tokens > most:
                        self._cut(state, request.max_tokens, most)
                        break
                if piece.finish:
                    state.finish = piece.finish
                if piece.text:
                    chunks, chars_in = chunks + 1, chars_in + len(piece.text)
                    if max(chunks, chars_in // (2 * CHARS_PER_TOKEN)) > most:
                        self._cut(state, request.max_tokens, most)
                        break
                    state.saw_text()
                    state.pieces.append(piece.text)
                    yield piece.text
        except EngineError as exc:
            if not state.pieces:
                raise EngineError(_prefixed(self.base_url, str(exc))) from None
            # the server broke off (or broke the protocol) mid-answer: keep what came
            state.finish = "incomplete"
            state.error = f"the stream from {self.base_url} broke off: {exc}"
        finally:
            guard.stop()
            state.stopped()
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
    def _cut(state: _State, max_tokens: int, most: int) -> None:
        state.finish = "length"
        state.error = (f"stopped reading: the server sent over {most:,} tokens for "
                          f"max_tokens {max_tokens:,}")

    def _finish(self, state: _State) -> Completion:
        end = state.end or time.perf_counter()
        first = state.first or end
        usage = state.usage or Usage()
        if state.finish is None:
            state.finish = "incomplete"
            state.error = "the stream ended before the server said it was done"
        ttft = first - state.t0
        return Completion(text="".join(state.pieces), usage=usage,
                          timings=Timings(ttft_s=ttft, prefill_s=ttft, decode_s=end - first,
                                          total_s=end - state.t0),
                          finish_reason=state.finish, model=self.model, backend=self.name,
                          error=state.error)


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
