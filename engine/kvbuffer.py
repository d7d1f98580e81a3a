"""The KV cache of one generation: preallocated tensors on the model's device that transformers'
layers view, in Llama 4's hybrid shape when the model has chunked local attention.

transformers' DynamicLayer grows by torch.cat on every step, copying the whole cache for each
decoded token (70% of decode time at 7K tokens here). Knowing the final length up front (prompt +
max_tokens), KVBuffer allocates once; each layer writes in place and hands attention a view of
its filled part.

Llama 4's local layers (`layer_types` "chunked_attention") attend only inside their current
`attention_chunk_size` chunk, so, as vLLM's hybrid KV manager does, each keeps that chunk alone
(a fixed [2, heads, chunk, dim] per layer) and only the global layers keep every token: on Scout,
48 KiB of KV per token in bf16 instead of 192 KiB. The caller must not feed a piece that crosses
a chunk edge (`chunk_end` says where the next edge is). Blocks leave the buffer as host-memory
copies ([2, layers, heads, n, dim], every layer), so the prefix cache's memory and disk tiers
hold what a later prompt needs whatever the device.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class _BufferLayer(DynamicLayer):
    """A global layer: every position, in slot `slot` of the buffer's full-length store."""

    def __init__(self, owner: KVBuffer, slot: int):
        super().__init__()
        self.owner, self.slot, self.filled = owner, slot, 0

    def _store(self) -> torch.Tensor:
        return self.owner.store

    def _start(self, position: int) -> int:
        """The first position this layer keeps when the next token is at `position`."""
        return 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.is_initialized = True
        self._views()

    def _views(self) -> None:
        store, start = self._store(), self._start(max(0, self.filled - 1))
        self.keys = store[0, self.slot][:, :, : self.filled - start]
        self.values = store[1, self.slot][:, :, : self.filled - start]

    def _make_room(self, end: int) -> None:
        self.owner.ensure(end)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, new = self.filled, key_states.shape[-2]
        start = self._start(n)
        self._make_room(n + new)
        store = self._store()
        store[0, self.slot][:, :, n - start:n - start + new].copy_(key_states)
        store[1, self.slot][:, :, n - start:n - start + new].copy_(value_states)
        self.filled = n + new
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.filled  # absolute: positions and temperature tuning count from here

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        start = self._start(self.filled)
        return self.filled - start + query_length, start

    def reset(self) -> None:
        self.filled = 0
        super().reset()


class _ChunkLayer(_BufferLayer):
    """A chunked local layer: only the current attention chunk, in slot `slot` of the buffer's
    chunk-sized store. transformers' chunked mask reads the offset from `get_mask_sizes`."""

    is_sliding = True

    def _store(self) -> torch.Tensor:
        return self.owner.local_store

    def _start(self, position: int) -> int:
        return position // self.owner.chunk * self.owner.chunk

    def _make_room(self, end: int) -> None:
        start = self._start(self.filled)
        if end - start > self.owner.chunk:
            raise ValueError(f"a piece of KV from position {self.filled} to {end} crosses the "
                             f"attention chunk edge at {start + self.owner.chunk}")


