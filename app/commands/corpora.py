"""`scoutlens ingest` and `scoutlens corpora list|show|rm`: what is stored, and getting it there."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from app.commands.acting import who
from app.commands.options import (
    FpsOpt,
    JsonOpt,
    KeepOpt,
    MaxFramesOpt,
    MaxImagePixelsOpt,
    MaxSizeOpt,
    TokenizerOpt,
    json_option,
    pipeline_options,
    text_arg,
    text_or_path_arg,
)
from app.commands.shown import cell, shown
from app.progress import pipeline_progress
from app.services.reports import IngestReport, file_json

console = Console(stderr=True, emoji=False)  # `:name:` in a file name is not an emoji
out = Console(emoji=False)
corpora_app = typer.Typer(help="Stored corpora.", no_args_is_help=True)

#: `ingest` stored what it could, but some files could not be read (1 is a failed command)
EXIT_PARTIAL = 3
#: flags an ingest sums up at its end, and what each kind means
FLAG_KINDS = {"injection": "text that tries to instruct a model (kept as data)",
              "chat-format": "code or configuration handling a chat format (informational)"}
#: flagged lines an ingest shows; `corpora show NAME --flags` lists them all
FIRST_FLAGS = 5


def _print_tree(title: str, tree: dict[str, int]) -> None:
    root = Tree(f"[bold]{shown(title)}")
    nodes: dict[str, Tree] = {}
    for folder, tokens in tree.items():
        parent = folder.rstrip("/").rsplit("/", 1)[0] + "/" if "/" in folder.rstrip("/") else ""
        node = nodes.get(parent, root).add(f"{cell(folder)}  [cyan]{tokens:,}[/] tokens")
        nodes[folder] = node
    console.print(root)


def write_json_report(report: IngestReport, stream: TextIO) -> None:
    """The ingest report as JSON, written file by file: building it whole (and rich's pretty
    printer re-parsing it) took 1.4 GB more than the ingest itself over 60,000 files."""
    head = json.dumps(report.head_json(), ensure_ascii=False, indent=2)
    stream.write(head[:-2] + ',\n  "tree": ' + json.dumps(report.tree(), ensure_ascii=False)
                 + ',\n  "files": [')
    for i, row in enumerate(report.files):
        stream.write(("\n    " if i == 0 else ",\n    ")
                     + json.dumps(file_json(row), ensure_ascii=False))
    stream.write("\n  ]\n}\n" if report.files else "]\n}\n")
    stream.flush()


def ingest(
    target: Annotated[list[str], typer.Argument(
        help="CORPUS PATH...: a corpus name, then folders, repositories, files, archives; or "
        "just PATH... (the corpus is named after the first path)", metavar="[CORPUS] PATH...",
        callback=text_or_path_arg)],
    corpus: Annotated[str | None, typer.Option(
        "--corpus", "-c", help="corpus name (then every argument is a path)",
        callback=text_arg)] = None,
    tokenizer: TokenizerOpt = None,
    keep: KeepOpt = None,
    max_file_size: MaxSizeOpt = "10MB",
    ocr: Annotated[bool, typer.Option(help="OCR pictures and PDF pages with no text layer")] = True,
    fps: FpsOpt = 1.0,
    max_frames: MaxFramesOpt = 120,
    max_image_pixels: MaxImagePixelsOpt = None,
    prune: Annotated[bool, typer.Option(help="forget files no longer under an input")] = True,
    as_json: Annotated[bool, json_option("print the report as JSON")] = False,
    all_files: Annotated[bool, typer.Option("--all", help="list unchanged files too")] = False,
) -> None:
    """Ingest paths into a corpus (incremental: unchanged files are not re-read).

    Examples:

        scoutlens ingest myrepo ~/src/myrepo       # a corpus name, then what goes in

        scoutlens ingest docs ./manuals ./slides.pdf

        scoutlens ingest ./notes                   # corpus "notes"
    """
    from app.services.ingesting import ingest as run
    from app.services.targets import ingest_target

    corpus, paths = ingest_target(target, corpus)

    with pipeline_progress(console, not as_json) as progress:
        report = run(paths, corpus, tokenizer,
                     pipeline_options(keep, max_file_size, ocr, fps, max_frames,
                                      max_image_pixels), prune,
                     progress, who=who())
    if as_json:
        write_json_report(report, sys.stdout)
        if report.count("error"):
            raise typer.Exit(EXIT_PARTIAL)
        return
    table = Table(title=f"corpus {shown(report.corpus)} ({shown(report.tokenizer)})",
                  show_lines=False)
    for col in ("path", "status", "tokens", "reason / flags"):
        table.add_column(col, justify="right" if col == "tokens" else "left")
    style = {"added": "green", "changed": "yellow", "removed": "red", "error": "red",
             "skipped": "dim", "unchanged": "dim"}
    listed = [f for f in report.files if all_files or f.status != "unchanged"]
    for f in listed[:500]:
        extra = f.reason or ", ".join(f.flags)
        table.add_row(cell(f.path), f"[{style.get(f.status, '')}]{f.status}", f"{f.tokens:,}",
                      cell(extra))
    if listed:
        console.print(table)
    if len(listed) > 500:
        console.print(f"... {len(listed) - 500} more rows (use --json for all)")
    data = {"tree": report.tree(), **report.head_json()}  # not a dict per file
    _print_tree(f"{report.total_tokens:,} tokens", data["tree"])
    for note in report.notes:
        console.print(f"[dim]{shown(note)}[/]")
    _print_flag_summary(report.corpus, report.files)
    s = data["summary"]
    if s["secrets"]:
        from ingest.documents import KEPT_SECRETS

        kept = sum(1 for f in report.files if KEPT_SECRETS in f.flags)
        console.print(f"[yellow]{s['secrets']} secret{'' if s['secrets'] == 1 else 's'}[/] in "
                      f"{s['secret_files']} file{'' if s['secret_files'] == 1 else 's'} "
                      + ("(their values are redacted in the corpus; flags `secret:` above)"
                         if not kept else f"({kept} file{'' if kept == 1 else 's'} kept "
                         "unredacted with --keep secrets)"))
    console.print(
        f"[bold]{shown(report.corpus)}[/]: {s['added']} added, {s['changed']} changed, "
        f"{s['unchanged']} unchanged, {s['removed']} removed, {s['skipped']} skipped, "
        f"{s['error']} errors; {report.total_tokens:,} tokens in {report.seconds:.2f} s")
    if s["error"]:
        console.print(f"[red]{s['error']} file{'' if s['error'] == 1 else 's'} could not be "
                      f"read[/] (listed above); exit code {EXIT_PARTIAL}")
        raise typer.Exit(EXIT_PARTIAL)


def flagged(files, kind: str) -> list[tuple[str, str]]:
    """(path, where: text) of every `kind:` flag of the files still in the corpus."""
    prefix = f"{kind}:"
    return [(f.path, fl.removeprefix(prefix)) for f in files if f.status != "removed"
            for fl in f.flags if fl.startswith(prefix)]


def _print_flag_summary(corpus: str, files) -> None:
    """Counts by kind, the first few flagged lines, and the command that lists them all: a
    flag a line would drown a developer's report (every chat template of a library)."""
    kinds = {kind: flagged(files, kind) for kind in FLAG_KINDS}
    if not any(kinds.values()):
        return
    counts = [f"{len(rows):,} {kind} in {len({p for p, _ in rows}):,} "
              f"file{'' if len({p for p, _ in rows}) == 1 else 's'}: {FLAG_KINDS[kind]}"
              for kind, rows in kinds.items() if rows]
    console.print("[yellow]flagged[/]: " + "; ".join(counts))
    for path, what in kinds["injection"][:FIRST_FLAGS]:
        console.print(f"  {cell(path, 80)}: {cell(what, 100)}")
    console.print(f"  [dim]all of them: scoutlens corpora show {shown(shlex.quote(corpus))} "
                  "--flags[/]")


