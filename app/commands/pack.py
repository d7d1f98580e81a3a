"""`scoutlens pack`: a corpus or paths as one text that fits a token budget."""

from __future__ import annotations

import gc
import sys
import time
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
    from app.services.packing import PackInput, PackOutcome
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
    watch: Annotated[bool, typer.Option(
        "--watch", help="stay up and pack again whenever a file under the paths changes "
        "(needs --out; Ctrl-C stops)")] = False,
) -> None:
    """Pack a corpus or paths into one text that fits a token budget."""
    global fast_exit
    # a short-lived process that allocates one object per source: the cyclic GC and freeing
    # everything at exit cost ~0.08 s of a 0.6 s re-pack, and nothing here needs either
    gc.disable()
    from app.services.packing import PackInput
    from app.services.packing import pack as run
    from ingest.pack import parse_budget

    if toc not in ("top", "end"):
        raise IngestError("--toc must be top or end")
    limit = parse_budget(budget) if budget else None
    to_screen = out_file in (None, "-") and sys.stdout.isatty()
    if to_screen:
        sys.stdout = TerminalSafe(sys.stdout)  # type: ignore[assignment]
    job = PackInput(target, tokenizer, limit, cast("Format", fmt), fit, out_file, manifest,
                    cast("TocPosition", toc), pipeline_options(
                        keep, max_file_size, True, fps, max_frames, max_image_pixels))
    if watch:
        _watch(job)
        return
    fast_exit = True
    with pipeline_progress(console, not to_screen) as progress:  # no bar drawn over the pack
        outcome = run(job, progress, _note, who())
    _summary(outcome)


def _note(msg: str) -> None:
    console.print(f"[dim]{shown(msg)}")


def _watch(job: PackInput) -> None:
    """Pack, then pack again on every change until Ctrl-C: one line a re-pack."""
    import threading
    from contextlib import ExitStack

    from app.services.pack_watch import Repack, watch

    first = [True]
    bar = ExitStack()  # the first pack's progress bar, closed once it is done

    def packed(done: Repack) -> None:
        if first[0]:
            first[0] = False
            bar.close()
            gc.freeze()  # what the first pack built stays: the collector skips it from now on
            gc.enable()
            _summary(cast("PackOutcome", done.outcome))
            console.print(f"[dim]watching {len(job.target)} path"
                          f"{'s' if len(job.target) != 1 else ''} ({done.events}); "
                          "Ctrl-C stops")
            return
        at = time.strftime("%H:%M:%S")
        if done.error is not None:
            console.print(f"[dim]{at}[/] [red]pack failed[/]: {shown(done.error)} "
                          "(the last pack stays; still watching)")
            return
        outcome = cast("PackOutcome", done.outcome)
        r = outcome.result
        console.print(f"[dim]{at}[/] re-packed in {done.seconds:.2f} s: [bold]{len(r.blocks)}"
                      f"[/] sources, [bold]{r.total_tokens:,}[/] tokens"
                      + (f" of {r.budget:,}" if r.budget else "")
                      + f" ({outcome.recalled:,} file{'s' if outcome.recalled != 1 else ''}"
                      " unchanged, not read)")

    with bar:
        progress = bar.enter_context(pipeline_progress(console))
        try:
            watch(job, packed, threading.Event(), progress, _note)
        except KeyboardInterrupt:
            if first[0]:  # stopped before the first pack was written: as a plain pack is
                raise
            console.print("[dim]stopped watching: the last pack is complete")


def _summary(outcome: PackOutcome) -> None:
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
    out_file = outcome.out
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
