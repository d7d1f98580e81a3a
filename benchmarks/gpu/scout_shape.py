"""Scout's shape on one GPU: prefill at 32K-1M tokens, a warm follow-up over the cached prefix,
KV bytes per token against the planner, and a restart that reloads the prefix from disk.

A random-weight model with Llama 4 Scout's real widths (hidden 5120, 40 query / 8 KV heads of
128, 16 experts of 8192 routed top-1 plus a shared expert, vocabulary 202,048, iRoPE: RoPE and
chunked local attention over 8,192-token chunks in three layers of four, a global NoPE layer
with attention-temperature tuning in the fourth) but 4 layers, not 48: one period of the
iRoPE pattern holds every kind of layer Scout has, each layer's cost is the same at any depth,
and 4 layers (~11B parameters, 22 GB in bf16) leave an H100 room for 1M tokens of KV. The
planner's figures for the same 4-layer shape are printed beside the measurements, so the
comparison needs no extrapolation.

The model is written here (as gpt-fast writes one) rather than taken from transformers, whose
Llama 4 runs every expert on every token (16x the MoE FLOPs) and builds dense masks over the
whole cache: here each token goes to its one expert, and attention is PyTorch's SDPA with a
lower-right causal bias (flash or memory-efficient kernels, no mask in memory). Its outputs
equal transformers' Llama4ForCausalLM on the same weights (tests/unit/test_scout_shape.py).

KV is kept the way vLLM's hybrid manager keeps it: the global layer holds every token's K and V,
each local layer only its current 8,192-token chunk. Tiers: device memory, then host memory
(pinned), then disk (safetensors, fsynced and dropped from the page cache before it is read
back, so the read is the disk's).

Runs where the GPU machine's Python runs as it is: torch, numpy and safetensors, plus the
planner (engine/arch.py, sizing.py, gpus.py: standard library only). `--tiny` is a tiny shape
on the CPU in seconds, what the tests run so this script cannot rot.

Usage: python benchmarks/gpu/scout_shape.py [--tiny] [--device cuda|cpu]
       [--lengths 32K,128K,512K,1M] [--question 128] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.arch import SCOUT, ModelArch  # noqa: E402  (after the repository is on the path)
from engine.gpus import GPU_KINDS  # noqa: E402
from engine.sizing import prefill_flops  # noqa: E402

PLANNER_MFU = 0.45  # `scoutlens plan`'s default


@dataclass(frozen=True)
class Shape:
    hidden: int = 5120
    heads: int = 40
    kv_heads: int = 8
    head_dim: int = 128
    experts: int = 16
    inter: int = 8192  # each expert's and the shared expert's FFN width
    vocab: int = 202_048
    layers: int = 4  # layer i is global (NoPE) when (i + 1) % 4 == 0
    chunk: int = 8192  # attention_chunk_size of the local layers
    rope_theta: float = 500_000.0
    rope_factor: float = 16.0  # llama3 RoPE scaling, as Scout's config
    low_freq: float = 1.0
    high_freq: float = 1.0
    original_max: int = 8192
    floor_scale: int = 8192  # attention temperature tuning on the global layers
    attn_scale: float = 0.1
    eps: float = 1e-5

    def is_global(self, i: int) -> bool:
        return (i + 1) % 4 == 0

    def arch(self) -> ModelArch:
        """The planner's description of this shape."""
        if self == Shape():
            return dataclasses.replace(SCOUT, name="scout-4-layers", layers=4, vision_params=0)
        return ModelArch(name="tiny", layers=self.layers, hidden=self.hidden, q_heads=self.heads,
                         kv_heads=self.kv_heads, head_dim=self.head_dim, vocab=self.vocab,
                         dense_intermediate=self.inter, expert_intermediate=self.inter,
                         num_experts=self.experts, experts_per_token=1, shared_expert=True,
                         global_layer_step=4, attention_chunk_size=self.chunk, family="llama4")


TINY = Shape(hidden=64, heads=4, kv_heads=2, head_dim=16, experts=4, inter=96, vocab=512,
             chunk=32, original_max=32, floor_scale=32, rope_factor=8.0, low_freq=1.0,
             high_freq=4.0)


# --- the model ----------------------------------------------------------------------------------

