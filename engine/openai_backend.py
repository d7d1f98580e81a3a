"""Any OpenAI-compatible server (vLLM, SGLang, ...) through the official `openai` client.

KV reuse here is the server's prefix cache: the corpus goes first and byte-identical, the question
last, and the hit is read back from `usage.prompt_tokens_details.cached_tokens`. Retries with
backoff (and Retry-After) are the client's own; read timeouts grow with the prompt, since a cold
prefill of a long corpus sends nothing back for minutes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
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


def api_base(endpoint: str) -> str:
    """`http://host:port`, `.../v1` or `.../v1/` -> `http://host:port/v1`."""
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EngineError(f"not an http(s) endpoint URL: {endpoint!r} "
                          "(e.g. http://127.0.0.1:8000/v1)")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class OpenAIBackend:
    """Streams from `/v1/chat/completions` (or `/v1/completions` with `chat=False`)."""

    name = "openai"

    def __init__(self, endpoint: str, model: str | None = None, api_key: str | None = None,
                 max_retries: int = 4, connect_timeout: float = 10.0, base_timeout: float = 60.0,
                 min_prefill_tokens_per_s: float = 200.0):
        import openai

        self.base_url = api_base(endpoint)
        self.server_root = self.base_url[: -len("/v1")]
        self._model = model
        self.base_timeout = base_timeout
        self.min_rate = min_prefill_tokens_per_s
        self.connect_timeout = connect_timeout
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key or "scoutlens",
                                     max_retries=max_retries,
                                     timeout=httpx.Timeout(base_timeout, connect=connect_timeout))
        self._openai = openai
        # one pooled client for /tokenize: httpx.post would build a client, and load the CA
        # bundle, per call (~20 ms each, 40% of an ask's time in benchmarks/bench_load.py)
        self._http = httpx.Client(timeout=httpx.Timeout(base_timeout, connect=connect_timeout))

    # --- server facts ---------------------------------------------------------------------------

    @cached_property
    def _models(self) -> list[dict]:
        try:
            data = self._client.models.list().data
        except self._openai.APIError as exc:
            raise self._error(exc) from None
        return [m.model_dump() for m in data]

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

    def count(self, text: str) -> int:
        """Exact tokens from the server's `/tokenize` (vLLM, SGLang); else a local estimate."""
        try:
            resp = self._http.post(f"{self.server_root}/tokenize",
                                   timeout=self._timeout(len(text)),
                                   json={"model": self.model, "prompt": text,
                                         "add_special_tokens": False})
            if resp.status_code == 200 and "count" in resp.json():
                return int(resp.json()["count"])
        except httpx.HTTPError:
            pass
        return max(1, len(text) // CHARS_PER_TOKEN) if text else 0

    def tokenize_chat(self, content: str, system: str | None = None) -> list[int] | None:
        """The served model's token ids for a user turn (chat template applied, no generation
        prompt), or None when the server has no `/tokenize`."""
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": content})
        try:
            resp = self._http.post(f"{self.server_root}/tokenize",
                                   timeout=self._timeout(len(content)),
                                   json={"model": self.model, "messages": messages,
                                         "add_generation_prompt": False})
        except httpx.HTTPError:
            return None
        tokens = resp.json().get("tokens") if resp.status_code == 200 else None
        return tokens if isinstance(tokens, list) else None

    def prefill_ids(self, ids: list[int]) -> Usage:
        """Send token ids to `/v1/completions` for one token: fills the server's prefix cache."""
        try:
            resp = self._client.completions.create(
                model=self.model, prompt=ids, max_tokens=1, temperature=0.0,
                timeout=self._timeout(len(ids) * CHARS_PER_TOKEN))
        except self._openai.APIError as exc:
            raise self._error(exc) from None
        return _usage(resp.usage)

    def _timeout(self, chars: int) -> httpx.Timeout:
        read = self.base_timeout + chars / CHARS_PER_TOKEN / self.min_rate
        return httpx.Timeout(read, connect=self.connect_timeout)

    def _error(self, exc: Exception) -> EngineError:
        o = self._openai
        if isinstance(exc, o.APITimeoutError):
            return EngineError(f"{self.base_url} did not answer in time (after retries): {exc}")
        if isinstance(exc, o.APIConnectionError):
            cause = exc.__cause__ or exc
            return EngineError(f"cannot reach {self.base_url} (after retries): {cause}")
        if isinstance(exc, o.APIStatusError):
            body = exc.response.text[:500] if exc.response is not None else ""
            if exc.status_code == 400 and _too_long(body):
                return EngineError(f"the server refused the prompt as too long: {body}")
            return EngineError(f"{self.base_url} answered HTTP {exc.status_code}: {body or exc}")
        return EngineError(f"{self.base_url}: {exc}")

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

    def _open(self, request: CompletionRequest, chars: int):
        common = dict(model=self.model, max_tokens=request.max_tokens,
                      temperature=request.temperature, stream=True,
                      stream_options={"include_usage": True}, timeout=self._timeout(chars))
        if request.stop:
            common["stop"] = list(request.stop)
        if request.chat:
            messages = []
            if request.system:
                messages.append({"role": "system", "content": request.system})
            content: str | list[dict] = request.prefix + request.prompt
            if request.images_root:
                from engine.images import content_parts

                content = content_parts(content, Path(request.images_root)) or content
            messages.append({"role": "user", "content": content})
            return self._client.chat.completions.create(messages=messages, **common)
        return self._client.completions.create(prompt=request.prefix + request.prompt, **common)

    def _deltas(self, request: CompletionRequest, state: dict, chars: int) -> Iterator[str]:
        try:
            chunks = self._open(request, chars)
        except self._openai.APIError as exc:
            if (isinstance(exc, self._openai.BadRequestError) and self.window
                    and _too_long(exc.response.text if exc.response is not None else "")):
                raise PromptTooLong(self.count(request.prefix + request.prompt), self.window,
                                    request.max_tokens) from None
            raise self._error(exc) from None
        try:
            for chunk in chunks:
                if chunk.usage is not None:
                    state["usage"] = chunk.usage
                for choice in chunk.choices or []:
                    piece = (choice.delta.content if request.chat else choice.text) or ""
                    if choice.finish_reason:
                        state["finish"] = choice.finish_reason
                    if piece:
                        if state["first"] is None:
                            state["first"] = time.perf_counter()
                        state["text"].append(piece)
                        yield piece
        except (self._openai.APIError, httpx.HTTPError) as exc:
            # the server broke off mid-stream: keep what came, mark it incomplete
            state["finish"] = "incomplete"
            state["error"] = f"the stream from {self.base_url} broke off: {exc.__cause__ or exc}"
        finally:
            state["end"] = time.perf_counter()
            with contextlib.suppress(Exception):
                chunks.close()  # a caller that stops early must not leave the connection open

    def _finish(self, state: dict) -> Completion:
        end = state["end"] or time.perf_counter()
        first = state["first"] or end
        usage = _usage(state["usage"])
        if state["finish"] is None:
            state["finish"] = "incomplete"
            state["error"] = "the stream ended before the server said it was done"
        ttft = first - state["t0"]
        return Completion(text="".join(state["text"]), usage=usage,
                          timings=Timings(ttft_s=ttft, prefill_s=ttft, decode_s=end - first,
                                          total_s=end - state["t0"]),
                          finish_reason=state["finish"], model=self.model, backend=self.name,
                          error=state["error"])


def _usage(u) -> Usage:
    """Usage from an OpenAI usage object, cached tokens included when the server reports them."""
    if u is None:
        return Usage()
    details = getattr(u, "prompt_tokens_details", None)
    return Usage(prompt_tokens=u.prompt_tokens or 0,
                 cached_tokens=(getattr(details, "cached_tokens", None) or 0) if details else 0,
                 completion_tokens=u.completion_tokens or 0)


def _too_long(body: str) -> bool:
    """Whether a 400 body is the server refusing the prompt's length (vLLM, SGLang wordings)."""
    body = body.lower()
    return "maximum context length" in body or "longer than the maximum model length" in body
