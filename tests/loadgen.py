"""The load driver of benchmarks/bench_load.py, also run (bounded) by
tests/integration/test_concurrency.py: N parallel asks through the real services, each answer
then looked up (stored exactly once, with the text the caller got, or it counts as lost)."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

QUESTION = "What is the vault code in the notes?"
ANSWER_CODE = "7291"


def make_inputs(root: Path) -> dict[str, Path]:
    """Two corpora: `small` fits the window (packed whole), `big` goes through retrieval."""
    small, big = root / "small", root / "big"
    for folder, filler in ((small, 0), (big, 60)):
        (folder / "src").mkdir(parents=True)
        (folder / "src" / "config.py").write_text(
            '"""Configuration."""\n\nRETRY_LIMIT = 7\n\n\ndef load_config(path):\n'
            '    return {"path": path, "retries": RETRY_LIMIT}\n')
        (folder / "NOTES.md").write_text(f"# Notes\n\nThe vault code is {ANSWER_CODE}.\n")
        for i in range(filler):
            (folder / "logs").mkdir(exist_ok=True)
            (folder / "logs" / f"day{i:03d}.md").write_text("".join(
                f"Day {i}-{j}: mild and grey, wind from the {('north', 'south')[j % 2]}.\n"
                for j in range(60)))
    return {"small": small, "big": big}


def ingest_inputs(inputs: dict[str, Path]) -> None:
    from app.services.corpora import ingest

    for name, folder in inputs.items():
        ingest([folder], name)


_local = threading.local()


def _backend(endpoint: str):
    from engine.openai_backend import OpenAIBackend

    backend = getattr(_local, "backend", None)
    if backend is None:  # one client per worker, as one per user session
        backend = _local.backend = OpenAIBackend(endpoint, max_retries=0)
    return backend


def one_ask(endpoint: str, corpus: str, question: str) -> tuple[str, str | None, float, str]:
    """(question, answer or None, seconds, error) for one ask through the services."""
    from app.services.ask import ask

    started = time.perf_counter()
    try:
        result = ask(corpus, question, _backend(endpoint), max_tokens=32)
        return question, result.answer, time.perf_counter() - started, ""
    except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
        return question, None, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"


@dataclass
class LoadResult:
    db: str
    workers: int
    asks: int
    ok: int
    lost: int
    seconds: float
    p50_s: float
    p95_s: float
    errors: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "throughput": round(self.throughput, 2)}


def lost_answers(answers: dict[str, str]) -> int:
    """Answers not stored exactly once with the text the caller got."""
    from sqlalchemy import select

    from app.database import session_scope
    from app.models import Question
    from app.settings import get_settings

    stored: dict[str, list[str]] = {}
    with session_scope(get_settings().db_url) as s:
        for q, a in s.execute(select(Question.question, Question.answer)
                              .where(Question.question.in_(list(answers)))):
            stored.setdefault(q, []).append(a)
    return sum(stored.get(q) != [a] for q, a in answers.items())


def run_load(endpoint: str, workers: int, asks: int, corpora: list[str], db: str = "",
             processes: bool = False) -> LoadResult:
    """`asks` asks spread over `workers` threads (or processes), round-robin over corpora."""
    tag = uuid.uuid4().hex[:8]
    jobs = [(endpoint, corpora[i % len(corpora)], f"[{tag}-{i}] {QUESTION}")
            for i in range(asks)]
    pool: Executor = (ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
                      if processes else ThreadPoolExecutor(workers))
    with pool:
        if processes:  # start the workers (imports) before the clock
            list(pool.map(_warm, [endpoint] * workers))
        started = time.perf_counter()
        done = list(pool.map(one_ask, *zip(*jobs, strict=True)))
        seconds = time.perf_counter() - started
    answers = {q: a for q, a, _, err in done if a is not None and not err}
    times = sorted(t for _, a, t, _ in done if a is not None)
    errors = [err for *_, err in done if err]
    pct = statistics.quantiles(times, n=20, method="inclusive") if len(times) > 1 else times * 19
    return LoadResult(db, workers, asks, len(answers), lost_answers(answers), seconds,
                      statistics.median(times) if times else 0.0, pct[18] if pct else 0.0,
                      errors)


def _warm(endpoint: str) -> None:
    import app.services.ask  # noqa: F401
    import engine.openai_backend  # noqa: F401

    _backend(endpoint).window  # noqa: B018 - fetches the served model once