def rope_inv_freq(s: Shape) -> torch.Tensor:
    """Llama 3 RoPE scaling of the inverse frequencies (transformers' `llama3` rope type)."""
    inv = 1.0 / (s.rope_theta ** (torch.arange(0, s.head_dim, 2, dtype=torch.float64)
                                  / s.head_dim))
    if not s.rope_factor:
        return inv.float()
    low_wavelen, high_wavelen = s.original_max / s.low_freq, s.original_max / s.high_freq
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > low_wavelen, inv / s.rope_factor, inv)
    if s.high_freq != s.low_freq:
        smooth = (s.original_max / wavelen - s.low_freq) / (s.high_freq - s.low_freq)
        mixed = (1 - smooth) * scaled / s.rope_factor + smooth * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        scaled = torch.where(medium, mixed, scaled)
    return scaled.float()


def rms(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    y = x.float()
    y = (y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + eps)).type_as(x)
    return y if weight is None else y * weight


def random_weights(s: Shape, device: str, dtype: torch.dtype, seed: int = 0) -> dict:
    """Weights laid out as transformers' Llama4ForCausalLM names and shapes them (so the test
    can load the same ones there), drawn small enough that activations stay finite."""
    g = torch.Generator(device=device).manual_seed(seed)

    def w(*shape: int, std: float = 0.02) -> torch.Tensor:
        drawn = torch.randn(*shape, generator=g, device=device, dtype=torch.float32)
        return (drawn * std).to(dtype)

    out = {"model.embed_tokens.weight": w(s.vocab, s.hidden),
           "model.norm.weight": torch.ones(s.hidden, device=device, dtype=dtype),
           "lm_head.weight": w(s.vocab, s.hidden)}
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    for i in range(s.layers):
        p = f"model.layers.{i}."
        out |= {p + "input_layernorm.weight": torch.ones(s.hidden, device=device, dtype=dtype),
                p + "post_attention_layernorm.weight": torch.ones(s.hidden, device=device,
                                                                   dtype=dtype),
                p + "self_attn.q_proj.weight": w(q, s.hidden),
                p + "self_attn.k_proj.weight": w(kv, s.hidden),
                p + "self_attn.v_proj.weight": w(kv, s.hidden),
                p + "self_attn.o_proj.weight": w(s.hidden, q),
                p + "feed_forward.router.weight": w(s.experts, s.hidden, std=0.5),
                p + "feed_forward.experts.gate_up_proj": w(s.experts, s.hidden, 2 * s.inter),
                p + "feed_forward.experts.down_proj": w(s.experts, s.inter, s.hidden),
                p + "feed_forward.shared_expert.gate_proj.weight": w(s.inter, s.hidden),
                p + "feed_forward.shared_expert.up_proj.weight": w(s.inter, s.hidden),
                p + "feed_forward.shared_expert.down_proj.weight": w(s.hidden, s.inter)}
    return out


class Cache:
    """KV as vLLM's hybrid manager keeps it: every token's in the global layers, the current
    attention chunk's in each local layer. `length` tokens are filled."""

    def __init__(self, s: Shape, capacity: int, device: str, dtype: torch.dtype):
        self.s, self.capacity, self.length = s, capacity, 0
        self.kv = {}
        for i in range(s.layers):
            n = capacity if s.is_global(i) else s.chunk
            self.kv[f"k{i}"] = torch.empty(s.kv_heads, n, s.head_dim, device=device, dtype=dtype)
            self.kv[f"v{i}"] = torch.empty(s.kv_heads, n, s.head_dim, device=device, dtype=dtype)

    def nbytes(self, kind: str) -> int:
        return sum(t.numel() * t.element_size() for name, t in self.kv.items()
                   if self.s.is_global(int(name[1:])) == (kind == "global"))


