"""`scoutlens plan`: will a context fit on these GPUs, what a cold prefill costs, which vLLM flags.

All arithmetic lives in engine.planner and engine.sizing (memory and FLOPs model, documented
there), the flags in engine.vllm_flags; this module parses options and prints: a rich table, or
with --json the plan (and its vLLM launch) as JSON only.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.commands.options import OffloadDirOpt, OffloadGbOpt, json_option, port_option
from engine.types import EngineError

console = Console(stderr=True)
out = Console()


def _hybrid(value: str) -> bool | None:
    v = value.strip().lower()
    if v not in ("on", "off", "auto"):
        raise EngineError(f"--hybrid-kv must be on | off | auto, not {value!r}")
    return None if v == "auto" else v == "on"


def _print(p, port: int) -> None:
    from engine.vllm_flags import launch_for_plan

    table = Table(title=f"plan: {p.arch.name} on {p.gpus}", show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    for label, value in p.rows():
        table.add_row(label, value)
    out.print(table)
    ctx = p.context if p.context is not None else p.max_model_len
    if p.fits:
        out.print(f"[green]fits[/]: {ctx:,} tokens for one request")
    else:
        out.print(f"[red]does not fit[/]: {'; '.join(p.reasons) or f'{ctx:,} tokens'}")
        if p.suggestions:
            out.print("it would fit with:")
            for s in p.suggestions:
                most = "any length" if s["max_tokens"] is None else f"{s['max_tokens']:,} tokens"
                out.print(f"  [cyan]{s['change']}[/]  (KV for {most})")
        else:
            out.print("nothing within reach fits: shorten the context")
    launch = launch_for_plan(p, port)
    out.print("[bold]vLLM[/]" + (" (multi-node, Ray)" if launch.multi_node else "")
              + ("" if p.fits else " [red](would refuse this --max-model-len)[/]") + ":")
    for cmd in launch.ray:
        out.print(f"  {cmd}", markup=False, highlight=False, soft_wrap=True)
    out.print(f"  {launch.serve_command()}", markup=False, highlight=False, soft_wrap=True)
    for note in [*launch.notes, *p.notes]:
        out.print(f"[dim]- {note}[/]", highlight=False)


def plan(
    model: Annotated[str, typer.Option(
        help="scout | maverick | a local model folder with config.json")] = "scout",
    gpus: Annotated[str, typer.Option(
        help="1xH100 | 8xH100 | 8xH200 | NODESx8xH100 (multi-node) | cpu")] = "8xH100",
    weights: Annotated[str, typer.Option(help="bf16 | fp8 | int4")] = "bf16",
    kv_dtype: Annotated[str, typer.Option("--kv-dtype", help="bf16 | fp8")] = "bf16",
    hybrid_kv: Annotated[str, typer.Option(
        "--hybrid-kv", help="vLLM's hybrid KV cache manager: on | off | auto (auto: on "
                            "only when the context needs it)")] = "auto",
    context: Annotated[str | None, typer.Option(
        help="tokens for one request: 131072, 256k, 1M, 10M (k = 1,024, M = 1,048,576); "
             "default: the most that fits")] = None,
    gpu_util: Annotated[float, typer.Option(
        "--gpu-util", help="vLLM --gpu-memory-utilization (0.95 is common on one GPU)")]
    = 0.90,
    overhead: Annotated[float, typer.Option(
        "--overhead", help="GiB per GPU outside weights and KV (activations, CUDA graphs, "
                           "NCCL); ~6 on a single GPU")] = 10.0,
    mfu: Annotated[float, typer.Option(help="fraction of bf16 dense peak a prefill reaches")]
    = 0.45,
    batched: Annotated[int | None, typer.Option(
        "--max-batched-tokens", help="vLLM --max-num-batched-tokens (prefill chunk); default "
        "8192 on GPUs, 2048 on CPU")] = None,
    new_tokens: Annotated[int, typer.Option(
        "--new-tokens", help="new prompt tokens of a warm follow-up")] = 1000,
    offload_gb: OffloadGbOpt = None,
    offload_dir: OffloadDirOpt = None,
    port: Annotated[int, port_option("port in the printed command", checked=False)] = 8000,
    as_json: Annotated[bool, json_option("print the plan as JSON only")] = False,
) -> None:
    """Size a model on GPUs: weights and KV per GPU, the longest context, whether yours fits
    (and what would make it fit), cold prefill and warm follow-up times, the vLLM command."""
    from engine.gpus import GpuSpec
    from engine.offload import KvOffload
    from engine.planner import parse_context
    from engine.planner import plan as make_plan

    p = make_plan(model, gpus, weights, kv_dtype, _hybrid(hybrid_kv),
                  parse_context(context) if context is not None else None,
                  gpu_memory_utilization=gpu_util, overhead_gib_per_gpu=overhead, mfu=mfu,
                  max_num_batched_tokens=batched, new_tokens=new_tokens,
                  offload=KvOffload.from_options(offload_gb, offload_dir,
                                                 cpu=GpuSpec.parse(gpus).is_cpu))
    if as_json:
        from engine.vllm_flags import launch_for_plan

        out.print_json(json.dumps({**p.to_json(), "vllm": launch_for_plan(p, port).to_json()}))
        return
    _print(p, port)
