"""`scoutlens search`: the ranked hits retrieval would choose from, with the signals behind them."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from app.commands.options import JsonOpt

console = Console(stderr=True)
out = Console()


def search(
    corpus: Annotated[str, typer.Argument(help="a stored corpus name")],
    query: Annotated[str, typer.Argument(help="words, identifiers, file names, a question")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=1000, help="hits to show")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The fused ranking of CORPUS for QUERY: each hit's path, lines or page, score, and the
    signals that found it (symbol definitions, file names and paths, BM25).

    \b
    Examples:
      scoutlens search myrepo get_best_fit
      scoutlens search myrepo "where is the retry limit decided" -k 5 --json
    """
    from app.services.search import search as run

    ranking = run(corpus, query, k=k)
    if as_json:
        print(json.dumps({"corpus": corpus, "query": query, "notes": ranking.notes,
                          "hits": [h.to_json() for h in ranking.hits]}, ensure_ascii=False))
        return
    for note in ranking.notes:
        console.print(f"[dim]{escape(note)}[/]")
    if not ranking.hits:
        console.print("[yellow]no hits[/]")
        return
    table = Table(title=f"{escape(corpus)}: {escape(query[:80])}")
    for col in ("#", "source", "where", "score", "found by"):
        table.add_column(col, justify="right" if col in ("#", "score") else "left")
    for i, h in enumerate(ranking.hits, 1):
        j = h.to_json()
        where = next((f"{key} {'-'.join(map(str, v)) if isinstance(v, list) else v}"
                      for key in ("lines", "page", "time", "cell") if (v := j.get(key))), "")
        found = ", ".join(f"{s} #{r}" for s, r in sorted(h.signals.items(), key=lambda x: x[1]))
        table.add_row(str(i), escape(h.segment.path), where, f"{h.score:.4f}", found)
    out.print(table)
