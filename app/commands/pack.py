"""`scoutlens pack`: a corpus or paths as one text that fits a token budget."""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console

from app.commands.acting import who
from app.commands.options import (
    FpsOpt,
    KeepOpt,
    MaxFramesOpt,
    MaxImagePixelsOpt,
    MaxSizeOpt,
    TokenizerOpt,
    pipeline_options,
    text_or_path_arg,
)
from app.commands.shown import TerminalSafe, shown
from app.progress import pipeline_progress
from ingest.types import IngestError

if TYPE_CHECKING:
    from ingest.pack import Format, TocPosition

console = Console(stderr=True)
#: set by a pack that wrote everything: app.cli.main then exits without freeing every object
fast_exit = False


def pack(
    target: Annotated[list[str], typer.Argument(help="a corpus name, or paths",
                                                callback=text_or_path_arg)],
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
    max_image_pixels: MaxImagePixelsOpt = None,
) -> None:
    """Pack a corpus or paths into one text that fits a token budget."""
    global fast_exit
    # a short-lived process that allocates one object per source: the cyclic GC and freeing
    # everything at exit cost ~0.08 s of a 0.6 s re-pack, and nothing here needs either
    gc.disable()
    fast_exit = True
    from app.services.packing import PackInput
    from app.services.packing import pack as run
    from ingest.pack import parse_budget

    if toc not in ("top", "end"):
        raise IngestError("--toc must be top or end")
    limit = parse_budget(budget) if budget else None
    to_screen = out_file in (None, "-") and sys.stdout.isatty()
    if to_screen:
        sys.stdout = TerminalSafe(sys.stdout)  # type: ignore[assignment]
    with pipeline_progress(console, not to_screen) as progress:  # no bar drawn over the pack
        job = PackInput(target, tokenizer, limit, cast("Format", fmt), fit, out_file, manifest,
                        cast("TocPosition", toc), pipeline_options(
                            keep, max_file_size, True, fps, max_frames, max_image_pixels))
        outcome = run(job, progress, lambda msg: console.print(f"[dim]{shown(msg)}"), who())
    r = outcome.result
    for item in r.reduced:
        console.print(f"[yellow]reduced[/] {shown(item['path'])}: {item['from']:,} -> "
                      f"{item['to']:,} tokens ({item['how']})")
    for item in r.dropped:
        console.print(f"[red]dropped[/] {shown(item['path'])}: {item['tokens']:,} tokens "
                      f"({shown(item['why'])})")
    if outcome.skipped:
        console.print(f"[dim]{len(outcome.skipped)} files skipped by the noise filter or unreadable"
                      " (scoutlens ingest lists them)")
    where = f" -> {shown(out_file)}" if out_file not in (None, "-") else ""
    console.print(f"[bold]{len(r.blocks)}[/] sources, [bold]{r.total_tokens:,}[/] tokens"
                  + (f" of {r.budget:,}" if r.budget else "") + f" ({shown(r.tokenizer)}){where}")
    if (seen := r.pictures())["pictures"]:
        console.print(picture_summary(seen))


def picture_summary(seen: dict) -> str:
    """The pack's pictures in one line: how many, and what their images cost."""
    n = seen["pictures"]
    text = f"{n} picture{'s' if n != 1 else ''}"
    if seen["images"]:
        return (f"{text}: {seen['images']} with their image, {seen['image_tokens']:,} image "
                "tokens (in the total)")
    return f"{text}, as their text only (no image kept: a text-only tokenizer, or withheld)"
