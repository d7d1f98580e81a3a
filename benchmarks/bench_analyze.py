"""Analyze benchmarks (issue 28), side by side in one run.

  embedded   `brief` on the embedded 8K model (map-reduce) over a real subset of the standard
             library: coverage (target 1.0), calls, levels, and the analysis's engine time
             against prefilling the same parts once (max_tokens=1 each); target: at most 15% more
  vllm       vLLM-CPU (`scoutlens serve vllm --gpus cpu`, the bundled model) serving the same
             map calls concurrently and in sequence: throughput ratio (target >= 2x) and the
             cached tokens of each call (the shared instruction prefix). --fake runs it against
             tests/fakes.py's FakeOpenAI instead: a pipeline check only, not a throughput figure
  citations  the share of a briefing's citations and of an extraction's cells that check out,
             on the embedded model and on a scripted backend that answers perfectly

Usage: python benchmarks/bench_analyze.py [embedded vllm citations | all] [--subset json]
       [--max-tokens 64] [--out bench_analyze.json] [--fake]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # fakes.py: the scripted backends and FakeOpenAI
SOURCE = re.compile(r'<source id="(S\d+)" path="([^"]+)"')


def model_dir() -> str:
    from app.settings import get_settings
    from engine.convert import ensure_safetensors_model

    return str(ensure_safetensors_model(get_settings().home_dir / "models"
                                        / "smollm2-135m-instruct"))


def stdlib_subset(names: list[str], into: Path) -> Path:
    """The .py files of these standard-library packages, copied (no caches, no tests)."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    for name in names:
        for f in sorted((lib / name).rglob("*.py")):
            if "test" in f.relative_to(lib).parts[1:-1]:
                continue
            dest = into / f.relative_to(lib)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
    return into


class Timed:
    """A backend that keeps each completion (its usage, timings and wall seconds) of the calls
    made on it; with `baseline`, each map call is followed by a plain prefill of the same part
    (max_tokens=1, no task), timed apart, so both run under the same load on a shared machine."""

    def __init__(self, inner, baseline: bool = False):
        self.inner, self.baseline = inner, baseline
        self.completions: list = []  # (request, completion, seconds)
        self.prefills: list = []  # (completion, seconds)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def stream(self, request):
        from engine.types import CompletionRequest, Stream

        t = time.perf_counter()
        c = self.inner.stream(request).collect()
        self.completions.append((request, c, time.perf_counter() - t))
        if self.baseline and SOURCE.search(request.prompt):
            packed = request.prompt.removesuffix("\n\nAnswer now.")
            t = time.perf_counter()
            p = self.inner.stream(CompletionRequest(prompt=packed, max_tokens=1)).collect()
            self.prefills.append((p, time.perf_counter() - t))
        return Stream(iter([c.text]), lambda: c)


def map_parts(corpus: str, backend, max_tokens: int):
    """The parts and map requests `analyze ... brief` makes of this corpus on this backend."""
    from app.services.analysis import prompts
    from app.services.analysis.parts import split
    from app.services.analysis.run import RESERVE
    from app.services.snapshot import documents, open_snapshot

    with open_snapshot(corpus, None) as snap:
        docs, spec = documents(snap, symbols=True), snap.tokenizer
    tok = backend.tokenizer()
    budget = backend.window - max_tokens - RESERVE - tok.count(prompts.BRIEF_MAP)
    parts, coverage = split(docs, spec, corpus, budget, tok)
    return parts, [prompts.map_request(prompts.BRIEF_MAP, p.packed, max_tokens) for p in parts]


