"""Staged prefill: fill a server's prefix cache with a corpus before anyone asks.

A 10M-token cold prefill takes about an hour on 8xH100. Sending it as one request gives no
progress and loses everything on an interruption. Instead the corpus prefix is sent in growing,
block-aligned stages (max_tokens=1); each stage reuses the previous one from the server's prefix
cache and adds `stage` tokens. A state file records the last stage the server confirmed, so an
interrupted prewarm continues from there: the next request carries every earlier token, so
anything the server has meanwhile evicted is recomputed, never skipped.

Token-exact stages need the server's `/tokenize` (vLLM, SGLang): the chat-templated corpus is
tokenized once and stages are sent as token ids to `/v1/completions`, whose blocks are the ones a
later chat request over the same corpus hits. Without `/tokenize`, or when the request carries
pictures (a video corpus for a vision model: token ids cannot carry images), stages are cut as
text at line ends (about 4 characters a token) and sent as the chat request ask sends, pictures
included, so ask's request finds them cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.files import atomic_write_text
from engine.openai_backend import OpenAIBackend
from engine.types import CompletionRequest, EngineError

#: stage ends are multiples of it: vLLM's GPU prefix-cache block is 16 tokens, vLLM-CPU's 128
#: (cached counts there come in multiples of 128); 128 is a multiple of both
BLOCK = 128
TAIL_MARGIN = 32  # chat-template tokens after the user content, never part of the prefix


@dataclass
class StageResult:
    end: int  # tokens (or characters, in text mode) of the prefix sent so far
    cached: int  # tokens the server reported cached
    seconds: float


@dataclass
class PrewarmReport:
    endpoint: str
    model: str
    mode: str  # "tokens" | "text"
    total: int
    resumed_from: int
    stages: list[StageResult] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def to_json(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


def stage_ends(total: int, stage: int, start: int = 0, block: int = BLOCK) -> list[int]:
    """Block-aligned cut points after `start`, ending at the last full block of `total`."""
    stage = max(block, stage // block * block)
    last = total // block * block
    ends = list(range((start // stage + 1) * stage, last, stage))
    if last > start and (not ends or ends[-1] != last):
        ends.append(last)
    return ends


class StateFile:
    """The last confirmed stage per (endpoint, model, corpus), under SCOUTLENS_HOME."""

    def __init__(self, folder: Path, endpoint: str, model: str, content_key: str):
        key = hashlib.sha256(f"{endpoint}|{model}|{content_key}".encode()).hexdigest()[:24]
        self.path = folder / f"{key}.json"

    def load(self) -> int:
        try:
            return int(json.loads(self.path.read_text())["done"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def save(self, done: int) -> None:
        with contextlib.suppress(OSError):  # only the ability to resume is lost
            atomic_write_text(self.path, json.dumps({"done": done}))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def prewarm(backend: OpenAIBackend, request: CompletionRequest, stage: int, state_dir: Path,
            progress: Callable[[int, int], None] | None = None,
            restart: bool = False) -> PrewarmReport:
    """Send `request.prefix` in growing stages; returns what each stage cost and hit."""
    if not request.prefix:
        raise EngineError("nothing to prewarm: the corpus is empty")
    pictures = bool(request.images_root) and ' image="' in request.prefix
    ids = None if pictures else backend.tokenizer().chat_ids(request.prefix, request.system)
    if ids is not None:
        mode, total = "tokens", max(0, len(ids) - TAIL_MARGIN)
        content_key = hashlib.sha256(json.dumps(ids).encode()).hexdigest()
    else:
        mode, total = "text", len(request.prefix)
        content_key = hashlib.sha256(request.prefix.encode()).hexdigest()
    if backend.window and ids is not None and len(ids) > backend.window:
        raise EngineError(f"the corpus is {len(ids):,} tokens but the server's window is "
                          f"{backend.window:,}: pack it with --budget {backend.window}")
    state = StateFile(state_dir, backend.base_url, backend.model, content_key)
    start = 0 if restart else state.load()
    report = PrewarmReport(backend.base_url, backend.model, mode, total, start)
    step = stage if mode == "tokens" else stage * 4
    ends = stage_ends(total, step, start) if mode == "tokens" else _text_ends(
        request.prefix, step, start)
    if progress:
        progress(start, total)
    for end in ends:
        t0 = time.perf_counter()
        cached = _send_tokens(backend, ids[:end]) if ids is not None else _send_text(
            backend, request, end)
        report.stages.append(StageResult(end, cached, time.perf_counter() - t0))
        state.save(end)
        if progress:
            progress(end, total)
    return report


def _text_ends(text: str, step: int, start: int) -> list[int]:
    ends, pos = [], start
    while pos < len(text):
        cut = min(len(text), pos + step)
        if cut < len(text):
            nl = text.rfind("\n", pos + 1, cut)
            cut = nl + 1 if nl > pos else cut
        ends.append(cut)
        pos = cut
    return ends


def _send_tokens(backend: OpenAIBackend, ids: list[int]) -> int:
    return backend.prefill_ids(ids).cached_tokens


def _send_text(backend: OpenAIBackend, request: CompletionRequest, end: int) -> int:
    part = CompletionRequest(prompt="", prefix=request.prefix[:end], system=request.system,
                             max_tokens=1, images_root=request.images_root,
                             pictures=request.pictures)
    result = backend.stream(part).collect()
    if result.incomplete:
        raise EngineError(f"prewarm stage broke off: {result.error}")
    return result.usage.cached_tokens
