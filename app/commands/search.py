"""`scoutlens search`: the ranked hits retrieval would choose from, with the signals behind them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.commands.acting import who
from app.commands.options import JsonOpt, text_arg
from app.commands.shown import cell, shown

console = Console(stderr=True, emoji=False)
out = Console(emoji=False)


@contextmanager
def _lazy_progress(enabled: bool) -> Iterator:
    """A progress(stage, done, total, detail) whose bar (app.progress's) appears only once
    something long reports, such as embedding a corpus: a plain search shows none."""
    from app.progress import pipeline_progress

    with ExitStack() as stack:
        bar = []

        def update(stage: str, done: int, total: int, detail: str) -> None:
            if not bar:
                bar.append(stack.enter_context(pipeline_progress(console, enabled)))
            if bar[0] is not None:
                bar[0](stage, done, total, detail)

        yield update


def search(
    corpus: Annotated[str, typer.Argument(help="a stored corpus name", callback=text_arg)],
    query: Annotated[str, typer.Argument(help="words, identifiers, file names, a question",
                                         callback=text_arg)],
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=1000, help="hits to show")] = 20,
    as_json: JsonOpt = False,
    build_vectors: Annotated[bool, typer.Option(
        "--build-vectors", help="with SCOUTLENS_DENSE on: embed the corpus's segments now if "
        "its index lacks their sentence vectors (once; ~1 min per 1,000 segments on two "
        "cores)")] = False,
) -> None:
    """The fused ranking of CORPUS for QUERY: each hit's path, lines or page, score, and the
    signals that found it (symbol definitions, file names and paths, BM25, BM25 inside the
    packages the query names, the best few lines of each candidate, and sentence vectors when
    SCOUTLENS_DENSE is on).

    \b
    Examples:
      scoutlens search myrepo get_best_fit
      scoutlens search myrepo "where is the retry limit decided" -k 5 --json
      SCOUTLENS_DENSE=1 scoutlens search mypdfs "how are invoices approved" --build-vectors
    """
    from app.services.search import search as run

    with _lazy_progress(not as_json) as progress:
        ranking = run(corpus, query, k=k, build_vectors=build_vectors or None, who=who(),
                      progress=progress)
    if as_json:
        print(json.dumps({"corpus": corpus, "query": query, "notes": ranking.notes,
                          "scope": ranking.scope, "hits": [h.to_json() for h in ranking.hits]},
                         ensure_ascii=False))
        return
    for note in ranking.notes:
        console.print(f"[dim]{shown(note)}[/]")
    if ranking.scope:
        console.print(f"[dim]ranked inside what the query names too: "
                      f"{shown(', '.join(ranking.scope))}[/]")
    if not ranking.hits:
        console.print("[yellow]no hits[/]")
        return
    table = Table(title=f"{shown(corpus)}: {cell(query, 80)}")
    for col in ("#", "source", "where", "score", "found by"):
        table.add_column(col, justify="right" if col in ("#", "score") else "left")
    for i, h in enumerate(ranking.hits, 1):
        j = h.to_json()
        where = j.get("part") or next(
            (f"{key} {'-'.join(map(str, v)) if isinstance(v, list) else v}"
             for key in ("lines", "page", "time", "cell") if (v := j.get(key))), "")
        found = ", ".join(f"{s} #{r}" for s, r in sorted(h.signals.items(), key=lambda x: x[1]))
        table.add_row(str(i), cell(h.segment.path), shown(where), f"{h.score:.4f}", found)
    out.print(table)
