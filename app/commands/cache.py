"""`scoutlens cache stats|clear`: the embedded backend's on-disk KV cache."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from app.commands.options import JsonOpt

out = Console()


cache_app = typer.Typer(help="The embedded backend's KV cache on disk.", no_args_is_help=True)

@cache_app.command("stats")
def stats(as_json: JsonOpt = False) -> None:
    """Blocks and bytes per model in the on-disk KV cache."""
    from app.settings import get_settings
    from engine.kvcache import usage_by_model

    root = get_settings().kv_dir
    rows = [{"model_key": k, "blocks": n, "bytes": size}
            for k, (n, size) in sorted(usage_by_model(root).items())]
    total_blocks = sum(r["blocks"] for r in rows)
    total_bytes = sum(r["bytes"] for r in rows)
    report = {"dir": str(root), "blocks": total_blocks, "bytes": total_bytes,
              "budget_bytes": int(get_settings().kv_disk_gb * 2**30), "models": rows}
    if as_json:
        print(json.dumps(report))
        return
    table = Table(title=f"KV cache in {root}")
    for col in ("model key", "blocks", "MB"):
        table.add_column(col, justify="right" if col != "model key" else "left")
    for r in rows:
        table.add_row(r["model_key"], f"{r['blocks']:,}", f"{r['bytes'] / 1e6:,.1f}")
    table.add_row("total", f"{total_blocks:,}", f"{total_bytes / 1e6:,.1f}", style="bold")
    out.print(table)

@cache_app.command("clear")
def clear() -> None:
    """Delete every cached KV block (answers stay correct; the next prefill is cold)."""
    from app.settings import get_settings
    from engine.kvcache import clear_disk

    removed = clear_disk(get_settings().kv_dir)
    out.print(f"removed {removed:,} cached KV blocks")
