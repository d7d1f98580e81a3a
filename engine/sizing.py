"""The memory and compute sides of one configuration: weights and the KV pool per GPU, the most
tokens one request can hold, prefill FLOPs and time.

Memory follows vLLM's model: each GPU gives `gpu_memory_utilization` x its CUDA-visible memory;
weights (split over tensor x pipeline ranks) and a fixed per-GPU overhead come off it; what
remains is the KV pool. One request's KV is all layers' K and V per token, or, with vLLM's
hybrid KV cache manager, only the global layers' per token plus the local layers' bounded window
(local layers x (chunk + max_num_batched_tokens) tokens).

Prefill FLOPs = 2 x decoder matmul weights per token (routed + shared experts; lm_head only for
the last position, as vLLM computes logits) + attention, 4 x q_dim FLOPs per (query, key) pair
per layer: global layers see every earlier token (the N^2 term), chunked local layers only their
own chunk. Time = FLOPs / (tensor-parallel GPUs x bf16 dense peak x MFU), or the weight+KV read
time at HBM bandwidth when that is longer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.arch import ModelArch
from engine.gpus import GIB, GpuSpec

KIB = 1024
WEIGHTS = ("bf16", "fp8", "int4")
KV_DTYPES = ("bf16", "fp8")
KV_BYTES = {"bf16": 2.0, "fp8": 1.0}
# Bytes per quantized decoder weight: int4 = w4a16 with a bf16 scale per group of 128.
WEIGHT_BYTES = {"bf16": 2.0, "fp8": 1.0, "int4": 0.5 + 2 / 128}
DEFAULT_OVERHEAD_GIB = 10.0
DEFAULT_UTIL = 0.90
BLOCK = 16  # vLLM's KV block: capacities are whole blocks



# --- memory ------------------------------------------------------------------------------------

def weight_bytes(arch: ModelArch, weights: str) -> int:
    """Checkpoint bytes: quantized checkpoints quantize the decoder's attention and expert/MLP
    matrices; embeddings, lm_head, routers, norms and the vision tower stay bf16."""
    quantized = arch.decoder_linear_params
    return int(quantized * WEIGHT_BYTES[weights] + (arch.total_params - quantized) * 2)


@dataclass(frozen=True)
class Sizing:
    """The memory side of one configuration."""

    tp: int
    pp: int
    weight_bytes: int
    weight_bytes_per_gpu: int
    budget_bytes_per_gpu: int
    pool_bytes_per_gpu: int
    pool_bytes: int
    kv_bytes_per_token_all: float
    kv_bytes_per_token_global: float
    kv_bytes_per_token: float
    local_bytes_per_request: int
    max_tokens: int | None  # None: every layer windowed, KV does not grow with the context


def _kv_replication(arch: ModelArch, tp: int) -> float:
    """With more tensor ranks than KV heads, each KV head is stored on tp/kv_heads GPUs."""
    per_gpu = max(1, math.ceil(arch.kv_heads / tp))
    return per_gpu * tp / arch.kv_heads


def size(arch: ModelArch, gpus: GpuSpec, weights: str, kv_dtype: str, hybrid_kv: bool, *,
         gpu_memory_utilization: float = DEFAULT_UTIL,
         overhead_gib_per_gpu: float = DEFAULT_OVERHEAD_GIB, max_num_batched_tokens: int = 8192,
         cpu_kv_cache_gib: float = 2.0) -> Sizing:
    """KV pool and the most tokens one request can hold, for one configuration."""
    tp, pp = (1, 1) if gpus.is_cpu else (gpus.per_node, gpus.nodes)
    wb = weight_bytes(arch, weights)
    layer = arch.kv_bytes_per_token_layer(KV_BYTES[kv_dtype]) * _kv_replication(arch, tp)
    per_all = layer * arch.layers
    per_global = layer * arch.n_global
    window = arch.local_window
    hybrid = hybrid_kv and arch.mixed_attention
    if gpus.kind is None:  # vLLM-CPU: weights in host RAM, KV in VLLM_CPU_KVCACHE_SPACE
        budget = wb_gpu = 0
        pool_gpu = int(cpu_kv_cache_gib * GIB)
    else:
        budget = int(gpus.kind.usable_gib * GIB * gpu_memory_utilization)
        wb_gpu = math.ceil(wb / (tp * pp))
        pool_gpu = int(budget - wb_gpu - overhead_gib_per_gpu * GIB)
    pool = pool_gpu * tp * pp
    if window and (hybrid or arch.n_global == 0):
        per_token = per_global
        local = int(layer * arch.n_local * (window + max_num_batched_tokens))
    else:
        per_token, local = per_all, 0
    if pool <= local:
        tokens: int | None = 0
    elif per_token == 0:
        tokens = None
    else:
        tokens = int((pool - local) // per_token) // BLOCK * BLOCK
    return Sizing(tp, pp, wb, wb_gpu, budget, pool_gpu, pool, per_all, per_global, per_token,
                  local, tokens)


# --- compute -----------------------------------------------------------------------------------

def _causal_keys(a: int, b: int) -> int:
    """Sum over positions p in [a, b) of the keys p sees under full causal attention."""
    return (b * (b + 1) - a * (a + 1)) // 2


def _chunk_keys(n: int, chunk: int) -> int:
    full, rest = divmod(n, chunk)
    return full * chunk * (chunk + 1) // 2 + rest * (rest + 1) // 2


def _window_keys(n: int, window: int) -> int:
    if n <= window:
        return n * (n + 1) // 2
    return window * (window + 1) // 2 + (n - window) * window


def attention_flops(arch: ModelArch, start: int, end: int) -> float:
    """QK^T and AV for the queries at positions [start, end): 4 x q_dim per (query, key) pair."""
    pair = 4 * arch.q_dim
    flops = pair * arch.n_global * _causal_keys(start, end)
    if arch.n_local:
        if arch.attention_chunk_size:
            keys = (_chunk_keys(end, arch.attention_chunk_size)
                    - _chunk_keys(start, arch.attention_chunk_size))
        elif arch.sliding_window:
            keys = _window_keys(end, arch.sliding_window) - _window_keys(start, arch.sliding_window)
        else:
            keys = _causal_keys(start, end)
        flops += pair * arch.n_local * keys
    return float(flops)


def prefill_flops(arch: ModelArch, new_tokens: int, cached: int = 0) -> float:
    """FLOPs to prefill `new_tokens` prompt tokens after `cached` tokens already in KV."""
    dense = 2.0 * arch.matmul_params_per_token * new_tokens + 2.0 * arch.lm_head_params
    return dense + attention_flops(arch, cached, cached + new_tokens)


@dataclass(frozen=True)
class Cost:
    tokens: int
    cached: int
    flops: float
    compute_s: float | None
    memory_s: float | None

    @property
    def seconds(self) -> float | None:
        if self.compute_s is None or self.memory_s is None:
            return None
        return max(self.compute_s, self.memory_s)

    def to_json(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "cached_tokens": self.cached, "flops": self.flops,
                "compute_s": self.compute_s, "memory_s": self.memory_s, "seconds": self.seconds}


def cost(arch: ModelArch, gpus: GpuSpec, s: Sizing, new_tokens: int, cached: int, mfu: float,
         max_num_batched_tokens: int) -> Cost:
    """A prefill's time on `gpus`. A single request's chunks pass the pipeline stages one after
    the other, so only one stage (tp GPUs) computes at a time: more nodes add memory, not speed.
    The memory floor reads every stage's weights once per chunk plus the cached KV."""
    flops = prefill_flops(arch, new_tokens, cached)
    if gpus.kind is None:
        return Cost(new_tokens, cached, flops, None, None)
    compute = flops / (s.tp * gpus.kind.bf16_tflops * 1e12 * mfu)
    steps = math.ceil(new_tokens / max_num_batched_tokens)
    bw = gpus.kind.bandwidth_tbs * 1e12
    weights = steps * s.weight_bytes / s.tp
    # chunk i attends over the cached tokens and the i chunks before it: their KV is read again
    kv_tokens = steps * cached + max_num_batched_tokens * steps * (steps - 1) / 2
    kv_read = s.kv_bytes_per_token * kv_tokens / s.tp
    return Cost(new_tokens, cached, flops, compute, (weights + kv_read) / bw)
