"""`scoutlens analyze` and `scoutlens analyses`: a briefing, a table or a comparison over a whole
corpus, every source read and every citation checked; stored, listed and exported."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
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
    text_arg,
)
from app.commands.shown import cell, json_safe, shown
from common.errors import UserError

if TYPE_CHECKING:
    from app.services.analysis.types import Kind

console = Console(stderr=True, emoji=False)
out = Console(emoji=False)
MAX_SCHEMA_BYTES = 1_000_000


def analyze(
    corpus: Annotated[str, typer.Argument(help="a stored corpus name", callback=text_arg)],
    kind: Annotated[str, typer.Argument(help="brief | extract | compare", callback=text_arg)],
    fields: Annotated[str | None, typer.Option(
        "--fields", help="extract: the fields, comma-separated (`party, start date, amount`; "
        "`amount: the total in EUR` describes one)", callback=text_arg)] = None,
    schema: Annotated[Path | None, typer.Option(
        "--schema", help="extract: the fields as a JSON schema file (its `properties`, with "
        "their descriptions) or a JSON list of names")] = None,
    left: Annotated[str | None, typer.Option("--left", help="compare: a source path of CORPUS",
                                             callback=text_arg)] = None,
    right: Annotated[str | None, typer.Option("--right", help="compare: another source path",
                                              callback=text_arg)] = None,
    other: Annotated[str | None, typer.Option(
        "--other", help="compare: a second corpus (another version of CORPUS)",
        callback=text_arg)] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=16, max=8192,
                                            help="the longest answer of one model call")] = 512,
    save: Annotated[Path | None, typer.Option(
        "--out", help="also write the result: .json, .md, or (extract) .csv or .xlsx")] = None,
    resume: Annotated[str | None, typer.Option(
        "--resume", help="continue an interrupted analysis from the calls it finished "
        "(ids: scoutlens analyses)", callback=text_arg)] = None,
    backend: BackendOpt = None,
    endpoint: EndpointOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Analyse the whole of CORPUS: a briefing (brief), one row per source with the fields you
    name (extract), or what changed between two sources or two corpora (compare).

    \b
    Examples:
      scoutlens analyze contracts brief
      scoutlens analyze contracts extract --fields "party, start date, amount" --out rows.xlsx
      scoutlens analyze policy compare --left v1/policy.md --right v2/policy.md
      scoutlens analyze policy-2025 compare --other policy-2024 --json
    """
    from app.progress import pipeline_progress
    from app.services.analysis.export import check, write
    from app.services.analysis.run import analyze as run
    from app.services.analysis.types import AnalyzeInput
    from app.services.backends import make_backend

    asked = AnalyzeInput(corpus, cast("Kind", kind), _fields(fields, schema), left, right,
                         other, max_tokens)  # checked before any model loads
    if save is not None:
        check(save, asked.kind)  # before any model call: a result is never lost to a bad path
    with console.status("loading the model") if not as_json else nullcontext():
        chosen = make_backend(backend, endpoint=endpoint, model=model, device=device)
    try:
        with pipeline_progress(console, not as_json) as progress:
            result = run(asked, chosen, who(), progress, resume)
    except KeyboardInterrupt as stop:
        kept = getattr(stop, "analysis_id", None)
        if kept:
            console.print(f"[yellow]stopped[/]: analysis {kept} is kept; scoutlens analyze "
                          f"{shown(corpus)} {shown(kind)} ... --resume {kept} goes on")
        raise typer.Exit(130) from None
    data = result.to_json()
    if save is not None:
        write(data, save)
    if as_json:
        print(json_safe(json.dumps(data, ensure_ascii=False)))
        return
    _show(data)
    if save is not None:
        console.print(f"[dim]written to {shown(str(save))}[/]")


