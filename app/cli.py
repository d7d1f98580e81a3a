"""The `scoutlens` command: thin typer wrappers over app.services, with rich output."""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from app.commands import ask as ask_cmd
from app.commands import cache as cache_cmd
from app.commands import complete as complete_cmd
from app.commands import evals as evals_cmd
from app.commands import plan as plan_cmd
from app.commands import prewarm as prewarm_cmd
from app.commands import serve as serve_cmd
from ingest.types import IngestError

app = typer.Typer(help="Long-context retrieval and document analysis around Llama 4 Scout.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
corpora_app = typer.Typer(help="Stored corpora.", no_args_is_help=True)
app.add_typer(corpora_app, name="corpora")
console = Console(stderr=True)
out = Console()

#: `ingest` stored what it could, but some files could not be read (1 is a failed command)
EXIT_PARTIAL = 3
# the names app.services.ingest_options.KEEPABLE takes (not imported here: it loads the ingest
# pipeline, ~0.5 s that `--help` and a re-pack should not pay; a test keeps them equal)
KEEP_HELP = "binary, lockfiles, generated, vendored, gitignore, size, secrets"
KeepOpt = Annotated[list[str] | None, typer.Option(
    "--keep", help=f"switch a noise rule off, or keep secrets' values unredacted (repeatable): "
                   f"{KEEP_HELP}")]
TokenizerOpt = Annotated[str | None, typer.Option(
    "--tokenizer", "-t", help="cl100k | o200k | llama4:PATH | hf:DIR | embedded")]
MaxSizeOpt = Annotated[str, typer.Option("--max-file-size", help="skip larger files, e.g. 10MB")]
FpsOpt = Annotated[float, typer.Option("--fps", help="video: candidate frames per second")]
MaxFramesOpt = Annotated[int, typer.Option("--max-frames", help="video: frames kept at most")]


def _options(keep: list[str] | None, max_file_size: str, ocr: bool = True, fps: float = 1.0,
             max_frames: int = 120):
    from app.services.ingest_options import ingest_options

    return ingest_options(keep or [], max_file_size, ocr, fps, max_frames)


def _progress(enabled: bool = True):
    from app.progress import pipeline_progress

    return pipeline_progress(console, enabled)


def _print_tree(title: str, tree: dict[str, int]) -> None:
    root = Tree(f"[bold]{title}")
    nodes: dict[str, Tree] = {}
    for folder, tokens in tree.items():
        parent = folder.rstrip("/").rsplit("/", 1)[0] + "/" if "/" in folder.rstrip("/") else ""
        node = nodes.get(parent, root).add(f"{folder}  [cyan]{tokens:,}[/] tokens")
        nodes[folder] = node
    console.print(root)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="folders, repositories, files, archives")],
    corpus: Annotated[str, typer.Option("--corpus", "-c", help="corpus name")],
    tokenizer: TokenizerOpt = None,
    keep: KeepOpt = None,
    max_file_size: MaxSizeOpt = "10MB",
    ocr: Annotated[bool, typer.Option(help="OCR PDF pages with no text layer")] = True,
    fps: FpsOpt = 1.0,
    max_frames: MaxFramesOpt = 120,
    prune: Annotated[bool, typer.Option(help="forget files no longer under an input")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    all_files: Annotated[bool, typer.Option("--all", help="list unchanged files too")] = False,
) -> None:
    """Ingest PATHS into a corpus (incremental: unchanged files are not re-read)."""
    from app.services.corpora import ingest as run

    with _progress(not as_json) as progress:
        report = run(paths, corpus, tokenizer,
                     _options(keep, max_file_size, ocr, fps, max_frames), prune,
                     progress)
    if as_json:
        out.print_json(json.dumps(report.to_json()))
        if report.count("error"):
            raise typer.Exit(EXIT_PARTIAL)
        return
    table = Table(title=f"corpus {report.corpus} ({report.tokenizer})", show_lines=False)
    for col in ("path", "status", "tokens", "reason / flags"):
        table.add_column(col, justify="right" if col == "tokens" else "left")
    style = {"added": "green", "changed": "yellow", "removed": "red", "error": "red",
             "skipped": "dim", "unchanged": "dim"}
    shown = [f for f in report.files if all_files or f.status != "unchanged"]
    for f in shown[:500]:
        extra = f.reason or ", ".join(f.flags)
        table.add_row(f.path, f"[{style.get(f.status, '')}]{f.status}", f"{f.tokens:,}", extra)
    if shown:
        console.print(table)
    if len(shown) > 500:
        console.print(f"... {len(shown) - 500} more rows (use --json for all)")
    data = report.to_json()
    _print_tree(f"{report.total_tokens:,} tokens", data["tree"])
    for path, what in report.injections:
        console.print(f"[yellow]flagged[/] {path}: text that tries to instruct a model: {what}")
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
        f"[bold]{report.corpus}[/]: {s['added']} added, {s['changed']} changed, "
        f"{s['unchanged']} unchanged, {s['removed']} removed, {s['skipped']} skipped, "
        f"{s['error']} errors; {report.total_tokens:,} tokens in {report.seconds:.2f} s")
    if s["error"]:
        console.print(f"[red]{s['error']} file{'' if s['error'] == 1 else 's'} could not be "
                      f"read[/] (listed above); exit code {EXIT_PARTIAL}")
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def pack(
    target: Annotated[list[str], typer.Argument(help="a corpus name, or paths")],
    budget: Annotated[str | None, typer.Option(help="token budget: 8192, 128k, 10M")] = None,
    tokenizer: TokenizerOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="xml | markdown")] = "xml",
    out_file: Annotated[str | None, typer.Option("--out", "-o", help="output file (- = stdout)")]
    = None,
    manifest: Annotated[str | None, typer.Option(help="write the manifest JSON here")] = None,
    fit: Annotated[bool, typer.Option(help="reduce or drop sources to fit the budget")] = False,
    toc: Annotated[str, typer.Option(help="manifest position: top | end")] = "top",
    keep: KeepOpt = None,
    max_file_size: MaxSizeOpt = "10MB",
    fps: FpsOpt = 1.0,
    max_frames: MaxFramesOpt = 120,
) -> None:
    """Pack a corpus or paths into one text that fits a token budget."""
    global _fast_exit
    # a short-lived process that allocates one object per source: the cyclic GC and freeing
    # everything at exit cost ~0.08 s of a 0.6 s re-pack, and nothing here needs either
    gc.disable()
    _fast_exit = True
    from app.services.packing import pack as run
    from ingest.pack import parse_budget

    if toc not in ("top", "end"):
        raise IngestError("--toc must be top or end")
    limit = parse_budget(budget) if budget else None
    with _progress() as progress:
        outcome = run(target, tokenizer, limit, fmt, fit, out_file, manifest, toc,  # type: ignore[arg-type]
                      _options(keep, max_file_size, True, fps, max_frames), progress,
                      lambda msg: console.print(f"[dim]{msg}"))
    r = outcome.result
    for item in r.reduced:
        console.print(f"[yellow]reduced[/] {item['path']}: {item['from']:,} -> {item['to']:,} "
                      f"tokens ({item['how']})")
    for item in r.dropped:
        console.print(f"[red]dropped[/] {item['path']}: {item['tokens']:,} tokens ({item['why']})")
    if outcome.skipped:
        console.print(f"[dim]{len(outcome.skipped)} files skipped by the noise filter or unreadable"
                      " (scoutlens ingest lists them)")
    where = f" -> {out_file}" if out_file not in (None, "-") else ""
    console.print(f"[bold]{len(r.blocks)}[/] sources, [bold]{r.total_tokens:,}[/] tokens"
                  + (f" of {r.budget:,}" if r.budget else "") + f" ({r.tokenizer}){where}")


