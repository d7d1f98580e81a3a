"""Load: N parallel asks against scoutlens's services on one database; throughput, latency,
errors and lost answers.

Each ask takes the real path (find the corpus, read it from the database, pack it whole or
retrieve from it, count tokens with the server's /tokenize, stream the answer, verify citations,
store the question and answer). Only the model is a stand-in by default: a loopback
OpenAI-compatible server (FakeOpenAI from tests/fakes.py, which streams a short
fixed answer in ~30 ms), so the figures are the app's and the database's, not a model's;
`--endpoint URL` points it at a real server (vLLM) instead. Every answer is then looked up:
it must be stored exactly once, with the text the caller got, or it counts as lost.

The users dimension (`--users 4`, `--askers 16`; `--users 0` skips it): the askers act as
signed-in people, asker k as user k mod 4, each user with a private corpus of their own and all
with one corpus shared with everyone. Each asker asks its own and the shared corpus, and tries
another user's private corpus (it must be "not found"). Afterwards every user's history may hold
only their own questions, their corpus list only their corpus and the shared one: any answer or
history row visible to the wrong user is counted (`wrong`, must be 0). Then what the access
check adds to an ask: the same ask, one at a time, alternately as a user (`who`) and as the
operator (`who=None`, no check), medians side by side (target: under 5 ms more).

    python benchmarks/bench_load.py [--workers 1,4,16] [--asks 48] [--db sqlite,postgresql]
        [--users 4] [--askers 16] [--processes] [--endpoint URL] [--json FILE]

`--api` measures `scoutlens serve api` itself instead (its own process, as an operator starts
it, on SQLite): the stand-in model is slow (its first token after 20 s, `--first-token`, then a
token every 0.1 s without end), N slow
streamed questions are put in flight (`--streams 60`), and then `/v1/models` is timed, as
another caller sees it (target: under 1 s); then SIGTERM, timed until the process has ended
(target: within 5 s), counting the streams the server closed properly (ending in [DONE]).

    python benchmarks/bench_load.py --api [--streams 60] [--json FILE]

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
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from loadgen import (  # noqa: E402
    QUESTION,
    ApiServer,
    LoadResult,
    _backend,
    ingest_inputs,
    lost_answers,
    make_inputs,
    open_streams,
    run_load,
    sigterm_seconds,
    timed_get,
)


def serve_stand_in(slow_gap_s: float = 0.0, first_token_s: float = 0.0) -> None:
    """Serve the stand-in model on loopback, print its URL, run until stdin closes. With
    SLOW_GAP_S, every answer is slow and endless: its first token after FIRST_TOKEN_S (a long
    prompt on a busy server), then a token per SLOW_GAP_S until the client leaves."""
    import fakes
    from fakes import FakeOpenAI, Reply

    # TCP_NODELAY as uvicorn (vLLM) sets it: else the stand-in's split writes wait on delayed
    # ACKs (~40 ms) over kept-alive connections, timing the stand-in, not the app
    fakes._Handler.disable_nagle_algorithm = True
    # many questions connect at once (--api): a listen backlog of 5 would drop their SYNs
    fakes._Server.request_queue_size = 256
    fake = FakeOpenAI(max_model_len=8192).start()
    if slow_gap_s:
        fake.next_reply = lambda: Reply(deltas=("tok ",), endless=True, gap_s=slow_gap_s,
                                        delay_s=first_token_s)
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


@dataclass
class UsersResult:
    db: str
    users: int
    askers: int
    asks: int
    ok: int
    lost: int
    wrong: int  # answers, history rows or corpora visible to the wrong user
    refused: int  # asks of another user's private corpus answered "not found" (all must be)
    seconds: float
    p50_s: float
    check_samples: int
    ask_who_ms: float  # median ask as a signed-in user (access checks on)
    ask_operator_ms: float  # median of the same ask as the operator (who=None)
    errors: list[str] = field(default_factory=list)

    @property
    def check_ms(self) -> float:
        return self.ask_who_ms - self.ask_operator_ms

    def to_json(self) -> dict:
        return {**asdict(self), "check_ms": round(self.check_ms, 2)}


def run_users(endpoint: str, inputs: dict[str, Path], db: str, users: int, askers: int,
              asks: int, samples: int) -> UsersResult:
    """ASKS asks by ASKERS threads acting as USERS people; then the access check's cost."""
    from app.services.ask import AskInput, ask
    from app.services.catalog import list_corpora, share_corpus
    from app.services.history import history
    from app.services.ingesting import ingest
    from app.services.users import signed_in
    from ingest.types import IngestError

    tag = uuid.uuid4().hex[:6]
    people = [signed_in(f"user{u}-{tag}", [f"team{u}-{tag}"], "header") for u in range(users)]
    private = [f"private{u}-{tag}" for u in range(users)]
    shared = f"shared-{tag}"
    for who, name in zip(people, private, strict=True):
        ingest([inputs["small"]], name, who=who)
    ingest([inputs["small"]], shared, who=people[0])
    share_corpus(shared, "everyone", who=people[0])

    def asker(k: int) -> list[tuple[int, str, str | None, float, str, bool]]:
        """(user, question, answer, seconds, error, refused) of asker K's share of the asks."""
        u, out = k % users, []
        for i in range(k, asks, askers):
            corpus = shared if i // askers % 2 else private[u]
            q = f"[{tag}-u{u}-{i}] {QUESTION}"
            started = time.perf_counter()
            try:
                a = ask(AskInput(corpus, q, max_tokens=32, corpus_only=True),
                        _backend(endpoint), who=people[u]).answer
                out.append((u, q, a, time.perf_counter() - started, "", False))
            except Exception as exc:  # noqa: BLE001 - counted and shown
                out.append((u, q, None, time.perf_counter() - started,
                            f"{type(exc).__name__}: {exc}", False))
            other = private[(u + 1) % users]  # someone else's: must not exist for u
            try:
                ask(AskInput(other, f"[{tag}-u{u}-{i}-x] {QUESTION}", max_tokens=8,
                             corpus_only=True),
                    _backend(endpoint), who=people[u])
                out.append((u, "", None, 0.0, f"user{u} asked {other}", False))
            except IngestError as exc:  # worded as for a corpus that does not exist
                said = str(exc)
                rest = said.split(other, 1)[-1]  # any corpora it lists: never others' own
                ok = said.startswith("no such corpus") and other in said and not any(
                    p in rest for p in private if p != private[u])
                out.append((u, "", None, 0.0, "" if ok else f"refusal tells: {exc}", ok))
        return out

    started = time.perf_counter()
    with ThreadPoolExecutor(askers) as pool:
        done = [row for rows in pool.map(asker, range(askers)) for row in rows]
    seconds = time.perf_counter() - started
    answered = [(u, q, a, t) for u, q, a, t, err, _ in done if a is not None]
    errors = [err for *_, err, _ in done if err]
    refused = sum(r for *_, r in done)

    wrong = 0
    for u, who in enumerate(people):
        rows = history(limit=100_000, who=who)
        mine = {q for uu, q, _, _ in answered if uu == u}
        wrong += sum(f"[{tag}-u{u}-" not in r.question for r in rows if tag in r.question)
        wrong += len(mine - {r.question for r in rows})  # and all of their own are there
        names = {c.name for c in list_corpora(who=who)}
        wrong += len(names ^ {private[u], shared})

    # what the access check adds: alternate who / operator on the same ask, one at a time
    timings: dict[bool, list[float]] = {True: [], False: []}
    for i in range(samples):
        for as_user in ((True, False) if i % 2 else (False, True)):
            t0 = time.perf_counter()
            ask(AskInput(private[0], f"[{tag}-check-{i}-{as_user}] {QUESTION}", max_tokens=32,
                         corpus_only=True),
                _backend(endpoint), who=people[0] if as_user else None)
            timings[as_user].append(time.perf_counter() - t0)
    return UsersResult(
        db, users, askers, len(done) - refused, len(answered),
        lost_answers({q: a for _, q, a, _ in answered}), wrong, refused, seconds,
        statistics.median(t for *_, t in answered) if answered else 0.0, samples,
        statistics.median(timings[True]) * 1000, statistics.median(timings[False]) * 1000,
        errors)