class KVBuffer:
    """K and V for every layer of one generation. `chunk` > 0 with `local` layer indices gives
    the hybrid shape (see the module's docstring)."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, capacity: int,
                 dtype: torch.dtype, device: torch.device | str = "cpu", chunk: int = 0,
                 local: frozenset[int] = frozenset()):
        self.chunk = chunk if local else 0
        self.local = sorted(local) if self.chunk else []
        self.globals = [i for i in range(layers) if i not in set(self.local)]
        self.n_layers = layers
        self.store = torch.empty((2, len(self.globals), 1, kv_heads, max(1, capacity), head_dim),
                                 dtype=dtype, device=device)
        self.local_store = torch.empty((2, len(self.local), 1, kv_heads, self.chunk, head_dim),
                                       dtype=dtype, device=device)
        slot = {i: s for s, i in enumerate(self.globals)} | {i: s for s, i in enumerate(self.local)}
        self.layers = [(_ChunkLayer if i in local and self.chunk else _BufferLayer)(self, slot[i])
                       for i in range(layers)]
        self.cache = Cache(layers=self.layers)

    @classmethod
    def for_model(cls, model, capacity: int, hybrid: bool = True) -> KVBuffer:
        cfg = model.config
        heads = cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        return cls(cfg.num_hidden_layers, kv_heads, head_dim, capacity, model.dtype,
                   model.device, *(local_layers(cfg) if hybrid else (0, frozenset())))

    @staticmethod
    def bytes_needed(model, capacity: int, hybrid: bool = True) -> int:
        """What `for_model` would allocate, without allocating it."""
        cfg = model.config
        heads = cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        chunk, local = local_layers(cfg) if hybrid else (0, frozenset())
        per_token = 2 * kv_heads * head_dim * torch.finfo(model.dtype).bits // 8
        return per_token * ((cfg.num_hidden_layers - len(local)) * max(1, capacity)
                            + len(local) * chunk)

    @property
    def device(self) -> torch.device:
        return self.store.device

    @property
    def capacity(self) -> int:
        return self.store.shape[4]

    @property
    def filled(self) -> int:
        return self.layers[0].filled

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.store, self.local_store))

    def chunk_end(self, position: int) -> int | None:
        """The next attention chunk edge after `position` (None: no chunked layers)."""
        return (position // self.chunk + 1) * self.chunk if self.chunk else None

    def ensure(self, length: int) -> None:
        """Grow (geometrically, once in a while) if a generation runs past the planned length."""
        if length <= self.capacity:
            return
        shape = list(self.store.shape)
        shape[4] = max(length, 2 * self.capacity)
        bigger = self.store.new_empty(shape)
        bigger[..., : self.capacity, :].copy_(self.store)
        self.store = bigger
        for layer in self.layers:
            if layer.is_initialized:
                layer._views()

    def load(self, blocks: list[torch.Tensor]) -> int:
        """Copy reused blocks ([2, layers, heads, block, dim] each, any device) in at the start:
        every block into the global layers, the current chunk's into the local ones."""
        total = sum(kv.shape[3] for kv in blocks)
        start = total // self.chunk * self.chunk if self.chunk else 0
        self.ensure(total)
        pos = 0
        for kv in blocks:
            n = kv.shape[3]
            kv = kv.to(self.device, non_blocking=True)
            self.store[:, :, 0, :, pos:pos + n].copy_(kv[:, self.globals])
            if self.local and pos + n > start:
                skip = max(0, start - pos)
                self.local_store[:, :, 0, :, pos + skip - start:pos + n - start].copy_(
                    kv[:, self.local, :, skip:])
            pos += n
        for layer in self.layers:
            layer.filled = pos
            if pos:
                layer.lazy_initialization(self.store[0, 0], self.store[1, 0])
        return pos

    def local_start(self) -> int | None:
        """The first position the local layers hold (None: no local layers or nothing held)."""
        if not self.local or not self.filled:
            return None
        return self.layers[self.local[0]]._start(self.filled - 1)

    def rewind(self, length: int, local_blocks: list[torch.Tensor] | None = None) -> None:
        """Keep positions [0, length) for the next prompt (the device tier). The global layers
        hold them in place; the local layers' chunk comes from `local_blocks` (that chunk's
        blocks from its start to `length`, every layer) unless they are still in it."""
        if length > self.filled:
            raise ValueError(f"cannot keep {length} positions of {self.filled}")
        if local_blocks is not None:
            pos = 0
            for kv in local_blocks:
                n = kv.shape[3]
                self.local_store[:, :, 0, :, pos:pos + n].copy_(
                    kv[:, self.local].to(self.device, non_blocking=True))
                pos += n
        for layer in self.layers:
            layer.filled = length
            if layer.is_initialized:
                layer._views()

    def blocks(self, start: int, end: int, size: int) -> list[torch.Tensor]:
        """Positions [start, end) as host-memory blocks of `size`, each its own storage, in
        one transfer from the device (not one per block)."""
        whole = self.block(start, end)
        return [whole[:, :, :, i:i + size].clone() for i in range(0, end - start, size)]

    def block(self, start: int, end: int) -> torch.Tensor:
        """A host-memory copy of positions [start, end) for every layer: [2, layers, heads,
        end-start, dim]. A local layer holds them only while they are in its current chunk."""
        kv = self.store
        out = torch.empty((2, self.n_layers, kv.shape[3], end - start, kv.shape[5]),
                          dtype=kv.dtype, device="cpu")
        out[:, self.globals] = kv[:, :, 0, :, start:end].to("cpu")
        if self.local:
            first = self.layers[self.local[0]]._start(max(0, self.filled - 1))
            if start < first or end > first + self.chunk:
                raise ValueError(f"positions {start}-{end} are no longer in the local layers' "
                                 f"chunk ({first}-{first + self.chunk})")
            out[:, self.local] = self.local_store[:, :, 0, :, start - first:end - first].to("cpu")
        return out


def local_layers(cfg) -> tuple[int, frozenset[int]]:
    """(attention chunk size, indices of the chunked local layers) of a config; (0, {}) when it
    has none (a plain decoder: every layer keeps every token)."""
    chunk = int(getattr(cfg, "attention_chunk_size", None) or 0)
    types = getattr(cfg, "layer_types", None) or []
    local = frozenset(i for i, t in enumerate(types) if t == "chunked_attention")
    return (chunk, local) if chunk and local else (0, frozenset())
