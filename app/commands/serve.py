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

from engine.types import EngineError

console = Console(stderr=True)
out = Console()

GPUS = ("1xH100", "8xH100", "8xH200", "cpu")
WEIGHTS = ("bf16", "fp8", "int4")
KV_DTYPES = ("bf16", "fp8")
BUNDLED_NAME = "smollm2-135m-instruct"
CPU_WINDOW = 8192  # the bundled model's window


def bundled_model_dir() -> Path:
    from app.settings import get_settings

    return get_settings().home_dir / "models" / BUNDLED_NAME


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    for a in allowed:
        if value.lower() == a.lower():
            return a
    raise EngineError(f"{option} must be one of {' | '.join(allowed)}, not {value!r}")


def _context(text: str | None) -> int | None:
    if text is None:
        return None
    from ingest.pack import parse_budget
    from ingest.types import IngestError

    try:
        return parse_budget(text)
    except IngestError as exc:
        raise EngineError(f"--context: {exc}") from None


def build_launch(model: str | None, gpus: str, weights: str, kv_dtype: str, context: int | None,
                 port: int, host: str = "127.0.0.1"):
    """The server launch (argv, env, notes) for these choices. `model` None means: the bundled
    model on CPU, Llama 4 Scout on GPUs. The planner's `engine.vllm_flags.vllm_launch` decides
    the flags; without it only the CPU launch is known (engine.vllm_server._cpu_launch)."""
    try:
        from engine.vllm_flags import vllm_launch
    except ModuleNotFoundError as exc:
        if exc.name != "engine.vllm_flags":
            raise
        vllm_launch = None
    if vllm_launch is not None:
        return vllm_launch(model=model, gpus=gpus, weights=weights, kv_dtype=kv_dtype,
                           context=context, port=port, host=host)
    if gpus != "cpu":
        raise EngineError("GPU launches come from the capacity planner (engine.vllm_flags), which "
                          "is not installed in this checkout; use --gpus cpu")
    from engine.vllm_server import _cpu_launch

    assert model is not None
    return _cpu_launch(model, port, host=host, max_model_len=context or CPU_WINDOW,
                       served_name=BUNDLED_NAME if model == str(bundled_model_dir()) else None)


def shell_line(argv: list[str], env: dict[str, str]) -> str:
    """`K=V ... python -m ... --flag value`, quoted for a POSIX shell."""
    assignments = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    return " ".join([*assignments, *(shlex.quote(a) for a in argv)])


def _multi_node(launch) -> bool:
    """A plan that needs more than one node: printed (Ray launch), never started here."""
    nodes = getattr(launch, "nodes", 1) or 1
    return bool(getattr(launch, "multi_node", False)) or int(nodes) > 1


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


def register(app: typer.Typer) -> None:
    serve_app = typer.Typer(help="Start model servers.", no_args_is_help=True)
    app.add_typer(serve_app, name="serve")

    @serve_app.command("vllm")
    def vllm(
        model: Annotated[str | None, typer.Option(
            help="model folder or Hugging Face id (default: Llama 4 Scout; on --gpus cpu the "
                 "bundled SmolLM2-135M-Instruct)")] = None,
        gpus: Annotated[str | None, typer.Option(
            help="1xH100 | 8xH100 | 8xH200 | cpu (default: cpu on a machine without GPUs)")]
        = None,
        weights: Annotated[str, typer.Option(help="bf16 | fp8 | int4")] = "bf16",
        kv_dtype: Annotated[str, typer.Option("--kv-dtype", help="bf16 | fp8")] = "bf16",
        context: Annotated[str | None, typer.Option(
            help="max model length: 8192, 256k, 10M (default: what the plan allows)")] = None,
        port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
        host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
        ready_timeout: Annotated[float, typer.Option(
            "--ready-timeout", min=1, help="seconds to wait for the server to be ready")] = 900,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="print the command (environment and arguments) and exit")] = False,
    ) -> None:
        """Start the vLLM OpenAI-compatible server with the planner's flags; Ctrl-C stops it."""
        from engine.vllm_server import ManagedServer, find_vllm_python

        g = _choice(gpus, GPUS, "--gpus") if gpus else _default_gpus()
        w = _choice(weights, WEIGHTS, "--weights")
        kv = _choice(kv_dtype, KV_DTYPES, "--kv-dtype")
        ctx = _context(context)
        with _sigterm_interrupts():
            bundled = g == "cpu" and model is None
            if bundled:
                target = bundled_model_dir()
                if not dry_run:
                    target = _convert(target)
                model = str(target)
            elif model is not None and Path(model).expanduser().is_dir():
                model = str(Path(model).expanduser().resolve())
            launch = build_launch(model, g, w, kv, ctx, port, host)
            argv = list(launch.argv)
            for note in launch.notes:
                console.print(f"[dim]{note}")
            if dry_run or _multi_node(launch):
                try:
                    python = str(find_vllm_python())
                except EngineError:
                    python = "python"
                if _multi_node(launch):
                    console.print("[yellow]this plan needs more than one node[/]: start it with "
                                  "Ray as below (scoutlens does not start multi-node servers)")
                cmd = [python, "-m", "vllm.entrypoints.openai.api_server", *argv]
                out.print(shell_line(cmd, dict(launch.env)), soft_wrap=True, markup=False,
                          highlight=False)
                return
            server = ManagedServer(argv, env=dict(launch.env), port=port, host=host)
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
                raise EngineError(server._failure("the vLLM server stopped by itself"))
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
