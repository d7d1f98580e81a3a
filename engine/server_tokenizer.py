"""The served model's tokenizer over HTTP: vLLM's and SGLang's `/tokenize` and `/detokenize`, the
one client for both (the OpenAI backend counts prompts with it, evals cut haystacks with it).

Counts from a local tokenizer are only close (cl100k and a model's tokenizer differ by 10-30%):
a server without `/tokenize` gets an `EstimateTokenizer`, which says `exact = False`, so callers
keep a margin instead of trusting it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from engine.images import image_cost, with_placeholders
from engine.types import CompletionRequest, EngineError, ModelTokenizer, PromptCount
from engine.wire import one_line, parse_json, read_body, token_count, token_ids
from ingest.tokenizers import Tokenizer

MEMO_CHARS = 512  # questions and needles are asked again and again: remembered
TEMPLATE_TOKENS = 8  # a chat turn's header and end, when they cannot be counted


def default_timeout(chars: int) -> float:
    """The wait for a `/tokenize` answer: grows with the text (200 tokens/s at worst)."""
    return 60.0 + chars / 4 / 200


def _messages(request: CompletionRequest, content: str | None = None) -> list[dict]:
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages += [{"role": role, "content": text} for role, text in request.history]
    return messages + [{"role": "user", "content": request.prefix + request.prompt
                        if content is None else content}]


def _placed(request: CompletionRequest, limit: int | None) -> tuple[str, int, int]:
    """The user turn with a placeholder where each picture goes, images, their tokens."""
    text = request.prefix + request.prompt
    if not request.chat or not request.images_root:
        return text, 0, 0
    return with_placeholders(text, Path(request.images_root), limit, request.pictures)


def _images(request: CompletionRequest, limit: int | None) -> tuple[int, int]:
    if not request.chat or not request.images_root:
        return 0, 0
    return image_cost(request.prefix + request.prompt, Path(request.images_root), limit,
                      request.pictures)


class ServerTokenizer(ModelTokenizer):
    """encode/decode and whole-request counts through the server. Every answer is type-checked:
    garbage is a one-line EngineError, never a KeyError or traceback."""

    parallelism = "threads"

    def __init__(self, server_root: str, model: str, client: httpx.Client | None = None,
                 timeout: Callable[[int], float] = default_timeout,
                 max_images: int | None = None):
        self.root, self.model = server_root.rstrip("/"), model
        self.spec = f"server:{self.root}"
        self.name = f"{model} (the server's /tokenize)"
        self._client = client or httpx.Client()
        self._own_client = client is None
        self._timeout = timeout
        self.max_images = max_images
        self._memo: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def _post(self, path: str, body: dict, chars: int, timeout: float | None = None) -> dict:
        url = f"{self.root}{path}"
        cap = 16 * chars + (1 << 20)  # the ids of `chars` characters, as JSON
        try:
            resp = self._client.send(self._client.build_request(
                "POST", url, json={"model": self.model, **body},
                timeout=timeout or self._timeout(chars)), stream=True)
        except httpx.HTTPError as exc:
            raise EngineError(f"cannot reach {url}: {one_line(str(exc) or type(exc).__name__)}"
                              ) from None
        data = read_body(resp, cap, truncate=resp.status_code != 200)
        if resp.status_code != 200:
            text = data[:2000].decode("utf-8", "replace")
            raise EngineError(f"{url} answered HTTP {resp.status_code}: {one_line(text, 200)}")
        answer = parse_json(data, f"the answer of {url}")
        if not isinstance(answer, dict):
            raise EngineError(f"the answer of {url} is not a JSON object: {one_line(answer, 80)}")
        return answer

    def _tokens(self, answer: dict) -> list[int]:
        return token_ids(answer.get("tokens"), f"{self.root}/tokenize: tokens")

    def encode(self, text: str, timeout: float | None = None) -> list[int]:
        if not text:
            return []
        if len(text) <= MEMO_CHARS and text in self._memo:
            return self._memo[text]
        tokens = self._tokens(self._post(
            "/tokenize", {"prompt": text, "add_special_tokens": False}, len(text), timeout))
        if len(text) <= MEMO_CHARS:
            with self._lock:
                self._memo[text] = tokens
        return tokens

    def decode(self, ids: Sequence[int], timeout: float | None = None) -> str:
        answer = self._post("/detokenize", {"tokens": list(ids)}, 4 * len(ids), timeout)
        text = answer.get("prompt")
        if not isinstance(text, str):
            raise EngineError(f"{self.root}/detokenize: prompt is not a string: "
                              f"{one_line(text, 80)}")
        return text

    def count_request(self, request: CompletionRequest) -> PromptCount:
        text, images, image_tokens = _placed(request, self.max_images)
        if request.chat:
            body = {"messages": _messages(request, text), "add_generation_prompt": True}
        else:
            body = {"prompt": text, "add_special_tokens": True}
        answer = self._post("/tokenize", body, len(text) + len(request.system or ""))
        if "tokens" not in answer and "count" in answer:
            tokens = token_count(answer["count"], f"{self.root}/tokenize: count")
        else:
            tokens = len(self._tokens(answer))
        # each placeholder is one token of the count; the server bills the image's instead
        return PromptCount(tokens - images + image_tokens, images, image_tokens)

    def chat_ids(self, content: str, system: str | None = None) -> list[int] | None:
        request = CompletionRequest(prompt="", prefix=content, system=system)
        return self._tokens(self._post(
            "/tokenize", {"messages": _messages(request), "add_generation_prompt": False},
            len(content)))

    def close(self) -> None:
        if self._own_client:
            self._client.close()


def probe(tok: ServerTokenizer, timeout: float = 20.0, roundtrip: bool = False) -> bool:
    """Whether the server tokenizes (and with `roundtrip`, detokenizes back to the same text);
    asked with a short `timeout`, so a server that hangs there costs seconds, not the long wait
    that tokenizing a whole corpus is given later."""
    sample = "The grass is green. 1234567"
    try:
        ids = tok.encode(sample, timeout)
        return bool(ids) and (not roundtrip or tok.decode(ids, timeout) == sample)
    except EngineError:
        return False


class EstimateTokenizer(ModelTokenizer):
    """Counts with a local tokenizer for a server that cannot tokenize: close, not exact."""

    exact = False

    def __init__(self, local: Tokenizer, model: str, max_images: int | None = None):
        self._local, self.max_images = local, max_images
        self.spec, self.name = local.spec, f"{local.name} (an estimate for {model})"
        self.parallelism = local.parallelism

    def encode(self, text: str) -> list[int]:
        return self._local.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self._local.decode(ids)

    def count(self, text: str) -> int:
        return self._local.count(text)

    def count_request(self, request: CompletionRequest) -> PromptCount:
        tokens = self.count(request.prefix + request.prompt)
        if request.chat:
            tokens += TEMPLATE_TOKENS * len(_messages(request)) + self.count(request.system or "")
            tokens += sum(self.count(text) for _, text in request.history)
        images, image_tokens = _images(request, self.max_images)
        return PromptCount(tokens + image_tokens, images, image_tokens, exact=False)