@corpora_app.command("list")
def corpora_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List stored corpora."""
    from app.services.corpora import list_corpora

    rows = list_corpora()
    if as_json:
        out.print_json(json.dumps([r.__dict__ for r in rows]))
        return
    if not rows:
        console.print("no corpora yet: scoutlens ingest PATH --corpus NAME")
        return
    table = Table()
    for col in ("name", "sources", "skipped", "tokens", "tokenizer", "updated"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.name, str(r.sources), str(r.skipped), f"{r.tokens:,}", r.tokenizer,
                      r.updated_at)
    out.print(table)


@corpora_app.command("show")
def corpora_show(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a corpus: its sources with status and token counts, and a token tree."""
    from app.services.corpora import show_corpus
    from app.services.reports import token_tree

    summary, files = show_corpus(name)
    tree = token_tree([(f.path, f.tokens) for f in files if f.status == "ok"])
    if as_json:
        out.print_json(json.dumps({**summary.__dict__, "tree": tree, "files": [
            {"path": f.path, "status": f.status, "tokens": f.tokens, "bytes": f.bytes,
             "reason": f.reason, "flags": list(f.flags)} for f in files]}))
        return
    table = Table(title=f"{summary.name}: {summary.sources} sources, {summary.tokens:,} tokens")
    for col in ("path", "status", "tokens", "reason / flags"):
        table.add_column(col)
    for f in files:
        table.add_row(f.path, f.status, f"{f.tokens:,}", f.reason or ", ".join(f.flags))
    out.print(table)
    _print_tree(f"{summary.tokens:,} tokens ({summary.tokenizer})", tree)


