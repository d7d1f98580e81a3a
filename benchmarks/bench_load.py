"""Load: N parallel asks against scoutlens's services on one database; throughput, latency,
errors and lost answers.

Each ask takes the real path (find the corpus, read it from the database, pack it whole or
retrieve from it, count tokens with the server's /tokenize, stream the answer, verify citations,
store the question and answer). Only the model is a stand-in by default: a loopback
OpenAI-compatible server (FakeOpenAI from tests/fakes.py, which streams a short
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
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from loadgen import LoadResult, ingest_inputs, make_inputs, run_load  # noqa: E402


def serve_stand_in() -> None:
    """Serve the stand-in model on loopback, print its URL, run until stdin closes."""
    import fakes
    from fakes import FakeOpenAI

    # TCP_NODELAY as uvicorn (vLLM) sets it: else the stand-in's split writes wait on delayed
    # ACKs (~40 ms) over kept-alive connections, timing the stand-in, not the app
    fakes._Handler.disable_nagle_algorithm = True
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
