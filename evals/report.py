"""Turn scored cells into what a team reads: per-cell means, the effective context length, a
depth x length heatmap (PNG, also inside a self-contained HTML report) and run comparisons."""

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


def heatmap_png(cells: list[CellScore], task: str, title: str, diff: bool = False) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = {(n, d): v for (t, n, d), v in grid(cells).items() if t == task}
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
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _fmt(n: int) -> str:
    return f"{n // 1048576}M" if n % 1048576 == 0 else f"{n // 1024}k" if n % 1024 == 0 else str(n)


def html_report(run_id: str, config: dict, cells: list[CellScore]) -> str:
    tasks = sorted({c.task for c in cells})
    parts = [f"<h1>scoutlens eval {html.escape(run_id)}</h1>",
             f"<p>effective context length (mean score >= {THRESHOLD:.1%}): "
             f"<b>{effective_length(cells):,}</b> tokens</p>",
             f"<pre>{html.escape(str(config))}</pre>"]
    for task in tasks:
        png = base64.b64encode(heatmap_png(cells, task, f"{task}: score by depth and length"))
        parts.append(f"<h2>{html.escape(task)}</h2><img src=\"data:image/png;base64,"
                     f"{png.decode()}\">")
        rows = []
        for n in sorted({c.length for c in cells if c.task == task}):
            scores = [c.score for c in cells if c.task == task and c.length == n
                      and c.score is not None]
            m, hw = confidence(scores)
            rows.append(f"<tr><td>{n:,}</td><td>{m:.3f} ± {hw:.3f}</td>"
                        f"<td>{len(scores)}</td></tr>")
        parts.append("<table><tr><th>length</th><th>score (95% CI)</th><th>cells</th></tr>"
                     + "".join(rows) + "</table>")
    return "<!doctype html><meta charset=utf-8><title>eval</title>" + "".join(parts)


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


def sign_test(worse: int, better: int) -> float:
    """Two-sided exact binomial sign test (ties dropped)."""
    n = worse + better
    if n == 0:
        return 1.0
    k = min(worse, better)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)
