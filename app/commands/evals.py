"""`scoutlens eval run|list|report|compare`: long-context regression evals with a CI gate."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)
out = Console()


def _lengths(text: str) -> tuple[int, ...]:
    from ingest.pack import parse_budget

    return tuple(parse_budget(x) for x in text.split(",") if x.strip())


def _depths(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) / (100 if float(x) > 1 else 1) for x in text.split(",") if x)
    except ValueError:
        raise typer.BadParameter(f"depths are fractions or percents: {text!r}") from None
    if not vals or any(not 0 <= v <= 1 for v in vals):
        raise typer.BadParameter("depths must lie between 0 and 1 (or 0 and 100%)")
    return vals


def register(app: typer.Typer) -> None:
    eval_app = typer.Typer(help="Long-context evals: NIAH and RULER-style.", no_args_is_help=True)
    app.add_typer(eval_app, name="eval")

    @eval_app.command("run")
    def run_cmd(
        task: Annotated[str, typer.Option(help="comma-separated: niah, single, multikey, ...")]
        = "niah",
        lengths: Annotated[str, typer.Option(help="e.g. 1k,4k,32k")] = "1k,2k,4k",
        depths: Annotated[str, typer.Option(help="e.g. 0,25,50,75,100")] = "0,25,50,75,100",
        samples: Annotated[int, typer.Option(min=1)] = 1,
        haystack: Annotated[str, typer.Option(help="prose | filler")] = "prose",
        backend: Annotated[str | None, typer.Option(help="embedded | openai")] = None,
        endpoint: Annotated[str | None, typer.Option()] = None,
        model: Annotated[str | None, typer.Option()] = None,
        concurrency: Annotated[int, typer.Option(min=1)] = 4,
        run_id: Annotated[str | None, typer.Option("--run-id", help="resume this run")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
        tokenizer: Annotated[str, typer.Option("-t", "--tokenizer",
                                               help="counts lengths (embedded: the model's)")]
        = "",
    ) -> None:
        """Run (or resume) an eval grid; every cell is stored as it finishes."""
        from app.services import evals
        from engine.factory import make_backend
        from evals.runner import EvalConfig
        from evals.tasks import TASKS, Generator
        from ingest.tokenizers import load_tokenizer

        tasks = tuple(t.strip() for t in task.split(",") if t.strip())
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise typer.BadParameter(f"unknown task {', '.join(unknown)}: {', '.join(TASKS)}")
        config = EvalConfig(tasks, _lengths(lengths), _depths(depths), samples, haystack,
                            concurrency=concurrency)
        engine = None if dry_run else make_backend(backend, endpoint=endpoint, model=model)
        spec = tokenizer or ("embedded" if engine is None or engine.name == "embedded"
                             else "cl100k")
        tok = load_tokenizer(spec)
        gen = Generator(tok.encode, tok.decode, haystack)
        if dry_run:
            plan = evals.dry_run(config, gen)
            out.print(f"{plan['requests']} requests, {plan['prompt_tokens']:,} prompt tokens")
            return
        columns = (TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            t = bar.add_task("cells", total=None)
            done = evals.run(config, engine, gen, run_id,
                             lambda d, n: bar.update(t, completed=d, total=n))
        s = evals.summary(done)
        out.print(f"run {done}: {s.done} cells done, {s.failed} failed, mean score "
                  f"{(s.mean or 0):.3f} (scoutlens eval report {done})")

    @eval_app.command("list")
    def list_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Eval runs, newest first."""
        from app.services import evals

        runs = evals.list_runs()
        if as_json:
            print(json.dumps([asdict(r) for r in runs]))
            return
        table = Table(title="eval runs")
        for col in ("run", "created", "status", "cells", "failed", "mean", "model"):
            table.add_column(col)
        for r in runs:
            table.add_row(r.run_id, r.created_at, r.status, str(r.cells), str(r.failed),
                          f"{r.mean:.3f}" if r.mean is not None else "-",
                          str(r.fingerprint.get("model", "")))
        out.print(table)

    @eval_app.command("report")
    def report_cmd(run_id: str, as_json: Annotated[bool, typer.Option("--json")] = False,
                   out_dir: Annotated[Path | None, typer.Option("--out")] = None) -> None:
        """Scores per cell, effective length, heatmap PNG and an HTML report."""
        from app.services import evals
        from evals.report import effective_length, heatmap_png, html_report

        cells = evals.cells_of(run_id)
        s = evals.summary(run_id)
        if as_json:
            print(json.dumps({"run_id": run_id, "status": s.status, "mean": s.mean,
                              "effective_length": effective_length(cells),
                              "fingerprint": s.fingerprint,
                              "cells": [asdict(c) for c in cells]}))
            return
        from engine.types import EngineError

        folder = out_dir or Path(f"eval-{run_id}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for task in sorted({c.task for c in cells}):
                (folder / f"{task}.png").write_bytes(
                    heatmap_png(cells, task, f"{task} ({run_id})"))
            (folder / "report.html").write_text(html_report(run_id, s.config, cells))
        except OSError as exc:
            raise EngineError(f"cannot write the report to {folder}: {exc.strerror}") from None
        out.print(f"run {run_id}: mean {(s.mean or 0):.3f}, effective length "
                  f"{effective_length(cells):,} tokens; report in {folder}/report.html")

    @eval_app.command("compare")
    def compare_cmd(run_a: str, run_b: str,
                    fail_on_regression: Annotated[float | None, typer.Option(
                        "--fail-on-regression", help="exit 1 on a significant drop of more "
                        "than this many points")] = None,
                    as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Per-cell deltas B - A, a sign test, and a non-zero exit on a significant regression."""
        from app.services import evals
        from evals.report import compare

        a, b = evals.summary(run_a), evals.summary(run_b)
        if a.fingerprint != b.fingerprint:
            differ = {k for k in set(a.fingerprint) | set(b.fingerprint)
                      if a.fingerprint.get(k) != b.fingerprint.get(k)}
            console.print(f"[yellow]warning[/]: the runs used different endpoints "
                          f"({', '.join(sorted(differ))} differ)")
        c = compare(evals.cells_of(run_a), evals.cells_of(run_b))
        report = {"mean_delta": c.mean_delta, "p_value": c.p_value, "worse": c.worse,
                  "better": c.better, "cells": len(c.deltas)}
        if as_json:
            print(json.dumps(report))
        else:
            out.print(f"{len(c.deltas)} cells: mean delta {c.mean_delta:+.3f}, {c.worse} worse, "
                      f"{c.better} better, sign test p = {c.p_value:.3g}")
        if fail_on_regression is not None and c.regression(fail_on_regression):
            console.print(f"[red]regression[/]: {c.mean_delta * 100:+.1f} points (p = "
                          f"{c.p_value:.3g})")
            raise typer.Exit(1)
