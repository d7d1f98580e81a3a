"""The engine's seam: what a backend is asked (CompletionRequest) and what it returns (Completion).

Every backend streams text deltas and ends with one Completion carrying usage and timings, so the
CLI, the ask service and the evals can treat an in-process model and a vLLM server alike.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Protocol

from common.errors import UserError
from ingest.tokenizers import Tokenizer


class EngineError(UserError):
    """A user-facing engine failure (bad prompt size, endpoint down, missing model)."""


class PromptTooLong(EngineError):
    """The request (text, template and images) and the answer do not fit the window."""

    def __init__(self, prompt: int | PromptCount, window: int, max_tokens: int = 0,
                 hint: str = "pack with a smaller --budget, or use a model with a longer window"):
        count = prompt if isinstance(prompt, PromptCount) else PromptCount(prompt)
        self.count, self.prompt_tokens = count, count.tokens
        self.window, self.max_tokens = window, max_tokens
        need = f"{count.tokens:,} prompt tokens"
        if count.images:
            need += (f" ({count.image_tokens:,} of them for {count.images} "
                     f"image{'s' if count.images > 1 else ''})")
        if max_tokens:
            need += f" + {max_tokens:,} to generate"
        super().__init__(f"the prompt does not fit the model's window: {need} > {window:,} "
                         f"tokens ({hint})")


@dataclass(frozen=True)
class CompletionRequest:
    """One generation. `prefix` is the reusable part (a packed corpus): backends keep its tokens
    identical across requests so its KV cache can be reused; `prompt` follows it. With `chat`,
    prefix + prompt form the user turn of the model's chat template."""

    prompt: str
    prefix: str = ""
    system: str | None = None
    #: earlier turns, (role, content) with role `user` or `assistant`, between the system
    #: message and the user turn (a conversation such as MRCR's); chat only, plain text
    history: tuple[tuple[str, str], ...] = ()
    max_tokens: int = 256
    temperature: float = 0.0
    chat: bool = True
    stop: tuple[str, ...] = ()
    # where the files of `<frame ... image="X">` and `<picture ... image="X">` tags live: a
    # vision backend sends each as an image part right after its tag; text-only backends read
    # the tag's words and ignore the picture
    images_root: str | None = None
    #: the pictures (their image="X" names) that go as images, chosen once (engine.images.choose)
    #: so the request's cost and what is sent agree; None: as many as the server takes, spread
    pictures: tuple[str, ...] | None = None


@dataclass
class Usage:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Timings:
    ttft_s: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    total_s: float = 0.0


@dataclass
class Completion:
    text: str
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    finish_reason: str = "stop"  # stop | length | incomplete
    model: str = ""
    backend: str = ""
    error: str | None = None  # set when the stream broke off: the text is partial

    @property
    def incomplete(self) -> bool:
        return self.finish_reason == "incomplete"

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "usage": asdict(self.usage),
            "timings": {k: round(v, 4) for k, v in asdict(self.timings).items()},
            "finish_reason": self.finish_reason,
            "incomplete": self.incomplete,
            "model": self.model,
            "backend": self.backend,
            "error": self.error,
        }


@dataclass
class StreamState:
    """What one stream has produced so far: the backend's generator fills it in, its finish turns
    it into the Completion (the two halves of a Stream share it). Backends add their own fields."""

    t0: float = field(default_factory=time.perf_counter)  # when the request was made
    first: float | None = None  # when the first text was yielded
    end: float | None = None  # when the generator stopped (None: it never ran to its end)
    finish: str | None = None  # stop | length | incomplete; None: not known yet
    error: str | None = None  # why the text is partial

    def saw_text(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def stopped(self) -> None:
        self.end = time.perf_counter()


class Stream:
    """Iterate for text deltas; `result` holds the Completion once the iteration has ended."""

    def __init__(self, deltas: Iterator[str], finish: Callable[[], Completion]):
        self._deltas, self._finish = deltas, finish
        self.result: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        yield from self._deltas
        self.result = self._finish()

    def collect(self) -> Completion:
        for _ in self:
            pass
        assert self.result is not None
        return self.result


@dataclass(frozen=True)
class PromptCount:
    """What one request costs the model's window before it generates: chat template, text and
    the images it carries (each counted as the server bills it)."""

    tokens: int
    images: int = 0
    image_tokens: int = 0
    exact: bool = True  # False: estimated (the server cannot tokenize), so callers keep a margin


class ModelTokenizer(Tokenizer):
    """The tokenizer of the model a backend runs: text like any Tokenizer, plus the cost of a
    whole request. `exact` is False when the counts are only an estimate."""

    exact: bool = True

    @abstractmethod
    def count_request(self, request: CompletionRequest) -> PromptCount: ...

    def chat_ids(self, content: str, system: str | None = None) -> list[int] | None:
        """The token ids of a user turn (chat template, no generation prompt), when known."""
        return None


class Backend(Protocol):
    """What callers may ask of any backend; they never look at its name or its internals."""

    name: str
    #: sends the pictures of `<frame|picture image=...>` tags (CompletionRequest.images_root)
    vision: bool
    #: serves several requests at once (an endpoint); False: callers take turns (one KV buffer)
    concurrent: bool

    @property
    def model(self) -> str: ...

    @property
    def window(self) -> int | None:
        """The model's context window in tokens, when known."""
        ...

    def tokenizer(self) -> ModelTokenizer:
        """The served model's tokenizer (built once)."""
        ...

    def describe(self) -> dict:
        """What identifies the model and server (evals compare runs by it)."""
        ...

    def stream(self, request: CompletionRequest) -> Stream: ...
