"""The load driver of benchmarks/bench_load.py, also run (bounded) by
tests/integration/test_concurrency.py: N parallel asks through the real services, each answer
then looked up (stored exactly once, with the text the caller got, or it counts as lost)."""

from __future__ import annotations

import json
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
    from app.services.ingesting import ingest

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
    from app.services.ask import AskInput, ask

    started = time.perf_counter()
    try:
        result = ask(AskInput(corpus, question, max_tokens=32), _backend(endpoint))
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


# --- `serve api` under slow streams (benchmarks/bench_load.py --api, and the hostile-load test) --


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    """`scoutlens serve api` in a process of its own (SCOUTLENS_HOME `home`, the model at
    `endpoint`), as an operator starts it: its signals, its uvicorn, its sockets."""

    def __init__(self, home: Path, endpoint: str, *args: str, env: dict | None = None,
                 log: Path | None = None):
        import os
        import subprocess
        import sys

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log or home / "api.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SCOUTLENS_")}
        full_env = clean | {"SCOUTLENS_HOME": str(home)} | (env or {})
        home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "api", "--port", str(self.port),
                 "--endpoint", endpoint, *args],
                cwd=Path(__file__).resolve().parents[1], env=full_env, stdout=out, stderr=out)

    def wait_ready(self, timeout: float = 120) -> ApiServer:
        import http.client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve api exited: {self.log.read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/health-probe")
                conn.getresponse().read()
                conn.close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("serve api did not start listening")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


class SlowStream(threading.Thread):
    """One streamed chat completion over its own connection, read as it comes: `started` once
    the first event arrived (the question was taken), `done` once the body ended (cleanly or
    not)."""

    def __init__(self, port: int, corpus: str, question: str, max_tokens: int = 4096,
                 headers: dict | None = None):
        super().__init__(daemon=True)
        self.port, self.headers = port, headers or {}
        self.body = json.dumps({"model": f"corpus:{corpus}", "stream": True,
                                "max_tokens": max_tokens,
                                "messages": [{"role": "user", "content": question}]})
        self.status: int | None = None
        self.events: list[str] = []
        self.error = ""
        self.started, self.done = threading.Event(), threading.Event()

    def run(self) -> None:
        import http.client

        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
            conn.request("POST", "/v1/chat/completions", self.body,
                         {"Content-Type": "application/json", **self.headers})
            resp = conn.getresponse()
            self.status = resp.status
            for line in resp:
                if line.startswith(b"data: "):
                    self.events.append(line[6:].decode().strip())
                    self.started.set()
            conn.close()
        except Exception as exc:  # noqa: BLE001 - what the client saw, kept for the report
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.started.set()
            self.done.set()

    @property
    def closed_cleanly(self) -> bool:
        """The server ended the body properly: the last event is [DONE]."""
        return self.done.is_set() and not self.error and self.events[-1:] == ["[DONE]"]


def open_streams(port: int, n: int, corpus: str, headers: dict | None = None,
                 wait_s: float = 60) -> list[SlowStream]:
    """N streamed questions in flight: started, and waited for (up to WAIT_S) until each was
    taken (its first event), or ended."""
    streams = [SlowStream(port, corpus, f"[{i}] {QUESTION}", headers=headers) for i in range(n)]
    for s in streams:
        s.start()
    deadline = time.monotonic() + wait_s
    for s in streams:
        s.started.wait(max(0.0, deadline - time.monotonic()))
    return streams


def timed_get(port: int, path: str, timeout: float = 120) -> tuple[int | None, float]:
    """(status or None on a timeout/error, seconds) of one GET on a fresh connection."""
    import http.client

    t0 = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status, time.perf_counter() - t0
    except OSError:
        return None, time.perf_counter() - t0


def sigterm_seconds(proc, timeout: float = 60) -> float | None:
    """Seconds from SIGTERM until the process ended, or None if it still runs after TIMEOUT
    (then it is killed)."""
    import signal
    import subprocess

    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
        return None