def bench_embedded(subset: list[str], max_tokens: int) -> dict:
    from app.services.analysis.run import analyze
    from app.services.analysis.types import AnalyzeInput
    from app.services.backends import make_backend
    from app.services.ingesting import ingest

    work = Path(tempfile.mkdtemp(prefix="scoutlens-bench-analyze-"))
    src = stdlib_subset(subset, work / "stdlib")
    ingest([src], "stdlib")
    timed = Timed(make_backend("embedded"), baseline=True)
    t0 = time.perf_counter()
    result = analyze(AnalyzeInput("stdlib", "brief", max_tokens=max_tokens), timed)
    wall = time.perf_counter() - t0
    data = result.to_json()
    shutil.rmtree(work, ignore_errors=True)
    maps = [(c, s) for r, c, s in timed.completions if SOURCE.search(r.prompt)]
    reduces = [(c, s) for r, c, s in timed.completions if not SOURCE.search(r.prompt)]
    engine = sum(s for _, _, s in timed.completions)
    prefill = sum(s for _, s in timed.prefills)

    def total(pairs, what):
        return round(sum(getattr(c.timings, what) for c, _ in pairs), 2)

    return {
        "subset": subset, "max_tokens": max_tokens, "coverage": data["coverage"],
        "sources": data["sources"], "sources_read": data["sources_read"],
        "corpus_tokens": data["tokens"], "calls": data["calls"], "map_calls": len(maps),
        "reduce_calls": len(reduces), "levels": data["levels"],
        "usage": {k: v for k, v in data["usage"].items() if k != "engine_s"},  # held prefills
        "wall_s": round(wall, 1), "engine_s": round(engine, 2),
        "map_prefill_s": total(maps, "prefill_s"),
        "map_decode_s": round(total(maps, "total_s") - total(maps, "ttft_s"), 2),
        "map_s": round(sum(s for _, s in maps), 2),
        "reduce_s": round(sum(s for _, s in reduces), 2),
        "prefill_once_s": round(prefill, 2),
        "prefill_once_prefill_s": total(timed.prefills, "prefill_s"),
        "prefill_once_tokens": sum(c.usage.prompt_tokens for c, _ in timed.prefills),
        "overhead": round(engine / prefill - 1, 3) if prefill else None,
        "overhead_prefill_only": round(total(maps, "prefill_s") / total(
            timed.prefills, "prefill_s") - 1, 3) if timed.prefills else None,
        "citations": len(data["citations"]), "citations_verified": data["citations_verified"],
        "guide_entries": len(data["guide"]),
    }


# --- concurrency on a server ----------------------------------------------------------------


