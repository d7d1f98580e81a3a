"""The `scoutlens` command: the commands of app/commands/ registered in one place, and the
entry point that turns user mistakes into one-line errors."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from typing import Annotated

import typer
from rich.console import Console

from app.commands.acting import act_as
from app.commands.options import text_arg
from common.errors import UserError

#: every command, in the order `scoutlens --help` lists them: (name, module in app/commands,
#: its function or sub-app). A run imports only its own command's module (all of them: ~0.3 s,
#: a third of a re-pack); --help, a typo or no command imports them all.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("ingest", "corpora", "ingest"), ("pack", "pack", "pack"),
    ("corpora", "corpora", "corpora_app"), ("ui", "ui", "ui"), ("version", "ui", "version"),
    ("complete", "complete", "complete"), ("cache", "cache", "cache_app"),
    ("plan", "plan", "plan"), ("serve", "serve", "serve_app"),
    ("prewarm", "prewarm", "prewarm"), ("ask", "ask", "ask"), ("search", "search", "search"),
    ("mcp", "mcp", "mcp"), ("history", "ask", "history"), ("analyze", "analyze", "analyze"),
    ("analyses", "analyze", "analyses"), ("eval", "eval", "eval_app"),
    ("users", "users", "users_app"), ("audit", "users", "audit"),
)

console = Console(stderr=True)


def build(only: str | None = None) -> typer.Typer:
    """The command line with every command, or with `only` that one."""
    cli = typer.Typer(help="Long-context retrieval and document analysis around Llama 4 Scout.",
                      no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False)
    cli.callback()(_everyone)
    for name, module, attr in COMMANDS:
        if only is None or name == only:
            target = getattr(importlib.import_module(f"app.commands.{module}"), attr)
            if isinstance(target, typer.Typer):
                cli.add_typer(target, name=name)
            else:
                cli.command(name=name)(target)
    return cli


def _asked(argv: list[str]) -> str | None:
    """The command a command line runs (after `--as USER`), or None for --help, a typo, none."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] == "--as":
            i += 1
        elif not argv[i].startswith("--as="):
            return None
        i += 1
    name = argv[i] if i < len(argv) else None
    return name if any(name == n for n, _, _ in COMMANDS) else None


def __getattr__(name: str):
    if name == "app":  # the whole command line, for tests that invoke it in-process
        return build()
    raise AttributeError(name)


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
            build(_asked(sys.argv[1:]))()
        except SystemExit as done:
            pack_cmd = sys.modules.get("app.commands.pack")  # everything written and flushed
            if pack_cmd is not None and pack_cmd.fast_exit and done.code in (0, None):
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
