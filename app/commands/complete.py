"""`scoutlens complete`: one prompt through a backend, streamed, with usage and timings."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from app.commands.options import (
    BackendOpt,
    DeviceOpt,
    EndpointOpt,
    ModelOpt,
    json_option,
    text_arg,
)
from app.commands.shown import for_terminal, json_safe
from engine.types import CompletionRequest, EngineError

console = Console(stderr=True)


def _read(path: Path | None, what: str) -> str:
    if path is None:
        return ""
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise EngineError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise EngineError(f"{what} is a folder, not a file: {path}") from None
    except OSError as exc:
        raise EngineError(f"cannot read {what} {path}: {exc.strerror}") from None


def complete(
    prompt_file: Annotated[Path, typer.Option("--prompt-file", "-p",
                                              help="the prompt ('-' for stdin)")],
    prefix_file: Annotated[Path | None, typer.Option(
        "--prefix-file", help="a reusable prefix (a packed corpus) sent before the prompt")
    ] = None,
    backend: BackendOpt = None,
    endpoint: EndpointOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 256,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.0,
    system: Annotated[str | None, typer.Option(help="system message", callback=text_arg)] = None,
    raw: Annotated[bool, typer.Option("--raw", help="no chat template")] = False,
    prefill_chunk: Annotated[int | None, typer.Option(
        "--prefill-chunk", min=1, help="embedded: prefill chunk in tokens")] = None,
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="embedded: neither reuse nor store KV")] = False,
    as_json: Annotated[bool, json_option("print one JSON object")] = False,
) -> None:
    """Complete a prompt; the text streams to stdout, usage and timings to stderr."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from app.services.backends import make_backend

    prompt = _read(prompt_file, "prompt file")
    prefix = _read(prefix_file, "prefix file")
    if not (prompt + prefix).strip():
        raise EngineError("the prompt is empty")
    request = CompletionRequest(prompt=prompt, prefix=prefix, system=system,
                                max_tokens=max_tokens, temperature=temperature, chat=not raw)
    bar = Progress(TextColumn("prefill"), BarColumn(), TextColumn("{task.completed:,}/"
                   "{task.total:,} tokens"), TimeRemainingColumn(), console=console,
                   transient=True, disable=as_json or not console.is_terminal)
    task = bar.add_task("prefill", total=None)

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with console.status("loading the model", spinner="dots") if not as_json \
            else nullcontext():
        chosen = make_backend(backend, endpoint=endpoint, model=model,
                              prefill_chunk=prefill_chunk, reuse=not no_cache,
                              progress=progress, device=device)
    stream = chosen.stream(request)
    with bar:
        for delta in stream:
            if bar.live.is_started:
                bar.stop()
            if not as_json:
                sys.stdout.write(for_terminal(delta, sys.stdout))
                sys.stdout.flush()
    result = stream.result
    assert result is not None
    if as_json:
        print(json_safe(json.dumps(result.to_json(), ensure_ascii=False)))
    else:
        sys.stdout.write("\n")
        u, t = result.usage, result.timings
        console.print(f"[dim]{result.backend} {result.model}: {u.prompt_tokens:,} prompt "
                      f"({u.cached_tokens:,} cached) + {u.completion_tokens:,} tokens; "
                      f"ttft {t.ttft_s:.2f}s, decode {t.decode_s:.2f}s, "
                      f"total {t.total_s:.2f}s[/]")
    if result.incomplete:
        console.print(f"[yellow]incomplete answer[/]: {result.error}")
        raise typer.Exit(2)