@corpora_app.command("list")
def corpora_list(as_json: JsonOpt = False) -> None:
    """List stored corpora."""
    from app.services.catalog import list_corpora

    rows = list_corpora(who=who())
    if as_json:
        out.print_json(json.dumps([r.__dict__ for r in rows]))
        return
    if not rows:
        console.print("no corpora yet: scoutlens ingest PATH --corpus NAME")
        return
    table = Table()
    for col in ("name", "sources", "skipped", "tokens", "tokenizer", "owner", "shared with",
                "updated"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.name, str(r.sources), str(r.skipped), f"{r.tokens:,}", r.tokenizer,
                      r.owner, r.shared, r.updated_at)
    out.print(table)


@corpora_app.command("show")
def corpora_show(
    name: Annotated[str, typer.Argument(callback=text_arg)],
    as_json: JsonOpt = False,
    flags: Annotated[bool, typer.Option(
        "--flags", help="list every flag (injection, chat-format, secret, ...) by file")] = False,
) -> None:
    """Show a corpus: its sources with status and token counts, and a token tree."""
    from app.services.catalog import show_corpus
    from app.services.reports import token_tree

    summary, files = show_corpus(name, who=who())
    if flags:
        _print_flags(files, as_json)
        return
    tree = token_tree([(f.path, f.tokens) for f in files if f.status == "ok"])
    if as_json:
        out.print_json(json.dumps({**summary.__dict__, "tree": tree, "files": [
            {"path": f.path, "status": f.status, "tokens": f.tokens, "bytes": f.bytes,
             "reason": f.reason, "flags": list(f.flags)} for f in files]}))
        return
    table = Table(title=f"{shown(summary.name)}: {summary.sources} sources, "
                        f"{summary.tokens:,} tokens")
    for col in ("path", "status", "tokens", "reason / flags"):
        table.add_column(col)
    for f in files:
        table.add_row(cell(f.path), f.status, f"{f.tokens:,}",
                      cell(f.reason or ", ".join(f.flags)))
    out.print(table)
    _print_tree(f"{summary.tokens:,} tokens ({summary.tokenizer})", tree)


