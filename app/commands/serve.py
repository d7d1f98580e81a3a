"""`scoutlens serve vllm`: start (or print) a vLLM OpenAI-compatible server, wait for it, keep it.

The flags come from the planner (engine.vllm_flags); `--gpus cpu` without `--model` serves the
bundled SmolLM2-135M-Instruct, converted once from its GGUF to a safetensors folder under
SCOUTLENS_HOME. The server runs until Ctrl-C or SIGTERM and is then shut down with its workers.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from app.commands.options import (
    LOOPBACK,
    BackendOpt,
    EndpointOpt,
    HostOpt,
    ModelOpt,
    OffloadDirOpt,
    OffloadGbOpt,
    PortOpt,
    SignInHostOpt,
    shared_option,
)
from app.services.backends import BUNDLED_MODEL as BUNDLED_NAME
from engine.types import EngineError

console = Console(stderr=True)
out = Console()

WEIGHTS = ("bf16", "fp8", "int4")
KV_DTYPES = ("bf16", "fp8")
HYBRID = {"auto": None, "on": True, "off": False}
BUNDLED_WINDOW = 8192


def bundled_model_dir() -> Path:
    from app.settings import get_settings

    return get_settings().home_dir / "models" / BUNDLED_NAME


def log_path(port: int) -> Path:
    """Where a managed vLLM server on `port` logs: SCOUTLENS_HOME/logs, kept after it stops."""
    from app.settings import get_settings

    return get_settings().home_dir / "logs" / f"vllm-{port}.log"


def _choice(value: str, allowed, option: str) -> str:
    v = value.strip().lower()
    if v not in allowed:
        raise EngineError(f"{option} must be one of {' | '.join(allowed)}, not {value!r}")
    return v


def shell_line(argv: list[str], env: dict[str, str]) -> str:
    """`K=V ... python -m ... --flag value`, quoted for a POSIX shell."""
    assignments = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    return " ".join([*assignments, *(shlex.quote(a) for a in argv)])


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM behaves like Ctrl-C while the server runs, so the finally-blocks stop it."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_ignored():
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _default_gpus() -> str:
    if shutil.which("nvidia-smi") is None:
        return "cpu"
    raise EngineError("this machine has GPUs: say which with --gpus 1xH100 | 8xH100 | 8xH200 "
                      "(or --gpus cpu)")


serve_app = typer.Typer(help="Start model servers.", no_args_is_help=True)

@serve_app.command("vllm")
def vllm(
    model: Annotated[str | None, typer.Option(
        help="model folder or Hugging Face id (default: Llama 4 Scout; on --gpus cpu the "
             "bundled SmolLM2-135M-Instruct)")] = None,
    gpus: Annotated[str | None, typer.Option(
        help="1xH100 | 8xH100 | 8xH200 | 2x8xH100 (nodes x GPUs) | cpu (default: cpu on a "
             "machine without GPUs)")]
    = None,
    weights: Annotated[str, typer.Option(help="bf16 | fp8 | int4")] = "bf16",
    kv_dtype: Annotated[str, typer.Option("--kv-dtype", help="bf16 | fp8")] = "bf16",
    hybrid_kv: Annotated[str, typer.Option(
        "--hybrid-kv", help="vLLM's hybrid KV manager for Llama 4: auto | on | off")]
    = "auto",
    context: Annotated[str | None, typer.Option(
        help="max model length: 8192, 256k, 10M (default: what the plan allows)")] = None,
    port: PortOpt = 8000,
    host: HostOpt = LOOPBACK,
    ready_timeout: Annotated[float, typer.Option(
        "--ready-timeout", min=1, help="seconds the starting server may go without writing "
        "to its log before it counts as stuck")] = 900,
    offload_gb: OffloadGbOpt = None,
    offload_dir: OffloadDirOpt = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="print the command (environment and arguments) and exit")] = False,
) -> None:
    """Start the vLLM OpenAI-compatible server with the planner's flags; Ctrl-C stops it."""
    from app.settings import get_settings
    from engine.gpus import GpuSpec
    from engine.offload import KvOffload
    from engine.planner import parse_context
    from engine.vllm_flags import API_MODULE, vllm_launch
    from engine.vllm_server import ManagedServer, find_vllm_python

    configured_python = get_settings().vllm_python  # SCOUTLENS_VLLM_PYTHON
    spec = GpuSpec.parse(gpus or _default_gpus())
    w = _choice(weights, WEIGHTS, "--weights")
    kv = _choice(kv_dtype, KV_DTYPES, "--kv-dtype")
    hybrid = HYBRID[_choice(hybrid_kv, tuple(HYBRID), "--hybrid-kv")]
    ctx = parse_context(context) if context is not None else None
    offload = KvOffload.from_options(offload_gb, offload_dir, cpu=spec.is_cpu)
    served_name = None
    with _sigterm_interrupts():
        if spec.is_cpu and model is None:  # the bundled model, converted once
            if ctx is not None and ctx > BUNDLED_WINDOW:
                raise EngineError(f"--context {ctx:,} exceeds the bundled model's window "
                                  f"of {BUNDLED_WINDOW:,} tokens")
            ctx = ctx or BUNDLED_WINDOW
            target = bundled_model_dir()
            model = str(target if dry_run else _convert(target))
            served_name = BUNDLED_NAME
        elif model is not None and Path(model).expanduser().is_dir():
            model = str(Path(model).expanduser().resolve())
        launch = vllm_launch(model=model, gpus=spec, weights=w, kv_dtype=kv, context=ctx,
                             port=port, host=host, hybrid_kv=hybrid, served_name=served_name,
                             offload=offload)
        for note in launch.notes:
            console.print(note, style="dim", markup=False, highlight=False)
        if dry_run or launch.multi_node:
            try:
                python = str(find_vllm_python(configured_python))
            except EngineError:
                python = "python"
            if launch.multi_node:
                console.print(f"[yellow]this plan spans {launch.nodes} nodes[/]: start Ray "
                              "and the server as below (scoutlens starts single-node "
                              "servers only)")
                for line in launch.ray:
                    out.print(f"# {line}", markup=False, highlight=False, soft_wrap=True)
            out.print(shell_line([python, "-m", API_MODULE, *launch.argv], launch.env),
                      soft_wrap=True, markup=False, highlight=False)
            return
        argv = list(launch.argv)
        server = ManagedServer(argv, log_path(port), env=dict(launch.env), port=port,
                               host=host, configured_python=configured_python)
        console.print(f"vLLM log: {server.log_path}")
        try:
            server.start()
            info = _wait(server, ready_timeout)
            name = info.get("id", "?")
            out.print(f"endpoint: {server.endpoint}", markup=False, highlight=False)
            out.print(f"model: {name}", markup=False, highlight=False)
            console.print("[green]ready[/]: Ctrl-C stops the server")
            while server.running():
                time.sleep(0.5)
            raise EngineError(server.failure_message("the vLLM server stopped by itself"))
        except KeyboardInterrupt:
            console.print("stopping the vLLM server ...")
        finally:
            with _signals_ignored():  # a second Ctrl-C must not leave workers behind
                code = server.stop()
        console.print(f"vLLM server stopped (exit code {code})")


