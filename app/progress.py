"""The rich progress bar that the ingest pipeline's progress(stage, done, total, detail) feeds,
shared by the commands that ingest (ingest, pack, ask). The detail is a file's path, which a
document controls: it is shown as text, never read as rich markup, its controls visible (an
escape sequence in a file name would otherwise retitle the window or clear the screen)."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.commands.shown import visible


@contextmanager
def pipeline_progress(console: Console, enabled: bool = True):
    """A rich progress bar fed by the pipeline's progress(stage, done, total, detail)."""
    if not enabled or not console.is_terminal:
        yield None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[detail]}", style="dim", markup=False),
                  TimeElapsedColumn(),
                  console=console, transient=True,
                  # stdout is the command's data (a pack, an answer): rich's redirect sent it
                  # to the bar's terminal (stderr), so `pack DIR > out.txt` wrote an empty file
                  redirect_stdout=False) as bar:
        task = bar.add_task("collecting", total=None, detail="")

        def update(stage: str, done: int, total: int, detail: str) -> None:
            label = {"collect": "collecting", "read": "reading", "count": "counting",
                     "index": "indexing",
                     "embed": "embedding"}.get(stage, stage)
            bar.update(task, description=label, completed=done, total=total or None,
                       detail=visible(detail)[-50:])

        # a command that starts writing its own output (an answer streamed to stdout) stops the
        # bar first: while it runs, stdout is rich's proxy, which reads what is written as markup
        update.stop = bar.stop  # type: ignore[attr-defined]
        yield update
