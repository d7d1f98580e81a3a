"""Engine benchmarks: KV reuse across processes, chunked vs one-shot prefill, embedded vs vLLM-CPU.

  kv-reuse  two separate `scoutlens complete` processes over one ~6K-token corpus with different
            questions; time to first token of each (target: second >= 20x shorter)
  prefill   chunked vs one-shot prefill at the model's full window, each in its own process:
            prefill seconds and peak RSS (target: chunking costs <= 10% more time)
  vllm      the same prompt through vLLM-CPU (started via `scoutlens serve vllm --gpus cpu`):
            prefill tokens/s side by side with the embedded backend (target: within 2x), and the
            two-question test: cached tokens and the TTFT ratio
  mfu       embedded prefill FLOP/s against this CPU's measured bf16 matmul rate
  tiers     the embedded engine's three KV tiers on one ~6K-token corpus, in one process and
            after a restart: time to first token cold, from the device tier (the last buffer,
            in place), from host memory, from disk; and each tier's copy rate into the buffer
            (host memory, disk with the page cache dropped first)

Usage: python benchmarks/bench_engine.py [kv-reuse|prefill|vllm|mfu|tiers|all] [--runs 3]
Medians over runs; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def corpus_text(n_facts: int) -> str:
    facts = [f"Fact {i}: the box labelled {i} holds {['red', 'blue', 'green'][i % 3]} marbles "
             f"and was last opened on day {i * 7 % 365}.\n" for i in range(n_facts)]
    return "".join(facts[: n_facts // 2]) + "The vault code is 7291.\n" + "".join(
        facts[n_facts // 2:])


QUESTIONS = ["Question: What is the vault code? Answer with the number only.",
             "Question: Which number opens the vault? Reply with the code."]


def run_json(cmd: list[str], env: dict[str, str]) -> tuple[dict, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall, max(rss, before)


def model_dir() -> Path:
    from app.settings import get_settings
    from engine.convert import ensure_safetensors_model

    return ensure_safetensors_model(get_settings().home_dir / "models" / "smollm2-135m-instruct")


def bench_kv_reuse(runs: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="scoutlens-bench-kv-"))
    corpus = work / "corpus.txt"
    corpus.write_text(corpus_text(230))  # ~6K tokens with the chat template
    qs = []
    for i, q in enumerate(QUESTIONS):
        (work / f"q{i}.txt").write_text("\n\n" + q)
        qs.append(work / f"q{i}.txt")
    model = str(model_dir())
    first, second, walls = [], [], []
    for run in range(runs):
        env = {**os.environ, "SCOUTLENS_HOME": str(work / f"home-{run}")}
        results = []
        for q in qs:
            cmd = [sys.executable, "-m", "app.cli", "complete", "--prefix-file", str(corpus),
                   "-p", str(q), "--model", model, "--max-tokens", "16", "--json"]
            out, wall, _ = run_json(cmd, env)
            results.append(out)
            walls.append(wall)
        first.append(results[0]["timings"]["ttft_s"])
        second.append(results[1]["timings"]["ttft_s"])
        prompt, cached = results[1]["usage"]["prompt_tokens"], results[1]["usage"]["cached_tokens"]
        answers = [r["text"] for r in results]
    med1, med2 = statistics.median(first), statistics.median(second)
    return {"prompt_tokens": prompt, "second_cached_tokens": cached, "answers": answers,
            "ttft_first_s": round(med1, 3), "ttft_second_s": round(med2, 3),
            "ttft_ratio": round(med1 / med2, 1), "runs": runs,
            "process_wall_median_s": round(statistics.median(walls), 2)}


PREFILL_CHILD = """
import json, resource, sys, time, torch
from engine.embedded import EmbeddedBackend
from engine.generate import prefill
chunk, n = int(sys.argv[1]), int(sys.argv[2])
b = EmbeddedBackend(sys.argv[3], reuse=False)
ids = [(i * 7919) % 40000 + 100 for i in range(n)]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
r = prefill(b.lm.model, ids, chunk=chunk)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "peak_rss_mb": resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_before_mb": base / 1024}))
"""


def bench_prefill(runs: int, chunk: int = 1024) -> dict:
    model = str(model_dir())
    from transformers import AutoConfig

    window = AutoConfig.from_pretrained(model).max_position_embeddings
    n = window - 1
    res: dict[str, list[dict]] = {"chunked": [], "one_shot": []}
    for _ in range(runs):
        for name, size in (("chunked", chunk), ("one_shot", n)):
            out, _, _ = run_json([sys.executable, "-c", PREFILL_CHILD, str(size), str(n), model],
                                 dict(os.environ))
            res[name].append(out)
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in res.items()}
    rss = {k: max(r["peak_rss_mb"] for r in v) for k, v in res.items()}
    return {"tokens": n, "chunk": chunk, "chunked_s": round(med["chunked"], 2),
            "one_shot_s": round(med["one_shot"], 2),
            "chunked_overhead_pct": round(100 * (med["chunked"] / med["one_shot"] - 1), 1),
            "chunked_peak_rss_mb": round(rss["chunked"]), "one_shot_peak_rss_mb":
            round(rss["one_shot"]), "tokens_per_s_chunked": round(n / med["chunked"]),
            "runs": runs}


def matmul_rate(size: int = 2048, reps: int = 20) -> float:
    import torch

    a = torch.randn(size, size, dtype=torch.bfloat16)
    b = torch.randn(size, size, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * size**3 * reps / (time.perf_counter() - t0)


def prefill_flops(cfg, n: int) -> float:
    """Linear layers 2*params*N (no lm_head: only the last position's logits) + causal
    attention 2 (QK^T, PV) * 2 * layers * heads * head_dim * N^2 / 2."""
    h, layers = cfg.hidden_size, cfg.num_hidden_layers
    heads = cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", heads)
    hd = getattr(cfg, "head_dim", None) or h // heads
    per_layer = h * heads * hd * 2 + h * kv * hd * 2 + 3 * h * cfg.intermediate_size
    linear = 2 * per_layer * layers * n
    attention = 2 * 2 * layers * heads * hd * n * n / 2
    return linear + attention


def bench_mfu(runs: int) -> dict:
    from transformers import AutoConfig

    model = str(model_dir())
    cfg = AutoConfig.from_pretrained(model)
    pre = bench_prefill(runs)
    n = pre["tokens"]
    flops = prefill_flops(cfg, n)
    rate = matmul_rate()
    achieved = flops / pre["chunked_s"]
    return {"tokens": n, "prefill_s": pre["chunked_s"], "prefill_tflop": round(flops / 1e12, 2),
            "achieved_gflop_s": round(achieved / 1e9, 1),
            "bf16_matmul_gflop_s_measured": round(rate / 1e9, 1),
            "mfu_vs_measured_matmul_pct": round(100 * achieved / rate, 1)}


def bench_vllm(runs: int) -> dict:
    from app.settings import get_settings
    from engine.embedded import EmbeddedBackend
    from engine.openai_backend import OpenAIBackend
    from engine.types import CompletionRequest
    from engine.vllm_server import find_vllm_python

    if find_vllm_python(get_settings().vllm_python) is None:
        return {"skipped": "no vLLM (run `make vllm-cpu`)"}
    port = 8765
    env = {**os.environ}
    serve = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "vllm", "--gpus", "cpu",
                              "--port", str(port)], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        remote = OpenAIBackend(f"http://127.0.0.1:{port}/v1", base_timeout=600)
        deadline = time.time() + 900
        while True:
            try:
                remote.model  # noqa: B018 - resolves when the server answers
                break
            except Exception as exc:
                if serve.poll() is not None or time.time() > deadline:
                    log = serve.stderr.read()[-3000:]
                    raise SystemExit(f"vLLM did not start: {log}") from exc
                time.sleep(3)
        local = EmbeddedBackend(str(model_dir()), reuse=False)
        vllm_rates, emb_rates, q1, q2, cached = [], [], [], [], []
        for run in range(runs):
            # a unique corpus per run: nothing cached on the server
            text = f"Run {run}.\n" + corpus_text(230)
            for backend, rates in ((remote, vllm_rates), (local, emb_rates)):
                req = CompletionRequest(prompt="\n\n" + QUESTIONS[0], prefix=text, max_tokens=1)
                c = backend.stream(req).collect()
                rates.append(c.usage.prompt_tokens / c.timings.ttft_s)
            fresh = f"Second set {run}.\n" + corpus_text(230)  # never sent before: cold
            a = remote.stream(CompletionRequest(prompt="\n\n" + QUESTIONS[1], prefix=fresh,
                                                max_tokens=16)).collect()
            b = remote.stream(CompletionRequest(prompt="\n\n" + QUESTIONS[0], prefix=fresh,
                                                max_tokens=16)).collect()
            q1.append(a.timings.ttft_s)
            q2.append(b.timings.ttft_s)
            cached.append(b.usage.cached_tokens)
        return {"prompt_tokens": c.usage.prompt_tokens,
                "vllm_prefill_tok_s": round(statistics.median(vllm_rates)),
                "embedded_prefill_tok_s": round(statistics.median(emb_rates)),
                "embedded_vs_vllm": round(statistics.median(emb_rates)
                                          / statistics.median(vllm_rates), 2),
                "vllm_q1_ttft_s": round(statistics.median(q1), 3),
                "vllm_q2_ttft_s": round(statistics.median(q2), 3),
                "vllm_ttft_ratio": round(statistics.median(q1) / statistics.median(q2), 1),
                "vllm_q2_cached_tokens": int(statistics.median(cached)),
                "answer_q2": b.text, "runs": runs}
    finally:
        serve.terminate()
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()


def _drop_page_cache(folder: Path) -> None:
    """Push the block files out of the page cache, so the next read is the disk's."""
    for path in folder.rglob("*.kv"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def bench_tiers(runs: int) -> dict:
    """Per run a unique corpus: the first question cold, the second from the device tier, the
    third after the buffer is let go (host memory), the fourth in a new backend over the same
    folder with the page cache dropped (disk: a restart). Then each tier's copy rate alone."""
    from engine.embedded import EmbeddedBackend
    from engine.kvbuffer import KVBuffer
    from engine.kvcache import PrefixCache
    from engine.types import CompletionRequest

    model = str(model_dir())
    rows: dict[str, list[float]] = {k: [] for k in (
        "cold", "device", "host", "disk", "host_gb_s", "disk_gb_s")}
    cached: dict[str, int] = {}
    for run in range(runs):
        kv = Path(tempfile.mkdtemp(prefix="scoutlens-bench-tiers-"))
        text = f"Run {run}.\n" + corpus_text(230)
        backend = EmbeddedBackend(model, kv_dir=kv)

        def ask(b, q: int, text: str = text):
            return b.stream(CompletionRequest(prompt="\n\n" + QUESTIONS[q % 2], prefix=text,
                                              max_tokens=1)).collect()

        for tier, q in (("cold", 0), ("device", 1), ("host", 0)):
            if tier == "host":
                backend.resident = None  # evicted from the device
            c = ask(backend, q)
            rows[tier].append(c.timings.ttft_s)
            cached[tier] = c.usage.cached_tokens
        _drop_page_cache(kv)
        restarted = EmbeddedBackend(model, kv_dir=kv)
        c = ask(restarted, 1)
        rows["disk"].append(c.timings.ttft_s)
        cached["disk"] = c.usage.cached_tokens
        # copy rates: the prompt's blocks into a fresh buffer, from host memory and from disk
        ids = backend.encode(CompletionRequest(prompt="\n\n" + QUESTIONS[0], prefix=text))
        cache = backend.prefix_cache
        keys = cache.keys(ids)
        blocks = [b.kv for b in cache.lookup(keys)]
        nbytes = sum(b.numel() * b.element_size() for b in blocks)
        buffer = KVBuffer.for_model(backend.lm.model, len(ids))
        t0 = time.perf_counter()
        buffer.load(blocks)
        rows["host_gb_s"].append(nbytes / (time.perf_counter() - t0) / 1e9)
        _drop_page_cache(kv)
        fresh = PrefixCache(backend.lm.key, cache.block, kv)
        t0 = time.perf_counter()
        buffer.load([b.kv for b in fresh.lookup(keys)])
        rows["disk_gb_s"].append(nbytes / (time.perf_counter() - t0) / 1e9)
    med = {k: statistics.median(v) for k, v in rows.items()}
    return {"prompt_tokens": len(ids), "kv_bytes": nbytes, "cached_tokens": cached,
            **{f"ttft_{k}_s": round(med[k], 4) for k in ("cold", "device", "host", "disk")},
            **{f"speedup_{k}": round(med["cold"] / med[k], 1) for k in ("device", "host",
                                                                         "disk")},
            "host_to_buffer_gb_s": round(med["host_gb_s"], 2),
            "disk_to_buffer_gb_s": round(med["disk_gb_s"], 2), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", nargs="?", default="all",
                    choices=["kv-reuse", "prefill", "vllm", "mfu", "tiers", "all"])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    report = {"cores": os.cpu_count()}
    if args.which in ("kv-reuse", "all"):
        report["kv_reuse"] = bench_kv_reuse(args.runs)
    if args.which in ("prefill", "all"):
        report["prefill"] = bench_prefill(args.runs)
    if args.which in ("mfu", "all"):
        report["mfu"] = bench_mfu(1)
    if args.which in ("tiers", "all"):
        report["tiers"] = bench_tiers(args.runs)
    if args.which in ("vllm", "all"):
        report["vllm"] = bench_vllm(args.runs)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