def _convert(target: Path) -> Path:
    from engine.convert import ensure_safetensors_model

    t0 = time.monotonic()
    with console.status("converting the bundled model to safetensors (once) ..."):
        folder = ensure_safetensors_model(target)
    took = time.monotonic() - t0
    if took > 2:
        console.print(f"converted the bundled model in {took:.0f} s: {folder}")
    return folder


def _wait(server, timeout: float) -> dict:
    with console.status("starting vLLM ...") as status:
        def tick(elapsed: float) -> None:
            status.update(f"starting vLLM ... {elapsed:.0f} s (warm-up takes minutes on CPU)")

        t0 = time.monotonic()
        info = server.wait_healthy(timeout, tick=tick)
    console.print(f"vLLM ready in {time.monotonic() - t0:.0f} s")
    return info


@serve_app.command("api")
def api(
    port: PortOpt = 8700,
    host: SignInHostOpt = LOOPBACK,
    shared: Annotated[bool | None, shared_option(
        "shared: people sign in through the proxy's headers; "
        "default: trusted on loopback (the operator, or --as USER), shared otherwise")] = None,
    backend: BackendOpt = None,
    endpoint: EndpointOpt = None,
    model: ModelOpt = None,
) -> None:
    """An OpenAI-compatible /v1/chat/completions whose models are corpora (corpus:NAME),
    answered by `scoutlens ask` with citations; /v1/models lists the corpora.

    \b
    Example:
      scoutlens serve api --port 8700
      client = OpenAI(base_url="http://127.0.0.1:8700/v1", api_key="-")
      client.chat.completions.create(model="corpus:myrepo", messages=[...], stream=True)
    """
    from app.commands.acting import who
    from app.servers.api import create_app, serve
    from app.servers.runtime import Runtime
    from app.servers.signin import needs_sign_in, principal, warn_loopback_trust

    sign_in = needs_sign_in(host, shared, "scoutlens serve api")
    if sign_in:
        warn_loopback_trust()
    local = who()

    def who_of(request):
        if not sign_in:
            return local
        return principal(request.headers, request.client.host if request.client else None)

    rt = Runtime(shared=sign_in, backend=backend, endpoint=endpoint, model=model)
    app = create_app(rt, who_of, loopback_only=not sign_in)
    console.print(f"scoutlens API on http://{host}:{port}/v1 (models: corpus:NAME; Ctrl-C "
                  "stops it)" + ("; sign-in through the proxy" if sign_in else ""))
    serve(app, host, port)
