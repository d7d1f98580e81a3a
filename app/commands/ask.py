"""`scoutlens ask` and `scoutlens history`: questions over a corpus, answers with sources."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
out = Console()


def register(app: typer.Typer) -> None:
    @app.command()
    def ask(
        target: Annotated[str, typer.Argument(help="a stored corpus name, or a path to ingest")],
        question: Annotated[str, typer.Argument(help="the question")],
        mode: Annotated[str, typer.Option(help="auto | full | retrieval")] = "auto",
        backend: Annotated[str | None, typer.Option(help="embedded | openai")] = None,
        endpoint: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL")] = None,
        model: Annotated[str | None, typer.Option(help="model folder or served name")] = None,
        max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 384,
        cont: Annotated[bool, typer.Option("--continue", help="follow up on the last "
                                           "conversation over this corpus")] = False,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Answer QUESTION from TARGET, citing sources that are checked against the context."""
        from app.progress import pipeline_progress
        from app.services.ask import ask as run
        from engine.factory import make_backend

        def note(text: str) -> None:
            if not as_json:
                console.print(f"[dim]{text}[/]")

        with console.status("loading the model") if not as_json else nullcontext():
            engine = make_backend(backend, endpoint=endpoint, model=model)

        def delta(text: str) -> None:
            if not as_json:
                sys.stdout.write(text)
                sys.stdout.flush()

        with pipeline_progress(console, not as_json) as progress:
            result = run(target, question, engine, mode=mode, max_tokens=max_tokens,  # type: ignore[arg-type]
                         continue_last=cont, on_delta=delta, note=note, progress=progress)
        if as_json:
            print(json.dumps(result.to_json(), ensure_ascii=False))
            return
        sys.stdout.write("\n")
        _print_sources(result)
        if result.completion.incomplete:
            console.print(f"[yellow]incomplete answer[/]: {result.completion.error}")
            raise typer.Exit(2)

    @app.command()
    def history(
        corpus: Annotated[str | None, typer.Argument(help="only this corpus")] = None,
        limit: Annotated[int, typer.Option(min=1)] = 20,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Questions asked and their answers, newest first."""
        from dataclasses import asdict

        from app.services.ask import history as rows_of

        rows = rows_of(corpus, limit)
        if as_json:
            print(json.dumps([asdict(r) for r in rows], ensure_ascii=False))
            return
        table = Table(title="history" + (f" of {corpus}" if corpus else ""))
        for col in ("when", "corpus", "turn", "question", "answer", "mode", "ttft"):
            table.add_column(col)
        for r in rows:
            table.add_row(r.created_at, r.corpus, str(r.turn), _short(r.question, 50),
                          _short(r.answer, 60), r.mode, f"{r.timings.get('ttft_s', 0):.2f}s")
        out.print(table)


def _short(text: str, n: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def _print_sources(result) -> None:
    c = result.completion
    console.print(f"[dim]{result.mode} mode: {result.in_context_tokens:,} of "
                  f"{result.corpus_tokens:,} corpus tokens in context ({result.share:.0%}); "
                  f"{c.usage.prompt_tokens:,} prompt tokens ({c.usage.cached_tokens:,} cached), "
                  f"ttft {c.timings.ttft_s:.2f}s, total {c.timings.total_s:.2f}s[/]")
    if not result.sources:
        console.print("[yellow]no sources[/]")
    cited = [s for s in result.sources if s.kind == "cited"]
    matched = [s for s in result.sources if s.kind == "matched"]
    if cited:
        console.print("[bold]Sources[/]")
        for s in cited:
            mark = "[green]verified[/]" if s.verified else f"[red]not verified[/]: {s.why}"
            console.print(f"  [{s.id}] {s.label() or '(unknown)'}  {mark}")
    if matched:
        console.print("[bold]Matched evidence[/] [dim](spans of the context that best match the "
                      "answer; not citations)[/]")
        for s in matched:
            console.print(f"  [{s.id}] {s.label()}  [dim]{_short(s.quote, 90)}[/]")
    if result.injections:
        console.print("[yellow]Passages in context that read like instructions to a model "
                      "(treated as data):[/]")
        for inj in result.injections[:5]:
            console.print(f"  {_short(inj, 100)}")

