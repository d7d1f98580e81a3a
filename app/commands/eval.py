"""`scoutlens eval run|list|report|compare|rescore`: long-context regression evals with a CI
gate. A suite YAML names the grid and the target; flags override it."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from app.commands.acting import who
from app.commands.options import (
    BackendOpt,
    EndpointOpt,
    JsonOpt,
    ModelOpt,
    text_arg,
    tokenizer_option,
)

RunId = Annotated[str, typer.Argument(callback=text_arg)]

console = Console(stderr=True)
out = Console()


def _data_folder(data: str) -> str:
    """--data as an absolute path; a path the system refuses is one line."""
    from engine.types import EngineError

    try:
        path = Path(data).expanduser().absolute()
        path.exists()
    except (OSError, RuntimeError, ValueError) as exc:
        raise EngineError(f"--data {data[:80]!r}: not a usable path ({exc})") from None
    return str(path)


def _split(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text is not None else None


def _write_report(run_id: str, folder: Path) -> Path:
    from app.services import eval_runs
    from engine.types import EngineError
    from evals.report import curve_png, heatmap_png, html_report

    cells = eval_runs.cells_of(run_id, who=who())
    s = eval_runs.summary(run_id, who=who())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for task in sorted({c.task for c in cells}):
            (folder / f"{task}.png").write_bytes(heatmap_png(cells, task, f"{task} ({run_id})"))
        if cells:
            (folder / "curve.png").write_bytes(curve_png(cells, f"score vs length ({run_id})"))
        (folder / "report.html").write_text(html_report(run_id, s.config, cells))
        _write_ruler(run_id, folder, str(s.fingerprint.get("model") or "model"))
        _write_longbench(run_id, folder, str(s.fingerprint.get("model") or "model"))
    except OSError as exc:
        raise EngineError(f"cannot write the report to {folder}: {exc.strerror}") from None
    return folder / "report.html"


def _ruler_results(run_id: str) -> tuple[dict, object]:
    from app.services import eval_runs
    from evals import ruler_report

    by_length = ruler_report.summary(eval_runs.ruler_predictions(run_id, who=who()))
    return by_length, ruler_report.table(by_length)


def _write_ruler(run_id: str, folder: Path, model: str) -> None:
    """RULER's own files beside ours: ruler/LENGTH/summary.csv and ruler/table.md."""
    from evals import ruler_report

    by_length, row = _ruler_results(run_id)
    for length, rows in by_length.items():
        (folder / "ruler" / str(length)).mkdir(parents=True, exist_ok=True)
        (folder / "ruler" / str(length) / ruler_report.summary_name(rows)).write_text(
            ruler_report.summary_csv(rows))
    if row is not None:
        (folder / "ruler" / "table.md").write_text(
            ruler_report.table_markdown(row, _one_cell(model)))


def _one_cell(name: str) -> str:
    """A model's name as one cell of a Markdown table or a TSV line."""
    return " ".join(name.replace("|", "/").split()) or "model"


def _longbench_results(run_id: str) -> dict[tuple[str, int], dict]:
    from app.services import eval_runs
    from evals import longbench

    return {k: longbench.results(rows)
            for k, rows in eval_runs.longbench_rows(run_id, who=who()).items()}


def _write_longbench(run_id: str, folder: Path, model: str) -> None:
    """LongBench v2's result.txt per length: a line per variant, named as pred.py names its
    files (MODEL, MODEL_cot, MODEL_no_context)."""
    from evals import longbench

    by_length: dict[int, list[tuple[str, dict]]] = {}
    for (task, length), row in _longbench_results(run_id).items():
        name = _one_cell(model).split("/")[-1] + {"longbench-v2": "", "longbench-v2-cot": "_cot",
                                       "longbench-v2-nocontext": "_no_context"}[task]
        by_length.setdefault(length, []).append((name, row))
    for length, rows in by_length.items():
        (folder / "longbench-v2" / str(length)).mkdir(parents=True, exist_ok=True)
        (folder / "longbench-v2" / str(length) / "result.txt").write_text(
            longbench.result_txt(rows))


