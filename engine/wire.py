"""What comes over the wire from an OpenAI-style server, checked before it is believed: the
endpoint URL, server-sent events, stream chunks, usage, token id lists and capped bodies. Every
wrong type or size is a one-line EngineError, never a traceback."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from engine.types import EngineError, Usage

MAX_EVENT_BYTES = 1 << 20  # one SSE line or event; a real chunk is a few hundred bytes
MAX_COUNT = 2**31 - 1  # token counts are stored in 32-bit integer columns
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
    return Usage(prompt_tokens=token_count(u.get("prompt_tokens"), f"{where}.prompt_tokens"),
                 cached_tokens=token_count((details or {}).get("cached_tokens"),
                                      f"{where}.prompt_tokens_details.cached_tokens"),
                 completion_tokens=token_count(u.get("completion_tokens"),
                                          f"{where}.completion_tokens"))


def token_count(value: object, where: str) -> int:
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



def read_body(resp: httpx.Response, cap: int, truncate: bool = False) -> bytes:
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
