"""The engine's seam: what a backend is asked (CompletionRequest) and what it returns (Completion).

Every backend streams text deltas and ends with one Completion carrying usage and timings, so the
CLI, the ask service and the evals can treat an in-process model and a vLLM server alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Protocol

from common.errors import UserError


class EngineError(UserError):
    """A user-facing engine failure (bad prompt size, endpoint down, missing model)."""


class PromptTooLong(EngineError):
    def __init__(self, prompt_tokens: int, window: int, max_tokens: int = 0):
        self.prompt_tokens, self.window, self.max_tokens = prompt_tokens, window, max_tokens
        need = f"{prompt_tokens:,} prompt tokens"
        if max_tokens:
            need += f" + {max_tokens:,} to generate"
        super().__init__(f"the prompt does not fit the model's window: {need} > {window:,} tokens "
                         "(pack with a smaller --budget, or use a model with a longer window)")


@dataclass(frozen=True)
class CompletionRequest:
    """One generation. `prefix` is the reusable part (a packed corpus): backends keep its tokens
    identical across requests so its KV cache can be reused; `prompt` follows it. With `chat`,
    prefix + prompt form the user turn of the model's chat template."""

    prompt: str
    prefix: str = ""
    system: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    chat: bool = True
    stop: tuple[str, ...] = ()
    # where `<frame ... image="X">` files live: a vision backend sends each as an image part
    # right after its tag; text-only backends read the frame's words and ignore the picture
    images_root: str | None = None


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


class Backend(Protocol):
    name: str
    model: str

    def count(self, text: str) -> int:
        """Exact prompt tokens of `text` under the served model's tokenizer."""
        ...

    @property
    def window(self) -> int:
        """The model's context window in tokens."""
        ...

    def stream(self, request: CompletionRequest) -> Stream: ...