eval_app = typer.Typer(help="Long-context evals: NIAH, RULER, BABILong.", no_args_is_help=True)

@eval_app.command("run")
def run_cmd(
    suite: Annotated[Path | None, typer.Argument(
        help="a suite YAML file (tasks, lengths, depths, target); flags override it")]
    = None,
    task: Annotated[str | None, typer.Option(
        help="comma-separated: niah; ruler (RULER's 13 tasks, made as RULER makes them) or "
             "ruler-niah_single_1 ... ruler-qa_2 (essay and qa tasks need --data DIR with "
             "RULER's files, or --haystack CORPUS for the essays); ruler-style (single, "
             "multikey, multivalue, multiquery, vt, cwe, fwe, qa: RULER's families made "
             "here); code, pdf, video need --haystack CORPUS; babilong (qa1-qa5) or "
             "babilong-qa1..qa5 need --data DIR; longbench-v2, longbench-v2-cot, "
             "longbench-v2-nocontext need --data DIR with its data.json; mrcr (mrcr-2, "
             "mrcr-4, mrcr-8) needs --data DIR with openai/mrcr's parquet files [default: niah]",
        callback=text_arg)] = None,
    lengths: Annotated[str | None, typer.Option(
        help="e.g. 1k,4k,32k,128k,1M [default: 1k,2k,4k]")] = None,
    depths: Annotated[str | None, typer.Option(
        help="percent, e.g. 0,25,50,75,100 [default: those]")] = None,
    samples: Annotated[int | None, typer.Option(help="per cell [default: 1]")] = None,
    seed: Annotated[int | None, typer.Option(help="[default: 0]")] = None,
    haystack: Annotated[str | None, typer.Option(
        help="prose | filler | an ingested corpus's name [default: prose]",
        callback=text_arg)] = None,
    max_tokens: Annotated[int | None, typer.Option(
        "--max-tokens", help="answer tokens [default: 32]")] = None,
    backend: BackendOpt = None,
    endpoint: EndpointOpt = None,
    model: ModelOpt = None,
    concurrency: Annotated[int | None, typer.Option(
        help="requests in flight to an endpoint [default: 4]")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="resume this run",
                                               callback=text_arg)] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="write the report (HTML, PNGs) here when the run ends")] = None,
    data: Annotated[str | None, typer.Option(
        help="a local copy of a published suite's files (babilong: RMT-team/babilong; "
             "longbench-v2: THUDM/LongBench-v2's data.json; mrcr: openai/mrcr; ruler: "
             "PaulGrahamEssays.json, "
             "squad.json, hotpotqa.json as RULER names them)",
        callback=text_arg)] = None,
    keep_thinking: Annotated[bool, typer.Option(
        "--keep-thinking", help="score a reasoning model's <think> block with its answer "
        "[default: the answer after it]")] = False,
    ruler_template: Annotated[str | None, typer.Option(
        "--ruler-template", help="RULER's prompt as its `base` model template (raw completion) "
        "or `chat` (one user message, as its OpenAI client sends it) [default: base]",
        callback=text_arg)] = None,
    suite_max_tokens: Annotated[int | None, typer.Option(
        "--suite-max-tokens", help="answer tokens for BABILong, LongBench v2 and MRCR in place "
        "of their authors' (a reasoning model needs room to think) [default: theirs]")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    tokenizer: Annotated[str | None, tokenizer_option(
        "counts lengths [default: the server's /tokenize, or the embedded model's]")] = None,
) -> None:
    """Run (or resume) an eval grid; every cell is stored as it finishes."""
    from app.services import eval_runs
    from app.services.backends import make_backend
    from engine.types import EngineError
    from evals import suite as suites
    from evals.tasks import PUBLISHED_TASKS, SUITE_TASKS

    loaded = suites.load(suite) if suite is not None else None
    flags = {"tasks": _split(task), "lengths": _split(lengths), "depths": _split(depths),
             "samples": samples, "seed": seed, "haystack": haystack,
             "max_tokens": max_tokens, "backend": backend, "endpoint": endpoint,
             "model": model, "concurrency": concurrency, "tokenizer": tokenizer,
             "data": _data_folder(data) if data else None,
             "keep_thinking": keep_thinking or None, "ruler_template": ruler_template,
             "suite_max_tokens": suite_max_tokens,
             "run_id": run_id, "out": str(out_dir) if out_dir else None}
    config, target = suites.resolve(loaded, flags)
    if target.run_id and (stored := eval_runs.stored_config(target.run_id, who=who())) is not None:
        if target.tokenizer and target.tokenizer != stored.tokenizer:
            raise EngineError(f"run {target.run_id} counts its lengths with {stored.tokenizer}: "
                              "a resumed run keeps it (drop --tokenizer)")
        console.print(f"resuming run {escape(target.run_id)} with its stored grid")
        config = replace(stored, data=config.data or stored.data)  # files where they are now
    if dry_run:
        window, unknown = eval_runs.target_window(target.backend, target.endpoint, target.model)
        gen = None
        if any(t in PUBLISHED_TASKS for t in config.tasks):  # counted from the files
            from app.services.tokencache import tokenizer as load_tokenizer
            from evals.tasks import Generator

            tok = load_tokenizer(target.tokenizer or config.tokenizer or "cl100k")
            gen = Generator(tok.encode, tok.decode, data=config.data or None)
        plan = eval_runs.dry_run(config, gen, window=window)
        if gen is not None:
            console.print(f"[dim]prompt tokens of published files counted with {escape(tok.spec)}")
        out.print(f"{plan['requests']} requests, {plan['prompt_tokens']:,} prompt tokens "
                  f"({', '.join(f'{t}: {n}' for t, n in plan['per_task'].items())}); "
                  "no prompt sent")
        for n in plan["too_long"]:
            console.print(f"[yellow]warning[/]: length {n:,} does not fit the model's "
                          f"window of {window:,} tokens with {config.max_tokens} answer "
                          "tokens reserved: the run would refuse it", soft_wrap=True)
        if unknown:
            console.print(f"[yellow]warning[/]: {escape(unknown)}: lengths not checked "
                          "against it", soft_wrap=True)
        return
    chosen = make_backend(target.backend, endpoint=target.endpoint, model=target.model)
    gen, config = eval_runs.generator_for(
        config, chosen, target.tokenizer,
        lambda msg: console.print(f"[yellow]warning[/]: {msg}"), who=who())
    made = [t for t in config.tasks if t not in SUITE_TASKS]
    console.print(f"[dim]lengths counted with {config.tokenizer}"
                  + (f"; haystack {escape(config.haystack)}" if made else "")
                  + (f"; suite files from {escape(config.data)}"
                     if config.data and len(made) < len(config.tasks) else ""))
    columns = (TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        t = bar.add_task("cells", total=None)
        done = eval_runs.run(config, chosen, gen, target.run_id,
                             lambda d, n: bar.update(t, completed=d, total=n), who=who())
    s = eval_runs.summary(done, who=who())
    out.print(f"run {escape(done)}: {s.done} cells done, {s.failed} failed, mean score "
              f"{(s.mean or 0):.3f} (scoutlens eval report {escape(done)})")
    if target.out:
        page = _write_report(done, Path(target.out))
        out.print(f"report in {escape(str(page))}")

@eval_app.command("data")
def data_cmd(folder: Annotated[Path | None, typer.Argument(
                 help="a folder to check, as `eval run --data` takes it")] = None,
             as_json: JsonOpt = False) -> None:
    """What each published suite reads and where its authors publish it; with FOLDER, whether
    the local copy there is usable (read as a run reads it; nothing is downloaded)."""
    from engine.types import EngineError
    from evals import suite_data

    if folder is not None and not Path(_data_folder(str(folder))).is_dir():
        raise EngineError(f"{folder}: not a folder (the local copy `eval run --data` reads)")
    checks = suite_data.check(str(folder)) if folder is not None else []
    if as_json:
        rows = [{"suite": n.suite, "path": n.path, "what": n.what, "source": n.source,
                 "sha256": n.sha256 or None, "tasks": n.tasks} for n in suite_data.NEEDS]
        for row, c in zip(rows, checks, strict=False):
            row.update(status=c.status, detail=c.detail)
        print(json.dumps({"folder": str(folder) if folder else None, "files": rows}))
    else:
        table = Table(title="suite files" + (f" in {escape(str(folder))}" if folder else ""))
        for col in ("suite", "file", "what", "published at", *(("status",) if folder else ())):
            table.add_column(col, overflow="fold")
        for i, n in enumerate(suite_data.NEEDS):
            status = ()
            if checks:
                c = checks[i]
                colour = {"ok": "green", "missing": "dim", "wrong": "red"}[c.status]
                status = (f"[{colour}]{c.status}[/]: {escape(c.detail)}",)
            table.add_row(n.suite, escape(n.path), escape(n.what),
                          escape(n.source) + (f" (sha256 {n.sha256[:16]}...)" if n.sha256 else ""),
                          *status)
        out.print(table)
    if any(c.status == "wrong" for c in checks):
        raise typer.Exit(1)


@eval_app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """Eval runs, newest first."""
    from app.services import eval_runs

    runs = eval_runs.list_runs(who=who())
    if as_json:
        print(json.dumps([asdict(r) for r in runs]))
        return
    table = Table(title="eval runs")
    for col in ("run", "created", "status", "cells", "failed", "mean", "model"):
        table.add_column(col)
    for r in runs:
        table.add_row(escape(r.run_id), r.created_at, r.status, str(r.cells), str(r.failed),
                      f"{r.mean:.3f}" if r.mean is not None else "-",
                      escape(str(r.fingerprint.get("model", ""))))
    out.print(table)

@eval_app.command("report")
def report_cmd(run_id: RunId, as_json: JsonOpt = False,
               out_dir: Annotated[Path | None, typer.Option(
                   "--out", help="the report's folder [default: SCOUTLENS_HOME/reports/"
                                 "eval-RUN]")] = None) -> None:
    """Scores per cell with latency and cached tokens, effective length, heatmap and
    score-vs-length PNGs and an HTML report."""
    from app.services import eval_runs
    from evals.report import effective_length, length_table

    cells = eval_runs.cells_of(run_id, who=who())
    s = eval_runs.summary(run_id, who=who())
    by_length, ruler_row = _ruler_results(run_id)
    if as_json:
        print(json.dumps({"run_id": run_id, "status": s.status, "mean": s.mean,
                          "effective_length": effective_length(cells),
                          "ruler": {"summary": {n: [asdict(r) for r in rows]
                                                for n, rows in by_length.items()},
                                    "table": asdict(ruler_row) if ruler_row else None},
                          "longbench_v2": [{"task": t, "length": n, **row} for (t, n), row
                                           in _longbench_results(run_id).items()],
                          "fingerprint": s.fingerprint, "config": s.config,
                          "lengths": {t: length_table(cells, t)
                                      for t in sorted({c.task for c in cells})},
                          "cells": [asdict(c) for c in cells]}))
        return
    table = Table(title=f"eval {escape(run_id)}")
    for col in ("task", "length", "score (95% CI)", "cells", "failed", "median TTFT s",
                "median latency s", "cached"):
        table.add_column(col, justify="right")
    for t in sorted({c.task for c in cells}):
        for row in length_table(cells, t):
            table.add_row(t, f"{row['length']:,}", f"{row['mean']:.3f} ± {row['ci']:.3f}",
                          str(row["cells"]), str(row["failed"]),
                          f"{row['median_ttft_s']:.3f}", f"{row['median_total_s']:.3f}",
                          f"{row['cached_share']:.0%}")
    out.print(table)
    if ruler_row is not None:
        from evals.ruler_report import label

        ruler_table = Table(title=f"RULER ({ruler_row.tasks} of 13 tasks a length)")
        heads = [label(n) for n in ruler_row.averages]
        for col in ("effective length", *heads, "avg", "wAvg (inc)", "wAvg (dec)"):
            ruler_table.add_column(col, justify="right")
        ruler_table.add_row(ruler_row.effective,
                            *(f"{v:.2f}" for v in ruler_row.averages.values()),
                            f"{ruler_row.average:.2f}", f"{ruler_row.wavg_inc:.2f}",
                            f"{ruler_row.wavg_dec:.2f}")
        out.print(ruler_table)
    longbench_results = _longbench_results(run_id)
    if longbench_results:
        lb_table = Table(title="LongBench v2 (accuracy %, as its result.py)")
        for col in ("task", "max_len", "Overall", "Easy", "Hard", "Short", "Medium", "Long"):
            lb_table.add_column(col, justify="right")
        for (task, length), row in longbench_results.items():
            lb_table.add_row(task, f"{length:,}", *("-" if v is None else f"{v:.1f}"
                                                    for v in row.values()))
        out.print(lb_table)
    page = _write_report(run_id, out_dir or eval_runs.report_dir(run_id))
    out.print(f"run {escape(run_id)}: mean {(s.mean or 0):.3f}, effective length "
              f"{effective_length(cells):,} tokens; report written to {escape(str(page))}",
              soft_wrap=True)

@eval_app.command("compare")
def compare_cmd(run_a: RunId, run_b: RunId,
                fail_on_regression: Annotated[float | None, typer.Option(
                    "--fail-on-regression", help="exit 1 on a significant drop of more "
                    "than this many points")] = None,
                out_dir: Annotated[Path | None, typer.Option(
                    "--out", help="write diff heatmaps and compare.html here")] = None,
                as_json: JsonOpt = False) -> None:
    """Per-cell deltas B - A, a sign test, a diff heatmap, and a non-zero exit on a
    significant regression."""
    from app.services import eval_runs
    from engine.types import EngineError
    from evals.report import compare, compare_html, grid_png

    differ = eval_runs.fingerprint_diff(run_a, run_b, who=who())
    if differ:
        what = ", ".join(f"{k}: {x} vs {y}" for k, (x, y) in sorted(differ.items()))
        console.print(f"[yellow]warning[/]: the runs used different endpoints ({what} "
                      "differ)")
    c = compare(eval_runs.cells_of(run_a, who=who()),
                eval_runs.cells_of(run_b, who=who()))
    report = {"mean_delta": c.mean_delta, "p_value": c.p_value, "worse": c.worse,
              "better": c.better, "cells": len(c.deltas),
              "deltas": [{"task": t, "length": n, "depth": d, "delta": v}
                         for (t, n, d), v in sorted(c.deltas.items())]}
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            for task in sorted({t for t, _, _ in c.deltas}):
                (out_dir / f"diff-{task}.png").write_bytes(grid_png(
                    c.deltas, task, f"{task}: {run_b} - {run_a}", diff=True))
            (out_dir / "compare.html").write_text(compare_html(run_a, run_b, c, differ))
        except OSError as exc:
            raise EngineError(f"cannot write the comparison to {out_dir}: "
                              f"{exc.strerror}") from None
    if as_json:
        print(json.dumps(report))
    else:
        out.print(f"{len(c.deltas)} cells: mean delta {c.mean_delta:+.3f}, {c.worse} worse, "
                  f"{c.better} better, sign test p = {c.p_value:.3g}"
                  + (f"; diff heatmaps in {out_dir}/compare.html" if out_dir else ""))
    if fail_on_regression is not None and c.regression(fail_on_regression):
        console.print(f"[red]regression[/]: {c.mean_delta * 100:+.1f} points (p = "
                      f"{c.p_value:.3g})")
        raise typer.Exit(1)

@eval_app.command("rescore")
def rescore_cmd(run_id: RunId,
                metric: Annotated[str | None, typer.Option(
                    help="all (share of expected answers) | part (any one) [default: each "
                         "cell's own]")] = None,
                as_json: JsonOpt = False) -> None:
    """Score a run's stored responses again, without calling the model."""
    from app.services import eval_runs

    r = eval_runs.rescore(run_id, metric, who=who())
    if as_json:
        print(json.dumps(asdict(r)))
        return

    def fmt(v: float | None) -> str:
        return f"{v:.3f}" if v is not None else "-"

    how = f" with {metric}" if metric else ""
    out.print(f"run {escape(run_id)}: {r.cells} cells re-scored{how}"
              f", {r.changed} changed; mean {fmt(r.before)} -> {fmt(r.after)}")
