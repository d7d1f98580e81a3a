"""Ask benchmarks.

  reuse      two separate `scoutlens ask` processes over one ingested ~6K-token corpus, different
             questions: time to first token of each (target: second >= 20x shorter)
  retrieval  the standard library (~10M o200k tokens) ingested once (index built at ingest), then
             `scoutlens ask` in retrieval mode on the embedded 8K model: seconds from starting the
             command to the first answer byte on stdout (target: within 10 s)

Usage: python benchmarks/bench_ask.py [reuse|retrieval|all] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
CLI = [sys.executable, "-m", "app.cli"]


def model_dir() -> str:
    from app.settings import get_settings
    from engine.convert import ensure_safetensors_model

    return str(ensure_safetensors_model(get_settings().home_dir / "models"
                                        / "smollm2-135m-instruct"))


def first_byte(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Seconds to the first stdout byte, to the end, and the output."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    t1 = time.perf_counter()
    rest = proc.stdout.read()
    proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return t1 - t0, time.perf_counter() - t0, (first + rest).decode(errors="replace")


def bench_reuse(runs: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="scoutlens-bench-ask-"))
    repo = work / "facts"
    repo.mkdir()
    for f in range(12):
        (repo / f"part{f:02d}.md").write_text("".join(
            f"Fact {f}-{i}: the box labelled {f}-{i} holds {['red', 'blue', 'green'][i % 3]} "
            f"marbles and was last opened on day {i * 7 % 365}.\n" for i in range(20)))
    (repo / "vault.md").write_text("The vault code is 7291.\n")
    env = {**os.environ, "SCOUTLENS_MODEL": model_dir()}
    first, second, answers = [], [], []
    for run in range(runs):
        env["SCOUTLENS_HOME"] = str(work / f"home-{run}")
        subprocess.run([*CLI, "ingest", str(repo), "--corpus", "facts", "--json"], env=env,
                       cwd=ROOT, capture_output=True, check=True)
        outs = []
        for q in ("What is the vault code?", "Which code opens the vault?"):
            done = subprocess.run([*CLI, "ask", "facts", q, "--json", "--max-tokens", "16"],
                                  env=env, cwd=ROOT, capture_output=True, text=True, check=True)
            outs.append(json.loads(done.stdout))
        first.append(outs[0]["timings"]["ttft_s"])
        second.append(outs[1]["timings"]["ttft_s"])
        answers = [o["answer"] for o in outs]
        prompt, cached = outs[1]["usage"]["prompt_tokens"], outs[1]["usage"]["cached_tokens"]
    shutil.rmtree(work, ignore_errors=True)
    m1, m2 = statistics.median(first), statistics.median(second)
    return {"prompt_tokens": prompt, "second_cached_tokens": cached,
            "ttft_first_s": round(m1, 3), "ttft_second_s": round(m2, 3),
            "ttft_ratio": round(m1 / m2, 1), "answers": answers, "runs": runs}


def bench_retrieval(runs: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="scoutlens-bench-ret-"))
    src = Path(sysconfig.get_paths()["stdlib"])
    corpus = work / "stdlib"
    shutil.copytree(src, corpus, symlinks=True,
                    ignore=shutil.ignore_patterns("site-packages", "__pycache__"))
    env = {**os.environ, "SCOUTLENS_HOME": str(work / "home"), "SCOUTLENS_MODEL": model_dir()}
    t0 = time.perf_counter()
    subprocess.run([*CLI, "ingest", str(corpus), "--corpus", "stdlib", "-t", "o200k", "--json"],
                   env=env, cwd=ROOT, capture_output=True, check=True)
    ingest_s = time.perf_counter() - t0
    questions = ["Where is the function urlsplit defined?",
                 "What does shutil.copytree do with symlinks?",
                 "Which module implements the JSON decoder's scanstring?"]
    starts, totals = [], []
    for run in range(runs):
        q = questions[run % len(questions)]
        start, total, _ = first_byte([*CLI, "ask", "stdlib", q, "--max-tokens", "32"], env)
        starts.append(start)
        totals.append(total)
    done = subprocess.run([*CLI, "ask", "stdlib", questions[0], "--json", "--max-tokens", "48"],
                          env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    out = json.loads(done.stdout)
    shutil.rmtree(work, ignore_errors=True)
    return {"corpus_tokens": out["corpus"]["tokens"], "ingest_with_index_s": round(ingest_s, 1),
            "first_answer_byte_s": round(statistics.median(starts), 2),
            "total_s": round(statistics.median(totals), 2), "mode": out["mode"],
            "in_context_tokens": out["corpus"]["in_context_tokens"],
            "sources": [s["path"] for s in out["sources"]][:5], "answer": out["answer"],
            "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", nargs="?", default="all", choices=["reuse", "retrieval", "all"])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    report: dict = {"cores": os.cpu_count()}
    if args.which in ("reuse", "all"):
        report["reuse"] = bench_reuse(args.runs)
    if args.which in ("retrieval", "all"):
        report["retrieval"] = bench_retrieval(args.runs)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