@corpora_app.command("rm")
def corpora_rm(name: str) -> None:
    """Delete a corpus and everything stored for it."""
    from app.services.corpora import remove_corpus

    summary = remove_corpus(name)
    console.print(f"removed corpus {summary.name} ({summary.sources} sources)")


@app.command()
def ui(port: Annotated[int, typer.Option(help="port")] = 8501,
       host: Annotated[str, typer.Option(
           help="address to listen on (0.0.0.0 to serve a team; mind there is no login)")]
       = "127.0.0.1",
       trusted: Annotated[bool | None, typer.Option(
           "--trusted/--shared", help="trusted: users may ingest folders of this machine and "
           "change the model server; default: trusted on loopback, shared otherwise")]
       = None) -> None:
    """Start the web UI (Streamlit): corpora, ask, evals, engine, settings."""
    import importlib.util

    from app.settings import MAX_UPLOAD_MB

    spec = importlib.util.find_spec("ui.views.scoutlens_ui")
    assert spec is not None and spec.origin is not None
    args = [sys.executable, "-m", "streamlit", "run", spec.origin,
            "--server.port", str(port), "--server.address", host,
            "--server.headless", "true", "--server.fileWatcherType", "none",
            # the ceiling; the limit chosen in Settings is enforced per file by the app
            "--server.maxUploadSize", str(MAX_UPLOAD_MB),
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
            "--global.developmentMode", "false",
            # an unforeseen error shows its type, never a stack trace (that goes to the log)
            "--client.showErrorDetails", "type"]
    if trusted is None:
        trusted = host in ("127.0.0.1", "localhost", "::1")
    os.environ["SCOUTLENS_UI_SHARED"] = "0" if trusted else "1"
    console.print(f"scoutlens UI on http://{host}:{port} (Ctrl-C stops it)"
                  + ("" if trusted else "; shared: no local folders, no model-server changes"))
    sys.stdout.flush()
    os.execv(sys.executable, args)  # Streamlit gets the signals directly


@app.command()
def version() -> None:
    """Print the version."""
    from app import __version__

    out.print(f"scoutlens {__version__}")


# Engine, eval and history commands live in app/commands/, one module each (their heavy imports
# happen inside the commands, so `scoutlens --help` stays fast)
app.command()(complete_cmd.complete)
app.add_typer(cache_cmd.cache_app, name="cache")
app.command()(plan_cmd.plan)
app.add_typer(serve_cmd.serve_app, name="serve")
app.command()(prewarm_cmd.prewarm)
app.command()(ask_cmd.ask)
app.command()(ask_cmd.history)
app.add_typer(evals_cmd.eval_app, name="eval")


_fast_exit = False


def _error(exc: BaseException) -> None:
    """One line, whatever the message holds: no wrapping, no markup read from it."""
    from rich.markup import escape

    console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)


def main() -> None:
    """Entry point: user mistakes print a clear message and exit 1, never a traceback."""
    from engine.types import EngineError

    stopped_by: list[int] = []

    def terminate(signum, frame):  # SIGTERM cleans up as Ctrl-C does (temp folders, rollback)
        stopped_by.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        try:
            app()
        except SystemExit as done:
            if _fast_exit and done.code in (0, None):  # everything is written and flushed
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
            if done.code == 130:  # typer's answer to a KeyboardInterrupt
                raise KeyboardInterrupt from None
            raise
    except (IngestError, EngineError) as exc:
        _error(exc)
        sys.exit(1)
    except Exception as exc:
        # A database error means app.database was loaded; importing it (and SQLAlchemy, 0.2 s)
        # up front would slow every command, `pack` of a folder included.
        db = sys.modules.get("app.database")
        if db is None or not isinstance(exc, db.DatabaseError):
            raise
        _error(exc)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: nothing was stored half-way")
        sys.exit(128 + (stopped_by[0] if stopped_by else signal.SIGINT))


if __name__ == "__main__":
    main()