class ScoutShape:
    def __init__(self, s: Shape, weights: dict):
        self.s, self.w = s, weights
        self.inv_freq = rope_inv_freq(s).to(weights["lm_head.weight"].device)

    def _rope(self, x: torch.Tensor, pos0: int) -> torch.Tensor:
        """Rotate pairs (0,1), (2,3)... by position, as transformers' Llama 4 (complex form)."""
        t = torch.arange(pos0, pos0 + x.shape[0], device=x.device, dtype=torch.float32)
        freqs = torch.polar(torch.ones(t.shape[0], self.inv_freq.shape[0], device=x.device),
                            t[:, None] * self.inv_freq[None, :])
        xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * freqs[:, None, :]).flatten(2).type_as(x)

    def _attention(self, i: int, h: torch.Tensor, pos0: int, cache: Cache) -> torch.Tensor:
        s, w, p = self.s, self.w, f"model.layers.{i}.self_attn."
        n = h.shape[0]
        q = (h @ w[p + "q_proj.weight"].T).view(n, s.heads, s.head_dim)
        k = (h @ w[p + "k_proj.weight"].T).view(n, s.kv_heads, s.head_dim)
        v = (h @ w[p + "v_proj.weight"].T).view(n, s.kv_heads, s.head_dim)
        if not s.is_global(i):  # RoPE, then the weightless qk norm
            q, k = self._rope(q, pos0), self._rope(k, pos0)
            q, k = rms(q, None, s.eps), rms(k, None, s.eps)
        else:  # NoPE with attention temperature tuning
            t = torch.arange(pos0, pos0 + n, device=h.device, dtype=torch.float32)
            scale = torch.log1p(torch.floor((t + 1.0) / s.floor_scale)) * s.attn_scale + 1.0
            q = (q * scale[:, None, None]).to(q.dtype)
        kc, vc = cache.kv[f"k{i}"], cache.kv[f"v{i}"]
        start = 0 if s.is_global(i) else pos0 // s.chunk * s.chunk  # the chunk's first position
        kc[:, pos0 - start:pos0 - start + n] = k.transpose(0, 1)
        vc[:, pos0 - start:pos0 - start + n] = v.transpose(0, 1)
        keys = pos0 - start + n
        out = F.scaled_dot_product_attention(
            q.transpose(0, 1)[None], kc[None, :, :keys], vc[None, :, :keys],
            attn_mask=causal_lower_right(n, keys), enable_gqa=True)
        return out[0].transpose(0, 1).reshape(n, -1) @ w[p + "o_proj.weight"].T

    def _moe(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Top-1 routing: each token through its one expert, scaled by the sigmoid of its
        router logit before the expert (as Llama 4 does), plus the shared expert."""
        w, p = self.w, f"model.layers.{i}.feed_forward."
        logits = h @ w[p + "router.weight"].T
        top, expert = logits.max(dim=-1)
        routed_in = h * torch.sigmoid(top.float()).to(h.dtype)[:, None]
        out = torch.zeros_like(h)
        order = torch.argsort(expert)
        counts = torch.bincount(expert, minlength=self.s.experts).tolist()
        first = 0
        for e, count in enumerate(counts):
            if count:
                idx = order[first:first + count]
                gate, up = (routed_in[idx] @ w[p + "experts.gate_up_proj"][e]).chunk(2, dim=-1)
                out[idx] = (F.silu(gate) * up) @ w[p + "experts.down_proj"][e]
                first += count
        shared = (F.silu(h @ w[p + "shared_expert.gate_proj.weight"].T)
                  * (h @ w[p + "shared_expert.up_proj.weight"].T))
        return out + shared @ w[p + "shared_expert.down_proj.weight"].T

    def step(self, tokens: torch.Tensor, pos0: int, cache: Cache) -> torch.Tensor:
        """Tokens at [pos0, pos0 + n), all inside one attention chunk: the last hidden state."""
        w = self.w
        x = w["model.embed_tokens.weight"][tokens]
        for i in range(self.s.layers):
            p = f"model.layers.{i}."
            x = x + self._attention(i, rms(x, w[p + "input_layernorm.weight"], self.s.eps),
                                    pos0, cache)
            x = x + self._moe(i, rms(x, w[p + "post_attention_layernorm.weight"], self.s.eps))
        cache.length = pos0 + tokens.shape[0]
        return x[-1]

    def logits(self, last: torch.Tensor) -> torch.Tensor:
        w = self.w
        return (rms(last, w["model.norm.weight"], self.s.eps) @ w["lm_head.weight"].T).float()

    def prefill(self, tokens: torch.Tensor, cache: Cache, step: int,
                marks: dict[int, float] | None = None, sync=lambda: None) -> torch.Tensor:
        """Chunked prefill after the cache's `length` tokens, in steps of at most `step` that
        never cross an attention chunk; `marks[n]` gets the seconds taken when n tokens are in."""
        pos, end, started = cache.length, cache.length + tokens.shape[0], time.perf_counter()
        base = pos
        stops = sorted(n for n in (marks or {}) if pos < n <= end)  # a piece ends at each mark
        while pos < end:
            stop = min(end, pos + step, (pos // self.s.chunk + 1) * self.s.chunk,
                       *(n for n in stops if n > pos))
            last = self.step(tokens[pos - base:stop - base], pos, cache)
            pos = stop
            if marks is not None and pos in marks:
                sync()
                marks[pos] = time.perf_counter() - started
        return self.logits(last)


# --- tiers ---------------------------------------------------------------------------------------

def save_to_disk(cache: Cache, folder: Path) -> tuple[Path, float]:
    """The filled part of the cache as safetensors, fsynced and dropped from the page cache so
    the next read comes from the disk. Returns the file and the seconds taken."""
    from safetensors.torch import save_file

    started = time.perf_counter()
    n = cache.length
    filled = {name: (t[:, :n] if cache.s.is_global(int(name[1:])) else t).contiguous().cpu()
              for name, t in cache.kv.items()}
    path = folder / "kv.safetensors"
    save_file(filled, str(path), metadata={"length": str(n)})
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return path, time.perf_counter() - started


def load_from_disk(path: Path, cache: Cache, device: str) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device=device) as f:
        cache.length = int(f.metadata()["length"])
        for name in f.keys():  # noqa: SIM118  (safe_open is not a mapping)
            t = f.get_tensor(name)
            cache.kv[name][:, :t.shape[1]] = t


# --- the run -------------------------------------------------------------------------------------

def parse_tokens(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 1024, "M": 1024 * 1024}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * mult)


def peak_tflops(device: str) -> tuple[str, float | None]:
    if device != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name()
    for kind, spec in GPU_KINDS.items():
        if kind in name and "PCIe" not in name:
            return name, spec.bf16_tflops
    return name, None


def run(s: Shape, device: str, lengths: list[int], question: int, step: int, folder: Path,
        dtype: torch.dtype) -> dict:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    arch = s.arch()
    gpu, peak = peak_tflops(device)
    started = time.perf_counter()
    weights = random_weights(s, device, dtype)
    model = ScoutShape(s, weights)
    sync()
    params = sum(t.numel() for t in weights.values())
    longest = max(lengths)
    torch.manual_seed(1)
    tokens = torch.randint(0, s.vocab, (longest + question,), device=device)
    before = torch.cuda.memory_allocated() if device == "cuda" else 0
    cache = Cache(s, longest + question, device, dtype)
    allocated = (torch.cuda.memory_allocated() - before) if device == "cuda" else (
        cache.nbytes("global") + cache.nbytes("local"))
    out: dict = {"device": gpu, "dtype": str(dtype).removeprefix("torch."), "shape":
                 dataclasses.asdict(s), "parameters": params,
                 "planner_parameters": arch.total_params - arch.vision_params,
                 "setup_s": round(time.perf_counter() - started, 2), "step_tokens": step}

    # KV bytes per token: what the global layers allocate per token of capacity, against the
    # planner's global-layer figure; the local layers' chunks are a fixed cost per request
    per_token = cache.nbytes("global") / cache.capacity
    planner_per_token = arch.kv_bytes_per_token_layer(2 if dtype == torch.bfloat16 else 4) \
        * arch.n_global
    out["kv"] = {"allocated_bytes": allocated, "global_bytes_per_token": per_token,
                 "planner_bytes_per_token": planner_per_token,
                 "local_bytes_fixed": cache.nbytes("local"),
                 "planner_local_bytes": arch.kv_bytes_per_token_layer(
                     2 if dtype == torch.bfloat16 else 4) * arch.n_local * s.chunk,
                 "allocated_vs_planner": allocated / (planner_per_token * cache.capacity
                                                      + cache.nbytes("local"))}

    # cold prefill to the longest length, timed at every length asked for (the first n tokens
    # of a longer prefill are exactly a cold prefill of n)
    marks = dict.fromkeys(lengths, 0.0)
    sync()
    model.prefill(tokens[:longest], cache, step, marks, sync)
    out["prefill"] = []
    for n in sorted(lengths):
        flops = prefill_flops(arch, n) - 2.0 * arch.lm_head_params  # lm_head: one token, below
        row = {"tokens": n, "seconds": round(marks[n], 4),
               "tokens_per_s": round(n / marks[n], 1) if marks[n] else None,
               "tflops": round(flops / marks[n] / 1e12, 2) if marks[n] else None,
               "planner_seconds": round(flops / (peak * 1e12 * PLANNER_MFU), 4) if peak else None}
        row["mfu"] = round(row["tflops"] / peak, 3) if peak and row["tflops"] else None
        out["prefill"].append(row)

    # a warm follow-up: the question over the cached prefix, to its first token
    warm = []
    for _ in range(3):
        cache.length = longest
        sync()
        t0 = time.perf_counter()
        warm_logits = model.prefill(tokens[longest:], cache, step)
        warm_logits.argmax().item()
        warm.append(time.perf_counter() - t0)
    cold = marks[longest]
    out["follow_up"] = {"question_tokens": question,
                        "warm_ttft_s": round(statistics.median(warm), 4),
                        "cold_prefill_s": round(cold, 4),
                        "speedup": round(cold / statistics.median(warm), 1),
                        "planner_warm_s": round(prefill_flops(arch, question, longest)
                                                / (peak * 1e12 * PLANNER_MFU), 4) if peak else None}

    # tiers: device -> host (pinned) -> device; device -> disk -> (restart) -> device
    cache.length = longest
    filled = {k: (t[:, :longest] if s.is_global(int(k[1:])) else t) for k, t in cache.kv.items()}
    nbytes = sum(t.numel() * t.element_size() for t in filled.values())
    # pinned host buffers made before the clock starts (allocating pinned memory is slow and
    # done once per process); the copies are what the host tier costs per eviction and reload
    host = {k: torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=device == "cuda")
            for k, t in filled.items()}
    sync()
    t0 = time.perf_counter()
    for k, t in filled.items():
        host[k].copy_(t, non_blocking=True)
    sync()
    to_host = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k, t in host.items():
        filled[k].copy_(t, non_blocking=True)
    sync()
    from_host = time.perf_counter() - t0
    del filled
    del host
    path, to_disk = save_to_disk(cache, folder)
    del cache  # the restart: nothing of the prefix is left in memory
    if device == "cuda":
        torch.cuda.empty_cache()
    restarted = Cache(s, longest + question, device, dtype)
    sync()
    t0 = time.perf_counter()
    load_from_disk(path, restarted, device)
    sync()
    from_disk = time.perf_counter() - t0
    again = model.prefill(tokens[longest:], restarted, step)
    out["tiers"] = {"prefix_bytes": nbytes, "file_bytes": path.stat().st_size,
                    "device_to_host_gb_s": round(nbytes / to_host / 1e9, 2),
                    "host_to_device_gb_s": round(nbytes / from_host / 1e9, 2),
                    "device_to_disk_s": round(to_disk, 3),
                    "disk_to_device_s": round(from_disk, 4),
                    "disk_to_device_gb_s": round(nbytes / from_disk / 1e9, 2),
                    "restart_speedup": round(cold / from_disk, 1),
                    "same_answer_after_restart": bool(torch.equal(again, warm_logits))}
    out["total_s"] = round(time.perf_counter() - started, 1)
    return out


def table(result: dict) -> str:
    lines = [f"{result['device']}, {result['dtype']}, {result['parameters'] / 1e9:.2f}B parameters"
             f" ({result['shape']['layers']} layers)"]
    lines.append(f"{'tokens':>9} {'prefill s':>10} {'tok/s':>10} {'TFLOP/s':>8} {'MFU':>6} "
                 f"{'planner s':>10}")
    for r in result["prefill"]:
        lines.append(f"{r['tokens']:>9} {r['seconds']:>10} {r['tokens_per_s']!s:>10} "
                     f"{r['tflops']!s:>8} {r['mfu']!s:>6} {r['planner_seconds']!s:>10}")
    f, t, kv = result["follow_up"], result["tiers"], result["kv"]
    lines.append(f"warm follow-up ({f['question_tokens']} tokens): {f['warm_ttft_s']} s to the "
                 f"first token, cold {f['cold_prefill_s']} s: {f['speedup']}x "
                 f"(planner: {f['planner_warm_s']} s)")
    lines.append(f"KV: {kv['global_bytes_per_token']:.0f} B/token in the global layers, planner "
                 f"{kv['planner_bytes_per_token']:.0f}; allocated / planner "
                 f"{kv['allocated_vs_planner']:.3f}")
    lines.append(f"restart: {t['disk_to_device_s']} s from disk ({t['disk_to_device_gb_s']} GB/s)"
                 f" vs {f['cold_prefill_s']} s prefill: {t['restart_speedup']}x; host tier "
                 f"{t['device_to_host_gb_s']} / {t['host_to_device_gb_s']} GB/s out / in; same "
                 f"answer after restart: {t['same_answer_after_restart']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny shape on the CPU, in seconds")
    ap.add_argument("--device", choices=("cuda", "cpu"), default=None)
    ap.add_argument("--lengths", default=None, help="e.g. 32K,128K,512K,1M")
    ap.add_argument("--question", type=int, default=None, help="follow-up question tokens")
    ap.add_argument("--step", type=int, default=None, help="prefill step (<= the chunk)")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    a = ap.parse_args(argv)
    s = TINY if a.tiny else Shape()
    device = a.device or ("cuda" if torch.cuda.is_available() and not a.tiny else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 1
    lengths = [parse_tokens(x) for x in (a.lengths or ("128,256,512,1K" if a.tiny
                                                       else "32K,128K,512K,1M")).split(",")]
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    with tempfile.TemporaryDirectory(prefix="scout-shape-") as folder:
        result = run(s, device, lengths, a.question or (8 if a.tiny else 128),
                     a.step or s.chunk, Path(folder), dtype)
    print(table(result))
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
