"""Attention for a hybrid KV buffer without a mask in memory: lower-right causal SDPA.

With engine.kvbuffer's hybrid shape every layer's keys are exactly what its queries may see up
to causality: a global layer holds every earlier token, a chunked local layer only its current
chunk (prefill pieces never cross a chunk edge). So one rule serves both, "each query sees the
keys up to its own position, counted from the right", which torch's SDPA takes as a
`causal_lower_right` bias: the flash and memory-efficient kernels on a GPU, with no
[piece x context] mask built (transformers builds one for the global layers: 8 GiB of booleans
for an 8,192-token piece at 1M tokens, and a float copy on top). Registered with transformers'
AttentionInterface under a name its mask builders do not know, so they build none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right
from transformers import AttentionInterface

NAME = "scoutlens_lower_right"


def lower_right_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          attention_mask: torch.Tensor | None, dropout: float = 0.0,
                          scaling: float | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """query [batch, heads, q, dim], key and value [batch, kv heads, k, dim] (k >= q)."""
    q, k = query.shape[2], key.shape[2]
    if q == 1:
        mask, causal = None, False  # one new token sees every key
    elif q == k:
        mask, causal = None, True
    else:
        mask, causal = causal_lower_right(q, k), False
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=causal,
                                         scale=scaling, enable_gqa=key.shape[1] != query.shape[1])
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, lower_right_attention)


@contextmanager
def maskless(model, on: bool = True) -> Iterator[None]:
    """The model's attention is lower_right_attention while inside (one forward call: the
    config is shared by every layer, and callers take turns on the model)."""
    if not on:
        yield
        return
    config = model.config
    before = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = before