def _fields(fields: str | None, schema: Path | None) -> tuple[str, ...]:
    """The fields to extract, from `--fields` or a schema file (one line on a bad one)."""
    if fields is not None and schema is not None:
        raise UserError("give --fields or --schema, not both")
    if fields is not None:
        return tuple(f.strip() for f in fields.split(",") if f.strip())
    if schema is None:
        return ()
    try:
        if schema.stat().st_size > MAX_SCHEMA_BYTES:
            raise UserError(f"--schema {schema}: over {MAX_SCHEMA_BYTES:,} bytes")
        text = schema.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--schema {schema}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"--schema {schema} is not JSON ({str(exc)[:80]})") from None
    from app.services.analysis.types import schema_fields

    return schema_fields(text, f"--schema {schema}")


def _show(data: dict) -> None:
    from app.services.analysis.export import change_lines

    cut = data["cut"]
    console.print(f"[bold]{data['kind']}[/] of {shown(data['corpus'])}: {data['sources_read']} "
                  f"of {data['sources']} sources read ({data['coverage']:.0%}); "
                  f"{data['calls']} model calls ({data['resumed']} resumed), "
                  f"{data['levels']} reduce levels; id {data['analysis_id']}")
    for c in cut[:10]:  # the rest: --json
        console.print(f"[yellow]not read whole[/]: {shown(c['path'])} ({shown(c['why'])})")
    if data["rows"]:
        table = Table(title=f"one row per source ({len(data['rows'])})")
        for col in ["source", *data["columns"]]:
            table.add_column(shown(col))
        for r in data["rows"]:
            cells = [cell(r["source"], 50)]
            for name in data["columns"]:
                c = r["cells"][name]
                cells.append("[dim]—[/]" if not c["found"] else cell(c["value"], 40) + (
                    "" if c["verified"] else " [red](unchecked)[/]"))
            table.add_row(*cells)
        out.print(table)
    if data["changes"]:
        out.print(f"[bold]Changes[/] ({len(data['changes'])}; `change N` in the text below)")
        for n, line in enumerate(change_lines(data["changes"]), 1):
            out.print(f"  {n}. {shown(line)}", highlight=False)
    if data["text"]:
        out.print(shown(data["text"]), highlight=False, soft_wrap=True)
    if data["guide"]:
        out.print("[bold]Sources[/]")
        for path, line in list(data["guide"].items())[:50]:
            out.print(f"  {cell(path, 60)}: {shown(line)}", highlight=False)
    for c in data["citations"]:
        mark = "[green]checked[/]" if c["verified"] else f"[red]not checked[/]: {shown(c['why'])}"
        console.print(f"  \\[{shown(c['id'])}] {cell(c.get('path', ''), 60)}  {mark}")


def analyses(
    corpus: Annotated[str | None, typer.Argument(help="only this corpus",
                                                 callback=text_arg)] = None,
    show: Annotated[str | None, typer.Option("--show", help="one analysis, whole",
                                             callback=text_arg)] = None,
    save: Annotated[Path | None, typer.Option(
        "--out", help="with --show: write it (.json, .md, or an extraction's .csv/.xlsx)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Analyses run, newest first (yours; everyone's for an admin or the operator)."""
    from app.services.analysis.export import write
    from app.services.analysis.store import analyses as rows_of
    from app.services.analysis.store import analysis

    if show is not None:
        one = analysis(show, who())
        if one.result is None:
            raise UserError(f"analysis {show} is {one.status}: nothing to show yet"
                            + (f" ({one.error})" if one.error else "")
                            + f"; scoutlens analyze {one.corpus} {one.kind} --resume {show}")
        if save is not None:
            write(one.result, save)
        if as_json:
            print(json_safe(json.dumps(one.result, ensure_ascii=False)))
        else:
            _show(one.result)
        return
    rows = rows_of(corpus, who())
    if as_json:
        print(json_safe(json.dumps([r.__dict__ for r in rows], ensure_ascii=False)))
        return
    table = Table(title="analyses")
    for col in ("id", "when", "corpus", "kind", "status", "coverage"):
        table.add_column(col)
    for r in rows:
        cov = f"{r.result['coverage']:.0%}" if r.result else ""
        table.add_row(r.analysis_id, r.created_at, cell(r.corpus, 40), r.kind, r.status, cov)
    out.print(table)
