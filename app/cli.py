"""The `scoutlens` command: the commands of app/commands/ registered in one place, and the
entry point that turns user mistakes into one-line errors."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Annotated

import typer
from rich.console import Console

from app.commands import analyze as analyze_cmd
from app.commands import ask as ask_cmd
from app.commands import cache as cache_cmd
from app.commands import complete as complete_cmd
from app.commands import corpora as corpora_cmd
from app.commands import eval as eval_cmd
from app.commands import mcp as mcp_cmd
from app.commands import pack as pack_cmd
from app.commands import plan as plan_cmd
from app.commands import prewarm as prewarm_cmd
from app.commands import search as search_cmd
from app.commands import serve as serve_cmd
from app.commands import ui as ui_cmd
from app.commands import users as users_cmd
from app.commands.acting import act_as
from app.commands.options import text_arg
from common.errors import UserError

app = typer.Typer(help="Long-context retrieval and document analysis around Llama 4 Scout.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console(stderr=True)

# the order `scoutlens --help` lists them in
app.command()(corpora_cmd.ingest)
app.command()(pack_cmd.pack)
app.add_typer(corpora_cmd.corpora_app, name="corpora")
app.command()(ui_cmd.ui)
app.command()(ui_cmd.version)
app.command()(complete_cmd.complete)
app.add_typer(cache_cmd.cache_app, name="cache")
app.command()(plan_cmd.plan)
app.add_typer(serve_cmd.serve_app, name="serve")
app.command()(prewarm_cmd.prewarm)
app.command()(ask_cmd.ask)
app.command()(search_cmd.search)
app.command()(mcp_cmd.mcp)
app.command()(ask_cmd.history)
app.command()(analyze_cmd.analyze)
app.command()(analyze_cmd.analyses)
app.add_typer(eval_cmd.eval_app, name="eval")
app.add_typer(users_cmd.users_app, name="users")
app.command()(users_cmd.audit)


@app.callback()
def _everyone(as_user: Annotated[str | None, typer.Option(
        "--as", metavar="USER", help="act as this person (with the groups of their last "
        "sign-in): see what they see, share on their behalf; default: the operator, who sees "
        "everything", callback=text_arg)] = None) -> None:
    act_as(as_user)


def _error(exc: BaseException) -> None:
    """One line, whatever the message holds: no wrapping, no markup read from it."""
    from app.commands.shown import shown

    console.print(f"[red]error:[/] {shown(exc)}", soft_wrap=True)


def stop_handler(stopped_by: list[int]):
    """A handler for SIGTERM and SIGINT that stops the command as Ctrl-C does (temp folders
    removed, the database transaction rolled back). A KeyboardInterrupt raised while a finalizer
    (`__del__`, e.g. a ZipFile's, run by the garbage collector) is on the stack is printed and
    dropped by Python, and the command would run on to its end: then the signal is sent again
    a moment later, when the finalizer is done."""

    def handler(signum, frame) -> None:
        stopped_by.append(signum)
        f = frame
        while f is not None:
            if f.f_code.co_name == "__del__":
                threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
                return
            f = f.f_back
        raise KeyboardInterrupt

    return handler


def main() -> None:
    """Entry point: user mistakes print a clear message and exit 1, never a traceback. They are
    all UserErrors (common.errors), the database's included: catching the one class needs no
    import of app.database (and SQLAlchemy, 0.2 s), which would slow every command, `pack` of a
    folder included."""
    stopped_by: list[int] = []
    terminate = stop_handler(stopped_by)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    try:
        try:
            app()
        except SystemExit as done:
            if pack_cmd.fast_exit and done.code in (0, None):  # everything is written and flushed
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
            if done.code == 130:  # typer's answer to a KeyboardInterrupt
                raise KeyboardInterrupt from None
            raise
    except UserError as exc:  # ingest, engine and database errors alike
        _error(exc)
        sys.exit(getattr(exc, "exit_code", 1))  # 2: a bad argument (options.NotText)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: nothing was stored half-way")
        sys.exit(128 + (stopped_by[0] if stopped_by else signal.SIGINT))


if __name__ == "__main__":
    main()