def _print_flags(files, as_json: bool) -> None:
    """Every flag of every source, one row each (`ingest` shows only the first few)."""
    rows = [(f.path, fl) for f in files for fl in f.flags]
    if as_json:
        print(json.dumps([{"path": p, "flag": fl} for p, fl in rows], ensure_ascii=False))
        return
    table = Table(title=f"{len(rows):,} flags")
    for col in ("path", "kind", "where: what"):
        table.add_column(col)
    for path, fl in rows:
        kind, _, what = fl.partition(":")
        table.add_row(cell(path), cell(kind), cell(what))
    out.print(table)


@corpora_app.command("rm")
def corpora_rm(name: Annotated[str, typer.Argument(callback=text_arg)]) -> None:
    """Delete a corpus and everything stored for it."""
    from app.services.catalog import remove_corpus

    summary = remove_corpus(name, who=who())
    console.print(f"removed corpus {shown(summary.name)} ({summary.sources} sources)")


@corpora_app.command("share")
def corpora_share(
    name: Annotated[str, typer.Argument(callback=text_arg)],
    group: Annotated[list[str] | None, typer.Option(
        "--group", "-g", help="share with the members of this group (repeatable)",
        callback=text_arg)] = None,
    everyone: Annotated[bool, typer.Option(
        "--everyone", help="share with everyone signed in")] = False,
    private: Annotated[bool, typer.Option(
        "--private", help="its owner (and admins) only")] = False,
) -> None:
    """Choose who sees a corpus: named groups, everyone signed in, or its owner alone (its
    owner or an admin only).

    Examples:

        scoutlens corpora share contracts --group legal --group finance

        scoutlens --as alice corpora share notes --everyone
    """
    from app.services.catalog import share_corpus
    from common.errors import UserError

    if sum((bool(group), everyone, private)) != 1:
        raise UserError("say one of --group G (repeatable), --everyone or --private")
    visibility = "groups" if group else "everyone" if everyone else "private"
    s = share_corpus(name, visibility, group, who=who())
    console.print(f"{shown(s.name)}: " + ("private (its owner and admins)"
                                          if s.visibility == "private"
                                          else "shared with everyone signed in"
                                          if s.visibility == "everyone"
                                          else f"shared with {shown(', '.join(s.groups))}"))
