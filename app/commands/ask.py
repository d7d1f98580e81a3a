"""`scoutlens ask` and `scoutlens history`: questions over a corpus, answers with sources."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack, nullcontext
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console
from rich.table import Table

from app.commands.acting import who
from app.commands.options import (
    BackendOpt,
    DeviceOpt,
    EndpointOpt,
    JsonOpt,
    ModelOpt,
    NotText,
    check_text,
    text_arg,
    text_or_path_arg,
)
from app.commands.shown import cell, for_terminal, json_safe, shown, visible

if TYPE_CHECKING:
    from app.services.context import Mode

console = Console(stderr=True, emoji=False)
out = Console(emoji=False)


def ask(
    target: Annotated[str, typer.Argument(
        help="a stored corpus name, or a path to ingest (./x, /x, ~/x, a/b or --path)",
        callback=text_or_path_arg)],
    question: Annotated[str | None, typer.Argument(
        help="the question; `-` or left out: read it from stdin", callback=text_arg)] = None,
    mode: Annotated[str, typer.Option(help="auto | full | retrieval")] = "auto",
    backend: BackendOpt = None,
    endpoint: EndpointOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 384,
    cont: Annotated[bool, typer.Option("--continue", "-c", help="follow up on the last "
                                       "conversation over this corpus")] = False,
    conversation: Annotated[str | None, typer.Option(
        "--conversation", "--cid", help="follow up on this conversation (ids: scoutlens "
        "history)", callback=text_arg)] = None,
    as_json: JsonOpt = False,
    as_path: Annotated[bool, typer.Option("--path", help="TARGET is a path to ingest, even "
                                          "a bare name like `docs`")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would be sent (mode, "
                                          "sources and spans, token counts; the context text "
                                          "with --json) and stop: nothing generated or "
                                          "stored")] = False,
) -> None:
    """Answer QUESTION from TARGET, citing sources that are checked against the context.

    \b
    Examples:
      scoutlens ask myrepo "Where is the retry limit decided?"
      scoutlens ask ./docs "What changed in 2.0?"        (a path: ingested first)
      scoutlens ask myrepo -c "And where is it tested?"   (a follow-up)
      echo "What does load_config return?" | scoutlens ask myrepo
      scoutlens ask myrepo "Summarise" -e http://127.0.0.1:8000/v1 -m scout --json
      scoutlens ask myrepo "Where is X decided?" --dry-run --json   (the exact context)
    """
    from app.progress import pipeline_progress
    from app.services.ask import AskInput, answer, prepare
    from app.services.backends import make_backend
    from app.services.targets import open_target

    # the question is checked, and the corpus resolved, before any model loads
    asked = AskInput(target, _question(question), cast("Mode", mode), max_tokens,
                     conversation, cont, as_path=as_path)  # AskInput checks the mode
    me = who()

    def note(text: str) -> None:
        if not as_json:
            console.print(f"[dim]{shown(text)}[/]")

    with ExitStack() as held:
        with pipeline_progress(console, not as_json) as progress:  # a path is ingested first
            snap = held.enter_context(open_target(target, me, note, progress, as_path=as_path))
        with console.status("loading the model") if not as_json else nullcontext():
            chosen = make_backend(backend, endpoint=endpoint, model=model, weights=not dry_run,
                                  device=device)
        ready = prepare(snap, asked, chosen, me, note)
    if dry_run:
        _print_plan(ready, max_tokens, as_json)
        return

    def delta(text: str) -> None:
        if not as_json:
            sys.stdout.write(for_terminal(text, sys.stdout))
            sys.stdout.flush()

    result = answer(ready, chosen, me, on_delta=delta)
    from app.services.grounding import result_marks

    marks = result_marks(result, who())  # boxes and points the answer drew on pictures
    if as_json:
        print(json_safe(json.dumps({**result.to_json(), "grounding": [m.to_json() for m in marks]},
                                   ensure_ascii=False)))
        return
    sys.stdout.write("\n")
    for mark in marks:
        out.print(shown(mark.line()), highlight=False, soft_wrap=True)
    _print_sources(result)
    if result.completion.incomplete:
        console.print(f"[yellow]incomplete answer[/]: {shown(result.completion.error)}")
        raise typer.Exit(2)

def _print_plan(ready, max_tokens: int, as_json: bool) -> None:
    ctx = ready.context
    if as_json:
        print(json.dumps({"corpus": ready.corpus, "question": ready.question,
                          "max_tokens": max_tokens, **ctx.to_json(with_text=True)},
                         ensure_ascii=False))
        return
    cost = ctx.cost
    images = f" ({cost.image_tokens:,} of them for {cost.images} images)" if cost.images else ""
    estimate = "" if cost.exact else " (an estimate: the server cannot tokenize)"
    out.print(f"[bold]{ctx.mode}[/] mode over {shown(ready.corpus)}: "
              f"{cost.tokens:,} prompt tokens{images}{estimate} + {max_tokens:,} to "
              f"generate; corpus {ctx.corpus_tokens:,} tokens")
    table = Table(title="what would go in (nothing generated or stored)")
    for col in ("id", "source", "where", "tokens", "found by"):
        table.add_column(col, justify="right" if col == "tokens" else "left")
    signals: dict[str, str] = {}
    for h in ctx.hits:
        signals.setdefault(h.segment.path, ", ".join(sorted(h.signals)))
    for block in ctx.plan.blocks:
        a = block.attrs
        where = a.get("part") or next(
            (f"{k} {a[k]}" for k in ("lines", "page", "t") if k in a), "")
        table.add_row(block.id, cell(block.path, 70), shown(where), f"{block.tokens:,}",
                      signals.get(block.path, ""))
    out.print(table)
    if ctx.scope:
        out.print(f"ranked inside what the question names too: {shown(', '.join(ctx.scope))}",
                  highlight=False)
    for h in ctx.runner_ups:
        out.print(f"runner-up (left out): {cell(h.segment.path, 70)} {shown(h.segment.where)} "
                  f"(found by {', '.join(sorted(h.signals))})", highlight=False)
    for line in picture_lines(ctx.pictures):
        out.print(line, markup=False, highlight=False)


def picture_lines(pictures: list[dict]) -> list[str]:
    """One short line per picture of the context: how it goes, why, and what it costs."""
    lines = []
    for p in pictures:
        what = "frame" if p["kind"] == "frame" else "picture"
        if p["sent"] == "picture":
            how = f"sent as a picture, {p['tiles']} tiles, {p['tokens']:,} tokens"
        else:
            how = "sent as its text"
        lines.append(f"{what} {visible(p['label'])}: {how} ({visible(p['why'])})")
    return lines


def history(
    corpus: Annotated[str | None, typer.Argument(help="only this corpus",
                                                 callback=text_arg)] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Questions asked and their answers, newest first."""
    from dataclasses import asdict

    from app.services.history import history as rows_of

    rows = rows_of(corpus, limit, who=who())
    if as_json:
        print(json_safe(json.dumps([{**asdict(r), "incomplete": r.incomplete}
                                     for r in rows], ensure_ascii=False)))
        return
    table = Table(title="history" + (f" of {shown(corpus)}" if corpus else ""))
    for col in ("when", "corpus", "conversation", "turn", "question", "answer", "mode",
                "finish", "ttft"):
        table.add_column(col)
    for r in rows:
        finish = "[red]incomplete[/]" if r.incomplete else shown(r.finish_reason)
        table.add_row(r.created_at, cell(r.corpus, 40), cell(r.conversation, 12),
                      str(r.turn), cell(r.question, 50),
                      cell(r.answer, 60), cell(r.mode, 12), finish,
                      f"{r.timings.get('ttft_s', 0):.2f}s")
    out.print(table)


