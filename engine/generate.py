"""Chunked prefill over a reusable prefix cache, then token-by-token decoding (gpt-fast style).

Prefill runs the prompt through the model `chunk` tokens at a time with a growing KV cache, so
peak memory follows the cache rather than prompt length x activations; only the last position's
logits are ever computed. Before prefilling, the longest block-aligned prefix already in the
PrefixCache is loaded instead of recomputed; after the answer, new full blocks are stored.

Everything runs on the model's device. With Llama 4's chunked local layers the buffer is hybrid
(engine.kvbuffer): pieces stop at attention chunk edges, new blocks go to the prefix cache as
they complete (while the local layers still hold them), and attention is lower-right causal
SDPA with no mask built (engine.attention).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from engine.attention import maskless
from engine.kvbuffer import KVBuffer, local_layers
from engine.kvcache import KVBlock, PrefixCache


@dataclass
class PrefillResult:
    buffer: KVBuffer
    logits: torch.Tensor  # [vocab] for the last prompt position
    cached_tokens: int
    prefill_s: float
    new_keys: list[str] = field(default_factory=list)
    #: new full blocks already stored in the prefix cache during prefill (hybrid buffers, whose
    #: local layers drop old chunks): save_blocks has nothing left to copy
    stored: int = 0




#: a new buffer's capacity is rounded up to this many tokens, so a follow-up question a little
#: longer than the last still fits the resident buffer (the device tier) without growing it
ROOM = 1024


def buffer_capacity(tokens: int) -> int:
    return -(-max(tokens, 1) // ROOM) * ROOM


def hybrid_for(model, prefix_cache: PrefixCache | None) -> bool:
    """Whether a generation's buffer keeps only the local layers' chunk: not when a prefix
    block would straddle a chunk edge (its old half would be gone), then every layer keeps every
    token, as a plain model does."""
    size = prefix_cache.block if prefix_cache is not None else 0
    return not (size and local_layers(model.config)[0] % size)


@dataclass
class Resident:
    """The device tier: the last generation's buffer, left on the device, and the prompt whose
    KV it holds at positions [0, len(ids)). The next prompt sharing a prefix with it starts from
    there in place: no copy of the prefix at all."""

    ids: list[int]
    buffer: KVBuffer | None

    def release(self) -> None:
        """Let the buffer's memory go (before a new buffer is allocated beside it)."""
        self.buffer = None


def _shared(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _from_resident(resident: Resident | None, ids: list[int], keys: list[str],
                   prefix_cache: PrefixCache, capacity: int) -> tuple[KVBuffer, int] | None:
    """The resident buffer rewound to the longest block-aligned prefix it shares with `ids`,
    when that is at least what the host and disk tiers hold; None otherwise. A hybrid buffer's
    local layers need that prefix's last chunk: in place when the resident was last in that
    chunk, else from the host tiers (what they lack shortens the reuse to the chunk's start)."""
    if resident is None or resident.buffer is None:
        return None
    size = prefix_cache.block
    n = min(_shared(resident.ids, ids), len(ids) - 1) // size * size
    if n == 0 or capacity > resident.buffer.capacity:
        return None  # nothing shared, or growing it would hold old and new at once
    if n // size < len(keys) and all(prefix_cache.has(k) for k in keys[:n // size + 1]):
        return None  # the host tiers hold a longer prefix, from its start: today's path
    buffer = resident.buffer
    local: list[torch.Tensor] | None = None
    if buffer.chunk:
        start = n // buffer.chunk * buffer.chunk
        if start != buffer.local_start():
            found = prefix_cache.lookup(keys[start // size:n // size])
            n, local = start + len(found) * size, [b.kv for b in found]
    if n == 0:
        return None
    buffer.rewind(n, local)
    return buffer, n


@torch.inference_mode()
def prefill(model, ids: list[int], chunk: int, prefix_cache: PrefixCache | None = None,
            progress: Callable[[int, int], None] | None = None,
            capacity: int = 0, resident: Resident | None = None) -> PrefillResult:
    """Run `ids` through `model`, reusing the resident buffer's prefix (the device tier) or
    cached blocks (host memory, then disk); at least the last token is computed."""
    t0 = time.perf_counter()
    size = prefix_cache.block if prefix_cache is not None else 0
    capacity = max(capacity, len(ids))
    keys: list[str] = prefix_cache.keys(ids) if prefix_cache is not None else []
    reused = None
    if prefix_cache is not None:
        reused = _from_resident(resident, ids, keys[: (len(ids) - 1) // size], prefix_cache,
                                capacity)
    if reused is not None:
        buffer, done = reused
    else:
        if resident is not None:
            resident.release()  # its device memory goes back before a new buffer takes it
        blocks: list[KVBlock] = []
        if prefix_cache is not None:
            blocks = prefix_cache.lookup(keys[: (len(ids) - 1) // size])
        buffer = KVBuffer.for_model(model, buffer_capacity(capacity),
                                    hybrid=hybrid_for(model, prefix_cache))
        done = buffer.load([b.kv for b in blocks])
    cached = done
    cache = buffer.cache
    stored = 0  # blocks copied out to the prefix cache so far
    logits = None
    while done < len(ids):
        stop = min(len(ids), done + chunk, buffer.chunk_end(done) or len(ids))
        piece = torch.tensor([ids[done:stop]], dtype=torch.long, device=buffer.device)
        with maskless(model, bool(buffer.chunk)):
            out = model(input_ids=piece, cache=cache, use_cache=True, logits_to_keep=1)
        logits = out.logits[0, -1].float()
        done = stop
        if buffer.chunk and size:  # copied out while the local layers still hold them
            first, last = cached // size + stored, min(done // size, len(keys))
            if last > first:
                prefix_cache.store(keys[first:last], [KVBlock(kv) for kv in buffer.blocks(
                    first * size, last * size, size)], evict=False)
                stored += last - first
        if progress:
            progress(done, len(ids))
    assert logits is not None
    return PrefillResult(buffer=buffer, logits=logits, cached_tokens=cached,
                         prefill_s=time.perf_counter() - t0, new_keys=keys[cached // size:]
                         if size else [], stored=stored)


def save_blocks(prefix_cache: PrefixCache, result: PrefillResult) -> None:
    """Store the prompt's new full blocks (call before or after decoding: decode only appends)."""
    if not result.new_keys:
        return
    size = prefix_cache.block
    first = result.cached_tokens // size + result.stored
    keys = result.new_keys[result.stored:]
    if keys:
        prefix_cache.store(keys, [KVBlock(kv) for kv in result.buffer.blocks(
            first * size, (first + len(keys)) * size, size)], evict=False)
    if prefix_cache.disk is not None:
        prefix_cache.disk.evict()


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
        with maskless(model, bool(result.buffer.chunk)):
            out = model(input_ids=torch.tensor([[token]], device=device), cache=cache,
                        use_cache=True)
        logits = out.logits[0, -1].float()
