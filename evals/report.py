"""Turn scored cells into what a team reads: per-cell means, the effective context length, a
depth x length heatmap and a score-vs-length curve (PNGs, also inside a self-contained HTML
report with latency and cached tokens per cell) and run comparisons with a diff heatmap."""

from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict
from dataclasses import dataclass

THRESHOLD = 0.856  # RULER's effective-length bar


@dataclass(frozen=True)
class CellScore:
    task: str
    length: int
    depth: float
    sample: int
    score: float | None
    ttft_s: float = 0.0
    cached_tokens: int = 0
    total_s: float = 0.0
    prompt_tokens: int = 0
    status: str = "done"


def grid(cells: list[CellScore]) -> dict[tuple[str, int, float], float]:
    """Mean score per (task, length, depth) over samples; failed cells (None) left out."""
    acc: dict[tuple[str, int, float], list[float]] = defaultdict(list)
    for c in cells:
        if c.score is not None:
            acc[(c.task, c.length, c.depth)].append(c.score)
    return {k: sum(v) / len(v) for k, v in acc.items()}


def by_length(cells: list[CellScore]) -> dict[int, float]:
    acc: dict[int, list[float]] = defaultdict(list)
    for c in cells:
        if c.score is not None:
            acc[c.length].append(c.score)
    return {n: sum(v) / len(v) for n, v in sorted(acc.items())}


def effective_length(cells: list[CellScore], threshold: float = THRESHOLD) -> int:
    """The longest length whose mean score (and every shorter one's) is at or above threshold."""
    best = 0
    for n, mean in by_length(cells).items():
        if mean < threshold:
            break
        best = n
    return best


def confidence(scores: list[float]) -> tuple[float, float]:
    """Mean and a 95% normal-approximation half-width."""
    if not scores:
        return 0.0, 0.0
    m = sum(scores) / len(scores)
    if len(scores) < 2:
        return m, 0.0
    var = sum((s - m) ** 2 for s in scores) / (len(scores) - 1)
    return m, 1.96 * math.sqrt(var / len(scores))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap_png(cells: list[CellScore], task: str, title: str, diff: bool = False) -> bytes:
    return grid_png(grid(cells), task, title, diff)