@dataclass
class ApiLoadResult:
    streams: int
    in_flight: int  # streams that had their first event before /v1/models was timed
    models_idle_s: float  # /v1/models with nothing in flight (median of 5)
    models_loaded_s: list[float]  # /v1/models with the streams in flight, each try
    models_status: list[int | None]
    sigterm_s: float | None  # SIGTERM until the server process ended; None: still running
    closed_cleanly: int  # streams the server ended with [DONE]
    cut: int  # streams whose connection ended without [DONE]
    still_open: int  # streams not ended after the server was gone

    def to_json(self) -> dict:
        return {"api": True, **asdict(self)}


def run_api_load(streams: int, slow_gap_s: float = 0.1,
                 first_token_s: float = 20.0) -> ApiLoadResult:
    """`serve api` with STREAMS slow streams in flight: /v1/models' latency, then SIGTERM."""
    stand_in = subprocess.Popen([sys.executable, __file__, "--serve-stand-in", "--slow-gap",
                                 str(slow_gap_s), "--first-token", str(first_token_s)],
                                stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    endpoint = stand_in.stdout.readline().strip() if stand_in.stdout else ""
    try:
        with tempfile.TemporaryDirectory(prefix="scoutlens-api-load-") as tmp:
            home = Path(tmp) / "home"
            _use_database("sqlite", home, None)
            ingest_inputs({"small": make_inputs(Path(tmp) / "inputs")["small"]})
            server = ApiServer(home, endpoint).wait_ready()
            try:
                return _measure_api(server, streams)
            finally:
                server.stop()
    finally:
        stand_in.terminate()
        stand_in.wait(10)


def _measure_api(server: ApiServer, streams: int) -> ApiLoadResult:
    idle = statistics.median(timed_get(server.port, "/v1/models")[1] for _ in range(5))
    flight = open_streams(server.port, streams, "small", wait_s=60)
    in_flight = sum(bool(s.events) and not s.done.is_set() for s in flight)
    tries = [timed_get(server.port, "/v1/models", timeout=120) for _ in range(3)]
    took = sigterm_seconds(server.proc, timeout=60)
    for s in flight:
        s.done.wait(10)
    return ApiLoadResult(
        streams, in_flight, idle, [t for _, t in tries], [c for c, _ in tries], took,
        sum(s.closed_cleanly for s in flight),
        sum(s.done.is_set() and not s.closed_cleanly for s in flight),
        sum(not s.done.is_set() for s in flight))


def report_api(r: ApiLoadResult) -> None:
    print(f"serve api  streams={r.streams} in flight={r.in_flight}  /v1/models idle "
          f"{r.models_idle_s * 1000:.0f} ms, with the streams in flight "
          + ", ".join(f"{t:.2f} s ({c})" for t, c in zip(r.models_loaded_s, r.models_status,
                                                      strict=True)), flush=True)
    print("serve api  SIGTERM -> ended in "
          + (f"{r.sigterm_s:.2f} s" if r.sigterm_s is not None else "(still running after 60 s)")
          + f"; streams closed with [DONE] {r.closed_cleanly}, cut {r.cut}, still open "
          f"{r.still_open}", flush=True)


def api_ok(r: ApiLoadResult) -> bool:
    """The targets: every stream in flight, /v1/models under 1 s, ended within 5 s, closed."""
    return (r.in_flight == r.streams and all(c == 200 for c in r.models_status)
            and max(r.models_loaded_s) < 1 and r.sigterm_s is not None and r.sigterm_s < 5
            and r.closed_cleanly == r.streams)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="1,4,16", help="parallel askers, comma-separated")
    ap.add_argument("--asks", type=int, default=48, help="asks per run")
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--users", type=int, default=4, help="people the askers act as (0: skip)")
    ap.add_argument("--askers", type=int, default=16, help="parallel askers, as --users people")
    ap.add_argument("--user-asks", type=int, default=64, help="asks in the users run")
    ap.add_argument("--check-samples", type=int, default=60,
                    help="asks each way (as a user, as the operator) timing the access check")
    ap.add_argument("--processes", action="store_true", help="workers are processes")
    ap.add_argument("--endpoint", help="a real OpenAI-compatible server instead of the stand-in")
    ap.add_argument("--json", dest="json_out", help="write the results here")
    ap.add_argument("--api", action="store_true",
                    help="measure `serve api` with slow streams in flight, then SIGTERM")
    ap.add_argument("--streams", type=int, default=60, help="--api: slow streams in flight")
    ap.add_argument("--serve-stand-in", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--slow-gap", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--first-token", type=float, default=20.0,
                    help="--api: seconds the stand-in model takes to its first token")
    args = ap.parse_args()
    if args.serve_stand_in:
        serve_stand_in(args.slow_gap, args.first_token)
        return
    if args.api:
        r = run_api_load(args.streams, first_token_s=args.first_token)
        report_api(r)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(r.to_json(), indent=2))
        sys.exit(0 if api_ok(r) else 1)
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
    user_results: list[UsersResult] = []
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
                if args.users:
                    u = run_users(endpoint, inputs, db, args.users, args.askers, args.user_asks,
                                  args.check_samples)
                    user_results.append(u)
                    print(f"{db:10} users={u.users} askers={u.askers} asks={u.asks} ok={u.ok} "
                          f"errors={len(u.errors)} lost={u.lost} wrong={u.wrong} "
                          f"refused={u.refused}  p50 {u.p50_s * 1000:5.0f} ms", flush=True)
                    print(f"{db:10} access check: ask as a user {u.ask_who_ms:6.1f} ms, as the "
                          f"operator {u.ask_operator_ms:6.1f} ms (medians of "
                          f"{u.check_samples} each): {u.check_ms:+.2f} ms", flush=True)
                    for err in sorted(set(u.errors))[:5]:
                        print(f"    error: {err}")
    finally:
        if fake:
            fake.terminate()
            fake.wait(10)
        if pg:
            pg.stop()
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            [r.to_json() for r in results] + [u.to_json() for u in user_results], indent=2))
    if any(r.errors or r.lost for r in results) or any(
            u.errors or u.lost or u.wrong or u.ok < u.asks for u in user_results):
        sys.exit(1)


if __name__ == "__main__":
    main()
