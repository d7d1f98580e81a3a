"""`scoutlens users list` and `scoutlens audit`: who signed in, and who did what."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.commands.acting import who
from app.commands.options import JsonOpt, text_arg
from app.commands.shown import cell, shown
from common.errors import UserError

console = Console(stderr=True)
out = Console()
users_app = typer.Typer(help="People who signed in to the shared UI.", no_args_is_help=True)
AGO = re.compile(r"^(\d+)\s*([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """List who has signed in, with their groups at their last sign-in."""
    from app.services.users import list_users

    rows = list_users(who=who())
    if as_json:
        out.print_json(json.dumps([r.__dict__ for r in rows]))
        return
    if not rows:
        console.print("nobody has signed in yet")
        return
    table = Table()
    for col in ("user", "groups", "admin", "via", "last seen"):
        table.add_column(col)
    for r in rows:
        table.add_row(cell(r.name), cell(", ".join(r.groups)), "yes" if r.admin else "",
                      cell(r.via), r.last_seen)
    out.print(table)


def parse_since(text: str) -> datetime:
    """`2026-12-01`, `2026-12-01T10:00`, or an age: `30m`, `12h`, `7d`, `2w` (UTC)."""
    t = text.strip().lower()
    m = AGO.match(t)
    if m:
        return (datetime.now(UTC) - timedelta(**{UNITS[m[2]]: int(m[1])})).replace(tzinfo=None)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"--since takes a date (2026-12-01), a time (2026-12-01T10:00) or an "
                        f"age (30m, 12h, 7d, 2w), not {text!r}") from None
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def audit(
    user: Annotated[str | None, typer.Option("--user", help="only this person's entries",
                                             callback=text_arg)]
    = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="only after: 2026-12-01, 2026-12-01T10:00, or 30m / 12h / 7d")] = None,
    limit: Annotated[int, typer.Option(min=1, help="entries at most")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """Who ingested, asked, shared or deleted what, and when (newest first)."""
    from app.services.users import audit_log

    rows = audit_log(user, parse_since(since) if since else None, limit, who=who())
    if as_json:
        out.print_json(json.dumps([r.__dict__ for r in rows]))
        return
    if not rows:
        console.print("no audit entries" + (f" for {shown(user)}" if user else ""))
        return
    table = Table()
    for col in ("when (UTC)", "user", "action", "target", "detail"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.at, cell(r.user), cell(r.action), cell(r.target),
                      cell(", ".join(f"{k}={v}" for k, v in r.detail.items())))
    out.print(table)
