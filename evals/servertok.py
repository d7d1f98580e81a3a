"""Lengths under the served model's own tokenizer: vLLM's and SGLang's `/tokenize` and
`/detokenize`. A haystack cut with these ids is exactly the length the server will count; with
a local tokenizer it would only be close (cl100k and a model's tokenizer differ by 10-30%)."""

from __future__ import annotations

import threading

import httpx

from engine.types import EngineError


class ServerTokenizer:
    """encode/decode through the server; short texts (questions, needles) are memoised."""

    def __init__(self, server_root: str, model: str, timeout: float = 120.0):
        self.root, self.model = server_root.rstrip("/"), model
        self.spec = f"server:{self.root}"
        self._client = httpx.Client(timeout=timeout)
        self._memo: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def _post(self, path: str, body: dict) -> dict:
        try:
            resp = self._client.post(f"{self.root}{path}", json={"model": self.model, **body})
        except httpx.HTTPError as exc:
            raise EngineError(f"cannot reach {self.root}{path}: {exc}") from None
        if resp.status_code != 200:
            raise EngineError(f"{self.root}{path} answered HTTP {resp.status_code}: "
                              f"{resp.text[:200]}")
        return resp.json()

    def encode(self, text: str) -> list[int]:
        if len(text) <= 512 and text in self._memo:
            return self._memo[text]
        tokens = self._post("/tokenize", {"prompt": text, "add_special_tokens": False})["tokens"]
        if len(text) <= 512:
            with self._lock:
                self._memo[text] = tokens
        return tokens

    def decode(self, ids: list[int]) -> str:
        return self._post("/detokenize", {"tokens": ids})["prompt"]

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def close(self) -> None:
        self._client.close()


def probe(server_root: str, model: str) -> ServerTokenizer | None:
    """The server's tokenizer when it has `/tokenize` and `/detokenize` that round-trip."""
    tok = ServerTokenizer(server_root, model)
    try:
        ids = tok.encode("The grass is green. 1234567")
        ok = isinstance(ids, list) and ids and tok.decode(ids) == "The grass is green. 1234567"
    except (EngineError, KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        tok.close()  # no connection left open to a server without a tokenizer
        return None
    return tok
