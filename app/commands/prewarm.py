"""`scoutlens prewarm`: fill a server's prefix cache with a corpus, in stages, resumable."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from app.commands.acting import who
from app.commands.options import (
    ENDPOINT_HELP,
    JsonOpt,
    ModelOpt,
    endpoint_option,
    text_or_path_arg,
)

console = Console(stderr=True)
out = Console()


class TokensPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} tok/s" if speed else "- tok/s", style="cyan")


def prewarm(
    corpus: Annotated[str, typer.Argument(help="a stored corpus name or a path",
                                          callback=text_or_path_arg)],
    endpoint: Annotated[str, endpoint_option(ENDPOINT_HELP)],
    model: ModelOpt = None,
    stage: Annotated[str, typer.Option(help="tokens added per stage, e.g. 256k")] = "256k",
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="answer tokens that later "
                                            "questions reserve (as ask)")] = 384,
    restart: Annotated[bool, typer.Option(help="ignore an earlier interrupted run")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Prefill CORPUS on a server in growing stages, so later questions start warm."""
    from app.services.backends import make_backend
    from app.services.context import build_context
    from app.services.targets import open_target
    from app.settings import get_settings
    from engine.openai_backend import OpenAIBackend
    from engine.prewarm import prewarm as run
    from ingest.pack import parse_budget

    step = parse_budget(stage)
    backend = make_backend("openai", endpoint=endpoint, model=model)  # as ask would
    assert isinstance(backend, OpenAIBackend)
    # the very prefix `scoutlens ask` will send in full mode, so its questions hit the cache
    with (open_target(corpus, who(), lambda text: console.print(text, markup=False)) as snap,
          console.status("packing the corpus")):
        request = build_context(snap, "", "full", backend, max_tokens=max_tokens).request
    assert request is not None
    columns = (TextColumn("prewarm"), BarColumn(), TextColumn("{task.completed:,}/"
               "{task.total:,} tokens"), TokensPerSecond(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, disable=as_json) as bar:
        task = bar.add_task("prewarm", total=None)

        def progress(done: int, total: int) -> None:
            if bar.tasks[0].total is None:  # the first call: where a resumed run starts
                bar.reset(task, total=total, completed=done)
            else:
                bar.update(task, completed=done)

        report = run(backend, request, step, get_settings().cache_dir / "prewarm", progress,
                     restart=restart)
    if as_json:
        print(json.dumps(report.to_json()))
        return
    unit = "tokens" if report.mode == "tokens" else "characters"
    resumed = f", resumed at {report.resumed_from:,}" if report.resumed_from else ""
    last = report.stages[-1] if report.stages else None
    out.print(f"prewarmed {report.total:,} {unit} on {report.endpoint} ({report.model}) in "
              f"{len(report.stages)} stages, {report.seconds:.1f}s{resumed}"
              + (f"; last stage found {last.cached:,} tokens cached" if last else ""))
