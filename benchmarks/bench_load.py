"""Load: N parallel asks against scoutlens's services on one database; throughput, latency,
errors and lost answers.

Each ask takes the real path (find the corpus, read it from the database, pack it whole or
retrieve from it, count tokens with the server's /tokenize, stream the answer, verify citations,
store the question and answer). Only the model is a stand-in by default: a loopback
OpenAI-compatible server (FakeOpenAI from tests/test_openai_backend.py, which streams a short
fixed answer in ~30 ms), so the figures are the app's and the database's, not a model's;
`--endpoint URL` points it at a real server (vLLM) instead. Every answer is then looked up:
it must be stored exactly once, with the text the caller got, or it counts as lost.

    python benchmarks/bench_load.py [--workers 1,4,16] [--asks 48] [--db sqlite,postgresql]
        [--processes] [--endpoint URL] [--json FILE]

PostgreSQL is a throwaway server on loopback (tests/pg.py); nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

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


def serve_stand_in() -> None:
    """Serve the stand-in model on loopback, print its URL, run until stdin closes."""
    import test_openai_backend
    from test_openai_backend import FakeOpenAI

    # TCP_NODELAY as uvicorn (vLLM) sets it: else the stand-in's split writes wait on delayed
    # ACKs (~40 ms) over kept-alive connections, timing the stand-in, not the app
    test_openai_backend._Handler.disable_nagle_algorithm = True
    fake = FakeOpenAI(max_model_len=8192).start()
    print(fake.url, flush=True)
    sys.stdin.read()
    fake.close()


def _use_database(db: str, home: Path, pg) -> None:
    from app.settings import get_settings

    os.environ["SCOUTLENS_HOME"] = str(home)
    os.environ.pop("SCOUTLENS_DATABASE_URL", None)
    if db == "postgresql":
        os.environ["SCOUTLENS_DATABASE_URL"] = pg.create_db(f"load_{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="1,4,16", help="parallel askers, comma-separated")
    ap.add_argument("--asks", type=int, default=48, help="asks per run")
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--processes", action="store_true", help="workers are processes")
    ap.add_argument("--endpoint", help="a real OpenAI-compatible server instead of the stand-in")
    ap.add_argument("--json", dest="json_out", help="write the results here")
    ap.add_argument("--serve-stand-in", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_stand_in:
        serve_stand_in()
        return
    workers = [int(w) for w in args.workers.split(",")]
    dbs = [d.strip() for d in args.db.split(",")]

    fake = pg = None
    endpoint = args.endpoint
    if endpoint is None:  # in its own process, as a model server is: no GIL shared with askers
        fake = subprocess.Popen([sys.executable, __file__, "--serve-stand-in"],
                                stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        endpoint = fake.stdout.readline().strip() if fake.stdout else ""
    if "postgresql" in dbs:
        from pg import PgServer

        pg = PgServer().start()
    results: list[LoadResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="scoutlens-load-") as tmp:
            inputs = make_inputs(Path(tmp) / "inputs")
            for db in dbs:
                _use_database(db, Path(tmp) / f"home-{db}", pg)
                ingest_inputs(inputs)
                run_load(endpoint, 1, 2, list(inputs), db)  # warm: indexes, tokenizer, pools
                for w in workers:
                    r = run_load(endpoint, w, args.asks, list(inputs), db, args.processes)
                    results.append(r)
                    print(f"{db:10} workers={w:3} asks={r.asks} ok={r.ok} errors={len(r.errors)} "
                          f"lost={r.lost} {r.throughput:6.1f} asks/s  p50 {r.p50_s * 1000:5.0f} ms"
                          f"  p95 {r.p95_s * 1000:5.0f} ms", flush=True)
                    for err in sorted(set(r.errors))[:5]:
                        print(f"    error: {err}")
    finally:
        if fake:
            fake.terminate()
            fake.wait(10)
        if pg:
            pg.stop()
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([r.to_json() for r in results], indent=2))
    if any(r.errors or r.lost for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
