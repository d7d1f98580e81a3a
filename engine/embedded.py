"""The embedded backend: an in-process model with chunked prefill and a prefix KV cache in three
tiers: the generation's buffer on the model's device (CPU or GPU), then host memory, then disk."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.embedded_model import LoadedModel, LoadedTokenizer, encode_request, load_model
from engine.types import (
    Completion,
    CompletionRequest,
    EngineError,
    PromptTooLong,
    Stream,
    StreamState,
    Timings,
    Usage,
)


@dataclass
class _State(StreamState):
    """One embedded stream: the text so far, the tokens generated, and the prefill's figures
    (not its buffer: a finished stream held by a caller must not hold the device's memory)."""

    finish: str | None = "length"
    text: str = ""
    generated: int = 0
    cached_tokens: int = 0
    prefill_s: float = 0.0


#: prefill piece by device, when none is asked for (tokens)
PREFILL_CHUNK = {"cpu": 1024, "cuda": 8192}
#: GPU memory left beside the KV buffer for a prefill piece's activations and the kernels' work
ACTIVATION_HEADROOM = 1 << 30


class EmbeddedBackend:
    name = "embedded"
    vision = False  # a causal LM: it reads a frame's words, not its picture
    concurrent = False  # one KV buffer: callers take turns

    def __init__(self, model: str | Path, *, dtype: str = "bfloat16",
                 prefill_chunk: int | None = None, kv_block: int = 16, kv_dir: Path | None = None,
                 kv_memory_bytes: int = 2 << 30, kv_disk_bytes: int = 20 << 30,
                 reuse: bool = True, threads: int = 0,
                 progress: Callable[[int, int], None] | None = None, weights: bool = True,
                 device: str = "cpu"):
        self.lm: LoadedModel = load_model(model, dtype=dtype, threads=threads, weights=weights,
                                          device=device)
        self._tokenizer = LoadedTokenizer(self.lm)
        # a GPU is busy only with pieces of thousands of tokens; Scout's attention chunk is 8,192
        self.prefill_chunk = max(1, prefill_chunk or PREFILL_CHUNK.get(self.lm.device, 1024))
        self.progress = progress
        self.prefix_cache = None
        self.resident = None  # engine.generate.Resident: the device tier, one buffer
        if reuse and weights:
            from engine.kvcache import PrefixCache  # torch: only with the weights

            self.prefix_cache = PrefixCache(self.lm.key, kv_block, kv_dir, kv_memory_bytes,
                                            kv_disk_bytes)

    @property
    def model(self) -> str:
        return self.lm.name

    @property
    def window(self) -> int:
        return self.lm.window

    def tokenizer(self) -> LoadedTokenizer:
        return self._tokenizer

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model, "window": self.window,
                "dtype": self.lm.dtype, "device": self.lm.device}

    def encode(self, request: CompletionRequest) -> list[int]:
        return encode_request(self.lm, request)[0]

    def stream(self, request: CompletionRequest) -> Stream:
        if self.lm.model is None:
            raise EngineError("the model was loaded without its weights (for counting only)")
        ids, _ = encode_request(self.lm, request)
        if len(ids) + request.max_tokens > self.window:
            raise PromptTooLong(len(ids), self.window, request.max_tokens)
        if self.lm.device == "cuda":
            self._check_kv_fits(len(ids) + request.max_tokens)
        state = _State()
        return Stream(self._run(ids, request, state), lambda: self._finish(ids, state))

    def _run(self, ids: list[int], request: CompletionRequest, state: _State) -> Iterator[str]:
        import torch

        from engine.generate import (  # torch: only to generate
            Resident,
            decode,
            prefill,
            save_blocks,
        )

        tok = self.lm.tokenizer
        resident, self.resident = self.resident, None
        result = None
        try:
            result = prefill(self.lm.model, ids, self.prefill_chunk, self.prefix_cache,
                             self.progress, capacity=len(ids) + request.max_tokens,
                             resident=resident)
        except torch.OutOfMemoryError:
            pass  # raised below, outside the handler: the error's frames hold the buffer
        finally:
            del resident
        if result is None:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise EngineError(f"the GPU ran out of memory prefilling {len(ids):,} tokens in "
                              f"pieces of {self.prefill_chunk:,}: a smaller --prefill-chunk or "
                              "a shorter context fits")
        state.cached_tokens, state.prefill_s = result.cached_tokens, result.prefill_s
        generated: list[int] = []
        emitted = ""
        try:
            for token in decode(self.lm.model, result, request.max_tokens, self.lm.eos_ids,
                                request.temperature):
                generated.append(token)
                text = tok.decode(generated, skip_special_tokens=True)
                if text.endswith("\ufffd"):
                    continue  # a multi-byte character is still incomplete
                cut = _stop_at(text, request.stop)
                if cut is not None:
                    text = text[:cut]
                delta, emitted = text[len(emitted):], text
                if delta:
                    state.saw_text()
                    yield delta
                if cut is not None:
                    state.finish = "stop"
                    break
            else:
                state.finish = "stop" if len(generated) < request.max_tokens else "length"
        finally:
            state.text, state.generated = emitted, len(generated)
            state.stopped()
            if self.prefix_cache is not None:
                save_blocks(self.prefix_cache, result)
                self.resident = Resident(ids, result.buffer)
            del result  # the buffer lives on in the resident only

    def _check_kv_fits(self, tokens: int) -> None:
        """A context whose KV buffer cannot fit in the GPU's free memory is refused before any
        work, in the planner's terms: what it needs, what is free, how many tokens would fit."""
        import torch

        from engine.generate import buffer_capacity, hybrid_for
        from engine.kvbuffer import KVBuffer

        hybrid = hybrid_for(self.lm.model, self.prefix_cache)  # the buffer prefill will make
        need = KVBuffer.bytes_needed(self.lm.model, buffer_capacity(tokens), hybrid)
        per_token = max(1, KVBuffer.bytes_needed(self.lm.model, 2, hybrid)
                        - KVBuffer.bytes_needed(self.lm.model, 1, hybrid))
        free, _ = torch.cuda.mem_get_info()
        # what torch's allocator keeps cached is free to this process too
        free += torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
        if self.resident is not None and self.resident.buffer is not None:
            free += self.resident.buffer.nbytes  # let go of before a new buffer is made
        room = free - ACTIVATION_HEADROOM
        if need > room:
            raise EngineError(
                f"{tokens:,} tokens need {need / 2**30:.2f} GiB of KV ({per_token:,} bytes per "
                f"token); {torch.cuda.get_device_name()} has {free / 2**30:.2f} GiB free: about "
                f"{max(0, room - (need - per_token * buffer_capacity(tokens))) // per_token:,}"
                " tokens fit")

    def _finish(self, ids: list[int], state: _State) -> Completion:
        end = state.end or time.perf_counter()
        prefill_end = state.t0 + state.prefill_s
        first = state.first or end
        return Completion(
            text=state.text,
            usage=Usage(prompt_tokens=len(ids),
                        cached_tokens=state.cached_tokens,
                        completion_tokens=state.generated),
            timings=Timings(ttft_s=first - state.t0, prefill_s=prefill_end - state.t0,
                            decode_s=max(0.0, end - prefill_end), total_s=end - state.t0),
            finish_reason=state.finish or "length", model=self.model, backend=self.name)


def _stop_at(text: str, stops: tuple[str, ...]) -> int | None:
    hits = [i for s in stops if s and (i := text.find(s)) >= 0]
    return min(hits) if hits else None