def start_vllm(home: Path) -> tuple[subprocess.Popen, str, Path]:
    from engine.vllm_server import free_port

    port = free_port()
    err = home / "serve.err"
    out = home / "serve.out"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "vllm", "--gpus",
                                 "cpu", "--port", str(port)], stdout=o, stderr=e,
                                stdin=subprocess.DEVNULL, cwd=ROOT,
                                env={**os.environ, "COLUMNS": "200"})
    deadline = time.monotonic() + float(os.environ.get("BENCH_VLLM_WAIT_S", "900"))
    while time.monotonic() < deadline:
        found = re.search(r"^endpoint: (\S+)$", out.read_text(), re.M)
        if found:
            return proc, found.group(1), err
        if proc.poll() is not None:
            raise SystemExit(f"serve vllm exited {proc.returncode}: {err.read_text()[-2000:]}")
        time.sleep(2)
    stop(proc)
    raise SystemExit(f"vLLM-CPU not ready in time: {err.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_maps(backend, requests, workers: int) -> tuple[float, list]:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(lambda r: backend.stream(r).collect(), requests))
    return time.perf_counter() - t0, done


def bench_server(subset: list[str], max_tokens: int, fake: bool) -> dict:
    from dataclasses import replace

    from app.services.ingesting import ingest
    from engine.openai_backend import OpenAIBackend

    work = Path(tempfile.mkdtemp(prefix="scoutlens-bench-analyze-vllm-"))
    ingest([stdlib_subset(subset, work / "stdlib")], "stdlib")
    proc = server = None
    if fake:
        from fakes import FakeOpenAI, Reply

        server = FakeOpenAI(max_model_len=8192).start()
        server.script(*[Reply(delay_s=0.5, prompt_tokens=7000, cached_tokens=200)] * 200)
        endpoint = server.url
    else:
        proc, endpoint, _ = start_vllm(work)
    try:
        backend = OpenAIBackend(endpoint)
        parts, requests = map_parts("stdlib", backend, max_tokens)
        backend.stream(replace(requests[0], prompt="warm the prefix", max_tokens=1)).collect()
        figures = {}
        for mode, workers in (("sequence", 1), ("concurrent", 8)):
            # a mark after the shared task text: the instruction stays cached, the parts do not
            mine = [replace(r, prompt=f"({mode})\n{r.prompt}") for r in requests]
            seconds, done = run_maps(backend, mine, workers)
            figures[mode] = {
                "seconds": round(seconds, 2), "calls": len(done),
                "prompt_tokens": sum(c.usage.prompt_tokens for c in done),
                "completion_tokens": sum(c.usage.completion_tokens for c in done),
                "cached_tokens_per_call": [c.usage.cached_tokens for c in done],
                "tokens_per_s": round(sum(c.usage.prompt_tokens + c.usage.completion_tokens
                                          for c in done) / seconds, 1)}
        seq, con = figures["sequence"]["seconds"], figures["concurrent"]["seconds"]
        return {"server": "FakeOpenAI (pipeline check only)" if fake else "vLLM-CPU",
                "subset": subset, "max_tokens": max_tokens, "parts": len(parts),
                "instruction_tokens": backend.tokenizer().count(requests[0].prefix),
                **figures, "throughput_ratio": round(seq / con, 2) if con else None,
                "tokens_per_s_ratio": round(figures["concurrent"]["tokens_per_s"]
                                            / figures["sequence"]["tokens_per_s"], 2)}
    finally:
        if server is not None:
            server.close()
        if proc is not None:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


# --- citations ------------------------------------------------------------------------------


def contracts(root: Path, n: int = 6) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"c{i:02}.txt").write_text(
            f"Supply contract {i}\nParty: Acme {i} Ltd\nStart date: 2024-01-{i + 1:02}\n"
            f"Amount: {1000 + i} EUR\n" + "A clause of no consequence. " * 20 + "\n")
    return root


def perfect_backends():
    """Backends answering as a perfect model would (as tests/unit/test_analyze.py's)."""
    from fakes import ScriptedBackend

    class Briefer(ScriptedBackend):
        def stream(self, request):
            ids = SOURCE.findall(request.prefix + request.prompt)
            self.reply = ("\n".join(f"[{sid}] {path}: a supply contract." for sid, path in ids)
                          if ids else "Themes: supply. " + " ".join(dict.fromkeys(
                              re.findall(r"\[S\d+\]", request.prompt))))
            return super().stream(request)

    class Extractor(ScriptedBackend):
        def stream(self, request):
            self.reply = "\n".join(json.dumps({
                "source": sid, "party": {"value": f"Acme {int(p[1:3])} Ltd", "cite": f"{sid} L2"},
                "amount": {"value": f"{1000 + int(p[1:3])} EUR", "cite": f"{sid} L4"}})
                for sid, p in SOURCE.findall(request.prefix + request.prompt))
            return super().stream(request)

    return Briefer(window=8192), Extractor(window=8192)


