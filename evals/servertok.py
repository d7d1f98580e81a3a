"""Lengths under the served model's own tokenizer: vLLM's and SGLang's `/tokenize` and
`/detokenize`. A haystack cut with these ids is exactly the length the server will count; with
a local tokenizer it would only be close (cl100k and a model's tokenizer differ by 10-30%)."""

from __future__ import annotations

import threading

import httpx

from engine.openai_backend import one_line, parse_json, token_ids
from engine.types import EngineError


class ServerTokenizer:
    """encode/decode through the server; short texts (questions, needles) are memoised. Every
    answer is type-checked: garbage is a one-line EngineError, never a KeyError or traceback."""

    def __init__(self, server_root: str, model: str, timeout: float = 120.0):
        self.root, self.model = server_root.rstrip("/"), model
        self.spec = f"server:{self.root}"
        self._client = httpx.Client(timeout=timeout)
        self._memo: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def _post(self, path: str, body: dict, cap: int, timeout: float | None = None) -> dict:
        url = f"{self.root}{path}"
        extra = {"timeout": timeout} if timeout else {}
        try:
            with self._client.stream("POST", url, json={"model": self.model, **body},
                                     **extra) as resp:
                data = b""
                for raw in resp.iter_bytes():
                    data += raw
                    if len(data) > cap:
                        raise EngineError(f"{url} sent an answer over {cap:,} bytes")
        except httpx.HTTPError as exc:
            raise EngineError(f"cannot reach {url}: {one_line(str(exc) or type(exc).__name__)}"
                              ) from None
        if resp.status_code != 200:
            text = data[:2000].decode("utf-8", "replace")
            raise EngineError(f"{url} answered HTTP {resp.status_code}: {one_line(text, 200)}")
        answer = parse_json(data, f"the answer of {url}")
        if not isinstance(answer, dict):
            raise EngineError(f"the answer of {url} is not a JSON object: {one_line(answer, 80)}")
        return answer

    def encode(self, text: str, timeout: float | None = None) -> list[int]:
        if len(text) <= 512 and text in self._memo:
            return self._memo[text]
        answer = self._post("/tokenize", {"prompt": text, "add_special_tokens": False},
                            16 * len(text) + (1 << 20), timeout)  # ids of len(text) chars
        tokens = token_ids(answer.get("tokens"), f"{self.root}/tokenize: tokens")
        if len(text) <= 512:
            with self._lock:
                self._memo[text] = tokens
        return tokens

    def decode(self, ids: list[int], timeout: float | None = None) -> str:
        answer = self._post("/detokenize", {"tokens": ids}, 64 * len(ids) + (1 << 20), timeout)
        text = answer.get("prompt")
        if not isinstance(text, str):
            raise EngineError(f"{self.root}/detokenize: prompt is not a string: "
                              f"{one_line(text, 80)}")
        return text

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def close(self) -> None:
        self._client.close()


def probe(server_root: str, model: str, timeout: float = 20.0) -> ServerTokenizer | None:
    """The server's tokenizer when it has `/tokenize` and `/detokenize` that round-trip; asked
    with a short `timeout`, so a server that hangs there costs seconds, not the long wait that
    tokenizing a whole haystack is given later."""
    tok = ServerTokenizer(server_root, model)
    try:
        ids = tok.encode("The grass is green. 1234567", timeout)
        ok = bool(ids) and tok.decode(ids, timeout) == "The grass is green. 1234567"
    except EngineError:
        ok = False
    if not ok:
        tok.close()  # no connection left open to a server without a tokenizer
        return None
    return tok
