"""Chunked prefill over a reusable prefix cache, then token-by-token decoding (gpt-fast style).

Prefill runs the prompt through the model `chunk` tokens at a time with a growing KV cache, so
peak memory follows the cache rather than prompt length x activations; only the last position's
logits are ever computed. Before prefilling, the longest block-aligned prefix already in the
PrefixCache is loaded instead of recomputed; after the answer, new full blocks are stored.

Everything runs on the model's device. With Llama 4's chunked local layers the buffer is hybrid
(engine.kvbuffer): pieces stop at attention chunk edges, and new blocks are copied out to host
memory as they complete, while the local layers still hold them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from engine.kvbuffer import KVBuffer, local_layers
from engine.kvcache import KVBlock, PrefixCache


@dataclass
class PrefillResult:
    buffer: KVBuffer
    logits: torch.Tensor  # [vocab] for the last prompt position
    cached_tokens: int
    prefill_s: float
    new_keys: list[str] = field(default_factory=list)
    #: new full blocks already copied out (hybrid buffers, whose local layers drop old chunks)
    captured: list[torch.Tensor] = field(default_factory=list)




@torch.inference_mode()
def prefill(model, ids: list[int], chunk: int, prefix_cache: PrefixCache | None = None,
            progress: Callable[[int, int], None] | None = None,
            capacity: int = 0) -> PrefillResult:
    """Run `ids` through `model`, reusing cached blocks; at least the last token is computed."""
    t0 = time.perf_counter()
    blocks: list[KVBlock] = []
    keys: list[str] = []
    if prefix_cache is not None:
        keys = prefix_cache.keys(ids)
        reusable = keys[: (len(ids) - 1) // prefix_cache.block]
        blocks = prefix_cache.lookup(reusable)
    size = prefix_cache.block if prefix_cache is not None else 0
    # a block must never straddle a chunk edge (its old half would be gone): else keep every
    # layer's KV, as a plain model does
    hybrid = not (size and local_layers(model.config)[0] % size)
    buffer = KVBuffer.for_model(model, max(capacity, len(ids)), hybrid=hybrid)
    buffer.load([b.kv for b in blocks])
    cache = buffer.cache
    done = len(blocks) * size
    captured: list[torch.Tensor] = []
    logits = None
    while done < len(ids):
        stop = min(len(ids), done + chunk, buffer.chunk_end(done) or len(ids))
        piece = torch.tensor([ids[done:stop]], dtype=torch.long, device=buffer.device)
        out = model(input_ids=piece, cache=cache, use_cache=True, logits_to_keep=1)
        logits = out.logits[0, -1].float()
        done = stop
        if buffer.chunk and size:
            first = len(blocks) + len(captured)
            captured += [buffer.block(b * size, (b + 1) * size)
                         for b in range(first, min(done // size, len(keys)))]
        if progress:
            progress(done, len(ids))
    assert logits is not None
    return PrefillResult(buffer=buffer, logits=logits, cached_tokens=len(blocks) * size,
                         prefill_s=time.perf_counter() - t0, new_keys=keys[len(blocks):],
                         captured=captured)


def save_blocks(prefix_cache: PrefixCache, result: PrefillResult) -> None:
    """Store the prompt's new full blocks (call before or after decoding: decode only appends)."""
    if not result.new_keys:
        return
    size = prefix_cache.block
    first = result.cached_tokens // size
    kvs = result.captured or [result.buffer.block(b * size, (b + 1) * size)
                              for b in range(first, first + len(result.new_keys))]
    prefix_cache.store(result.new_keys, [KVBlock(kv) for kv in kvs])


@torch.inference_mode()
def decode(model, result: PrefillResult, max_tokens: int, eos_ids: frozenset[int],
           temperature: float = 0.0, seed: int = 0) -> Iterator[int]:
    """Yield generated token ids until an end token or `max_tokens`."""
    logits, cache, device = result.logits, result.buffer.cache, result.buffer.device
    gen = torch.Generator(device=device).manual_seed(seed)
    for _ in range(max_tokens):
        if temperature > 0:
            probs = torch.softmax(logits / temperature, dim=-1)
            token = int(torch.multinomial(probs, 1, generator=gen))
        else:
            token = int(torch.argmax(logits))
        if token in eos_ids:
            return
        yield token
        out = model(input_ids=torch.tensor([[token]], device=device), cache=cache,
                    use_cache=True)
        logits = out.logits[0, -1].float()