def _question(question: str | None) -> str:
    """The question from the argument, or from stdin for `-` or none (as llm reads prompts)."""
    if question is not None and question != "-":
        return question
    if sys.stdin is None or sys.stdin.isatty():
        raise typer.BadParameter("give a QUESTION, or pipe one in (`echo ... | scoutlens ask "
                                 "CORPUS`)", param_hint="QUESTION")
    if not hasattr(sys.stdin, "buffer"):  # a test's StringIO
        return check_text(sys.stdin.read(), "question")
    try:  # the bytes, not the locale's decoding: it may pass bad bytes on, or raise
        return check_text(sys.stdin.buffer.read().decode("utf-8"), "question")
    except UnicodeDecodeError:
        raise NotText("the question is not valid UTF-8 text") from None


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
            mark = "[green]verified[/]" if s.verified else f"[red]not verified[/]: {shown(s.why)}"
            console.print(f"  \\[{shown(s.id)}] {shown(s.label() or '(unknown)')}  {mark}")
    if matched:
        console.print("[bold]Matched evidence[/] [dim](spans of the context that best match the "
                      "answer; not citations)[/]")
        for s in matched:
            console.print(f"  \\[{shown(s.id)}] {shown(s.label())}  [dim]{cell(s.quote, 90)}[/]")
    if result.injections:
        console.print("[yellow]Passages in context that read like instructions to a model "
                      "(treated as data):[/]")
        for inj in result.injections[:5]:
            console.print(f"  {cell(inj, 100)}")