def bench_citations(max_tokens: int) -> dict:
    from app.services.analysis.run import analyze
    from app.services.analysis.types import AnalyzeInput
    from app.services.backends import make_backend
    from app.services.ingesting import ingest

    work = Path(tempfile.mkdtemp(prefix="scoutlens-bench-analyze-cite-"))
    ingest([contracts(work / "contracts")], "contracts")
    embedded = make_backend("embedded")
    briefer, extractor = perfect_backends()
    figures = {}
    for name, brief_b, extract_b in (("embedded", embedded, embedded),
                                     ("scripted", briefer, extractor)):
        brief = analyze(AnalyzeInput("contracts", "brief", max_tokens=max_tokens),
                        brief_b).to_json()
        table = analyze(AnalyzeInput("contracts", "extract", ("party", "amount"),
                                     max_tokens=max(max_tokens, 256)), extract_b).to_json()
        cells = [c for r in table["rows"] for c in r["cells"].values()]
        found = [c for c in cells if c["found"]]
        figures[name] = {
            "brief_citations": len(brief["citations"]),
            "brief_verified": brief["citations_verified"],
            "brief_share": share(brief["citations_verified"], len(brief["citations"])),
            "cells": len(cells), "cells_found": len(found),
            "cells_verified": sum(c["verified"] for c in found),
            "cell_share": share(sum(c["verified"] for c in found), len(found)),
            "coverage": [brief["coverage"], table["coverage"]]}
    shutil.rmtree(work, ignore_errors=True)
    return figures


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("which", nargs="*", default=["all"],
                    choices=["embedded", "vllm", "citations", "all"])
    ap.add_argument("--subset", default="json", help="stdlib packages, comma-separated")
    ap.add_argument("--server-subset", default="json,http", help="the same, for vllm")
    ap.add_argument("--max-tokens", type=int, default=64, help="per map/reduce call")
    ap.add_argument("--fake", action="store_true", help="vllm: FakeOpenAI, a pipeline check")
    ap.add_argument("--out", default=str(HERE / "bench_analyze.json"))
    args = ap.parse_args()
    from app.settings import get_settings

    os.environ.setdefault("SCOUTLENS_MODEL", model_dir())  # converted once, in the usual home
    home = Path(tempfile.mkdtemp(prefix="scoutlens-bench-home-"))  # corpora and analyses
    os.environ["SCOUTLENS_HOME"] = str(home)

    get_settings.cache_clear()
    report: dict = {}
    if {"embedded", "all"} & set(args.which):
        e = report["embedded"] = bench_embedded(args.subset.split(","), args.max_tokens)
        print(f"embedded brief over {','.join(e['subset'])}: {e['corpus_tokens']:,} tokens, "
              f"coverage {e['coverage']}, {e['calls']} calls ({e['map_calls']} map, "
              f"{e['reduce_calls']} reduce, {e['levels']} levels)")
        print(f"  engine {e['engine_s']} s = map prefill {e['map_prefill_s']} + map decode "
              f"{e['map_decode_s']} + reduce {e['reduce_s']} | the same parts prefilled once, "
              f"interleaved: {e['prefill_once_s']} s -> +{e['overhead']:.0%} (target <= +15%)")
        print(f"  usage {e['usage']}; map prefill alone vs plain prefill: "
              f"+{e['overhead_prefill_only']:.0%}")
    if {"vllm", "all"} & set(args.which):
        v = report["vllm"] = bench_server(args.server_subset.split(","), args.max_tokens,
                                          args.fake)
        print(f"{v['server']}: {v['parts']} map calls, sequence {v['sequence']['seconds']} s, "
              f"concurrent {v['concurrent']['seconds']} s -> {v['throughput_ratio']}x "
              f"(tokens/s {v['tokens_per_s_ratio']}x; target >= 2x)")
        print(f"  cached tokens per call (instruction {v['instruction_tokens']} tokens): "
              f"sequence {v['sequence']['cached_tokens_per_call']}, concurrent "
              f"{v['concurrent']['cached_tokens_per_call']}")
    if {"citations", "all"} & set(args.which):
        c = report["citations"] = bench_citations(args.max_tokens)
        print(f"{'citations':12} {'brief ok/all':>14} {'cells ok/found/all':>20}")
        for name, f in c.items():
            print(f"{name:12} {f['brief_verified']:>6}/{f['brief_citations']:<7} "
                  f"{f['cells_verified']:>8}/{f['cells_found']}/{f['cells']}")
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"figures written to {args.out}")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
