"""RULER's own result files from a run's RULER cells, so its numbers line up with a published
RULER table: `summary.csv` per length as RULER's scripts/eval/evaluate.py writes it (rows Tasks,
Score, Nulls; a score is the task's mean x 100 rounded to 2, Nulls the empty predictions), and
the row of RULER's README table: the 13-task average per length, the effective length (the
longest length whose average, and every shorter one's, reaches Llama-2-7B's 85.6 at 4K) and the
averages weighted by length increasing and decreasing (the paper's wAvg inc / dec)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from evals import ruler


@dataclass(frozen=True)
class Prediction:
    task: str  # ruler-<RULER's task name>
    length: int
    response: str
    score: float | None  # None: the cell failed (no prediction; RULER would retry it)


@dataclass(frozen=True)
class TaskScore:
    task: str  # RULER's name
    score: float  # 0-100, rounded to 2 as evaluate.py rounds
    nulls: str  # "empty/predictions"


def summary(predictions: Iterable[Prediction]) -> dict[int, list[TaskScore]]:
    """Per length, each RULER task's score in synthetic.yaml's order."""
    acc: dict[tuple[int, str], list[Prediction]] = defaultdict(list)
    for p in predictions:
        name = p.task.removeprefix("ruler-")
        if name in ruler.CONFIGS and p.score is not None:
            acc[(p.length, name)].append(p)
    out: dict[int, list[TaskScore]] = {}
    for length in sorted({n for n, _ in acc}):
        rows = []
        for name in ruler.TASKS:
            preds = acc.get((length, name))
            if not preds:
                continue
            mean = sum(p.score or 0.0 for p in preds) / len(preds) * 100
            empty = sum(not ruler.postprocess(p.response) for p in preds)
            rows.append(TaskScore(name, round(mean, 2), f"{empty}/{len(preds)}"))
        out[length] = rows
    return out


def summary_name(rows: list[TaskScore]) -> str:
    """evaluate.py's file name: summary.csv, or summary-TASK.csv for a single task."""
    return "summary.csv" if len(rows) > 1 else f"summary-{rows[0].task}.csv"


def summary_csv(rows: list[TaskScore]) -> str:
    """evaluate.py's summary.csv: a pandas frame of three rows written without its index, so
    its first line is the column numbers."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(range(len(rows) + 1))
    w.writerow(["Tasks", *(r.task for r in rows)])
    w.writerow(["Score", *(r.score for r in rows)])
    w.writerow(["Nulls", *(r.nulls for r in rows)])
    return buf.getvalue()


@dataclass(frozen=True)
class TableRow:
    averages: dict[int, float]  # length -> mean of the task scores
    effective: str  # e.g. "16K", ">128K", "<4K"
    average: float
    wavg_inc: float
    wavg_dec: float
    tasks: int  # how many of RULER's 13 tasks each average holds (the fewest over lengths)


def label(length: int) -> str:
    return f"{length // 1024}K" if length % 1024 == 0 else f"{length:,}"


def table(by_length: dict[int, list[TaskScore]],
          threshold: float = ruler.THRESHOLD) -> TableRow | None:
    lengths = [n for n in sorted(by_length) if by_length[n]]
    if not lengths:
        return None
    avg = {n: round(sum(r.score for r in by_length[n]) / len(by_length[n]), 2) for n in lengths}
    passed = 0
    for n in lengths:
        if avg[n] < threshold:
            break
        passed = n
    effective = (f"<{label(lengths[0])}" if not passed
                 else f">{label(passed)}" if passed == lengths[-1] else label(passed))
    weights = range(1, len(lengths) + 1)
    scores = [avg[n] for n in lengths]
    inc = sum(w * s for w, s in zip(weights, scores, strict=True)) / sum(weights)
    dec = sum(w * s for w, s in zip(reversed(weights), scores, strict=True)) / sum(weights)
    return TableRow(avg, effective, round(sum(scores) / len(scores), 2), round(inc, 2),
                    round(dec, 2), min(len(by_length[n]) for n in lengths))


def table_markdown(row: TableRow, model: str) -> str:
    """The row as RULER's README lays it out."""
    heads = [label(n) for n in row.averages]
    lines = ["|Models|Effective Length|" + "|".join(heads) + "|Avg.|wAvg. (inc)|wAvg. (dec)|",
             "|" + ":---:|" * (len(heads) + 5)]
    cells = [f"<ins>{v}</ins>" if v >= ruler.THRESHOLD else f"{v}" for v in row.averages.values()]
    lines.append(f"|{model}|{row.effective}|" + "|".join(cells)
                 + f"|{row.average}|{row.wavg_inc}|{row.wavg_dec}|")
    return "\n".join(lines) + "\n"