def grid_png(values: dict[tuple[str, int, float], float], task: str, title: str,
             diff: bool = False) -> bytes:
    """A depth x length heatmap of scores (or of deltas, centred on zero, with `diff`)."""
    plt = _plt()
    g = {(n, d): v for (t, n, d), v in values.items() if t == task}
    lengths = sorted({n for n, _ in g})
    depths = sorted({d for _, d in g})
    data = [[g.get((n, d), float("nan")) for n in lengths] for d in depths]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(lengths), 1.0 + 0.5 * len(depths)))
    cmap, lo, hi = ("RdYlGn", -1.0, 1.0) if diff else ("RdYlGn", 0.0, 1.0)
    im = ax.imshow(data, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
    ax.set_xticks(range(len(lengths)), [_fmt(n) for n in lengths])
    ax.set_yticks(range(len(depths)), [f"{d:.0%}" if d >= 0 else "-" for d in depths])
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("needle depth")
    ax.set_title(title)
    for y, row in enumerate(data):
        for x, v in enumerate(row):
            if v == v:  # not NaN
                ax.text(x, y, f"{v:+.2f}" if diff else f"{v:.2f}", ha="center", va="center",
                        fontsize=8)
    fig.colorbar(im, ax=ax)
    return _png(fig)


def _png(fig) -> bytes:
    plt = _plt()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def curve_png(cells: list[CellScore], title: str) -> bytes:
    """Mean score against context length, one line per task, with RULER's threshold."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    lengths: set[int] = set()
    for task in sorted({c.task for c in cells}):
        points = by_length([c for c in cells if c.task == task])
        lengths |= set(points)
        ax.plot(list(points), list(points.values()), marker="o", label=task)
    ax.axhline(THRESHOLD, color="grey", linestyle="--", linewidth=1,
               label=f"threshold {THRESHOLD:.1%}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(lengths), [_fmt(n) for n in sorted(lengths)])
    ax.minorticks_off()
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("mean score")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)


def _median(values: list[float]) -> float:
    v = sorted(values)
    if not v:
        return 0.0
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def _b64(png: bytes) -> str:
    return f"<img src=\"data:image/png;base64,{base64.b64encode(png).decode()}\">"


def _cell_rows(cells: list[CellScore]) -> str:
    rows = []
    for c in sorted(cells, key=lambda c: (c.task, c.length, c.depth, c.sample)):
        score = f"{c.score:.2f}" if c.score is not None else c.status
        rows.append(f"<tr><td>{html.escape(c.task)}</td><td>{c.length:,}</td>"
                    f"<td>{_depth(c.depth)}</td><td>{c.sample}</td><td>{score}</td>"
                    f"<td>{c.prompt_tokens:,}</td><td>{c.cached_tokens:,}</td>"
                    f"<td>{c.ttft_s:.3f}</td><td>{c.total_s:.3f}</td></tr>")
    return ("<h2>cells</h2><table><tr><th>task</th><th>length</th><th>depth</th><th>sample</th>"
            "<th>score</th><th>prompt tokens</th><th>cached tokens</th><th>TTFT s</th>"
            "<th>latency s</th></tr>" + "".join(rows) + "</table>")


def _depth(d: float) -> str:
    return f"{d:.0%}" if d >= 0 else "-"


def _fmt(n: int) -> str:
    return f"{n // 1048576}M" if n % 1048576 == 0 else f"{n // 1024}k" if n % 1024 == 0 else str(n)


def html_report(run_id: str, config: dict, cells: list[CellScore]) -> str:
    tasks = sorted({c.task for c in cells})
    parts = [f"<h1>scoutlens eval {html.escape(run_id)}</h1>",
             f"<p>effective context length (mean score >= {THRESHOLD:.1%}): "
             f"<b>{effective_length(cells):,}</b> tokens</p>",
             f"<pre>{html.escape(str(config))}</pre>"]
    if cells:
        parts.append("<h2>score vs length</h2>" + _b64(curve_png(cells, "score vs length")))
    for task in tasks:
        parts.append(f"<h2>{html.escape(task)}</h2>"
                     + _b64(heatmap_png(cells, task, f"{task}: score by depth and length")))
        rows = []
        for row in length_table(cells, task):
            rows.append(f"<tr><td>{row['length']:,}</td><td>{row['mean']:.3f} ± "
                        f"{row['ci']:.3f}</td><td>{row['cells']}</td>"
                        f"<td>{row['median_ttft_s']:.3f}</td><td>{row['median_total_s']:.3f}</td>"
                        f"<td>{row['cached_share']:.0%}</td></tr>")
        parts.append("<table><tr><th>length</th><th>score (95% CI)</th><th>cells</th>"
                     "<th>median TTFT s</th><th>median latency s</th><th>cached share</th></tr>"
                     + "".join(rows) + "</table>")
    parts.append(_cell_rows(cells))
    return _page("eval", "".join(parts))


def _page(title: str, body: str) -> str:
    style = ("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
             "</style>")
    return f"<!doctype html><meta charset=utf-8><title>{title}</title>{style}{body}"


def length_table(cells: list[CellScore], task: str) -> list[dict]:
    """Per length of one task: mean score with its 95% CI, median latencies, cached share."""
    rows = []
    for n in sorted({c.length for c in cells if c.task == task}):
        these = [c for c in cells if c.task == task and c.length == n]
        scored = [c for c in these if c.score is not None]
        m, hw = confidence([c.score for c in scored if c.score is not None])
        prompt = sum(c.prompt_tokens for c in scored)
        rows.append({"length": n, "mean": m, "ci": hw, "cells": len(scored),
                     "failed": len(these) - len(scored),
                     "median_ttft_s": _median([c.ttft_s for c in scored]),
                     "median_total_s": _median([c.total_s for c in scored]),
                     "cached_share": sum(c.cached_tokens for c in scored) / prompt
                     if prompt else 0.0})
    return rows


@dataclass
class Comparison:
    deltas: dict[tuple[str, int, float], float]  # B - A per cell
    mean_delta: float
    p_value: float  # two-sided exact sign test over paired cells
    worse: int
    better: int

    def regression(self, points: float) -> bool:
        """Significant (p < 0.05) and the mean fell by more than `points` percentage points."""
        return self.p_value < 0.05 and self.mean_delta < -points / 100


def compare(a: list[CellScore], b: list[CellScore]) -> Comparison:
    ga, gb = grid(a), grid(b)
    keys = sorted(set(ga) & set(gb))
    deltas = {k: gb[k] - ga[k] for k in keys}
    worse = sum(1 for d in deltas.values() if d < 0)
    better = sum(1 for d in deltas.values() if d > 0)
    mean = sum(deltas.values()) / len(deltas) if deltas else 0.0
    return Comparison(deltas, mean, sign_test(worse, better), worse, better)


def compare_html(run_a: str, run_b: str, c: Comparison, differ: dict[str, tuple]) -> str:
    """Diff heatmaps (B - A) per task, the sign test and every cell's delta."""
    parts = [f"<h1>scoutlens eval compare {html.escape(run_a)} -> {html.escape(run_b)}</h1>",
             f"<p>{len(c.deltas)} paired cells: mean delta <b>{c.mean_delta * 100:+.1f}</b> "
             f"points, {c.worse} worse, {c.better} better, sign test p = {c.p_value:.3g}</p>"]
    if differ:
        parts.append("<p><b>warning</b>: the runs used different endpoints: " + html.escape(
            "; ".join(f"{k}: {a} vs {b}" for k, (a, b) in sorted(differ.items()))) + "</p>")
    for task in sorted({t for t, _, _ in c.deltas}):
        parts.append(f"<h2>{html.escape(task)}</h2>" + _b64(grid_png(
            c.deltas, task, f"{task}: {run_b} - {run_a}", diff=True)))
    rows = "".join(f"<tr><td>{html.escape(t)}</td><td>{n:,}</td><td>{_depth(d)}</td>"
                   f"<td>{v:+.3f}</td></tr>" for (t, n, d), v in sorted(c.deltas.items()))
    parts.append("<table><tr><th>task</th><th>length</th><th>depth</th><th>delta</th></tr>"
                 f"{rows}</table>")
    return _page("eval compare", "".join(parts))


def sign_test(worse: int, better: int) -> float:
    """Two-sided exact binomial sign test (ties dropped)."""
    n = worse + better
    if n == 0:
        return 1.0
    k = min(worse, better)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)
