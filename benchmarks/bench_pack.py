"""Ingest+pack benchmark: scoutlens vs repomix on this machine's Python standard library.

Runs both side by side in one process, alternating, and reports medians and ratios:
  - cold pack (scoutlens: empty token cache; repomix: REPOMIX_TOKEN_CACHE=0)
  - re-pack after one file changed (scoutlens: warm caches and its stat memo; repomix: its
    token cache warm), --repacks times a run, each after its own edit
  - peak RSS of the scoutlens process, MB/s and tokens/s
  - cold `scoutlens ingest` into the database (symbols, segments; no repomix equivalent)
  - watch mode (`pack --watch`, repomix's `--watch`): from one file's edit to the tool's own
    line saying the new pack is written, --repacks edits a run, each tool watching alone

repomix is installed from the npm registry into benchmarks/.tools on first use.
Usage: python benchmarks/bench_pack.py [--runs 3] [--repacks 3] [--corpus DIR] [--no-repomix]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = HERE / ".tools"
REPOMIX_VERSION = "1.18.1"


def stdlib_copy(dest: Path) -> Path:
    """A private copy of the standard library (no site-packages), so one file can change."""
    src = Path(sysconfig.get_paths()["stdlib"])
    target = dest / "stdlib"
    shutil.copytree(src, target, symlinks=True,
                    ignore=shutil.ignore_patterns("site-packages", "__pycache__"))
    return target


def repomix_bin() -> Path | None:
    exe = TOOLS / "node_modules" / ".bin" / "repomix"
    if not exe.exists() and shutil.which("npm"):
        subprocess.run(["npm", "install", "--silent", "--prefix", str(TOOLS),
                        f"repomix@{REPOMIX_VERSION}"], check=False)
    return exe if exe.exists() else None


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of this one child process tree (os.wait4's rusage)."""
    with tempfile.TemporaryFile() as errf:  # a file, not a pipe: a chatty child cannot block
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=errf)
        _, status, usage = os.wait4(proc.pid, 0)
        dt = time.perf_counter() - t0
        errf.seek(0)
        err = errf.read().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err[-2000:]}")
    return dt, usage.ru_maxrss


def touch_one(corpus: Path, run: int) -> None:
    f = corpus / "json" / "decoder.py"
    f.write_text(f.read_text() + f"\n# benchmark edit {run}\n")


class Watching:
    """A tool's watch mode in its own process: `when(text)` is the time its output says
    `text` (each tool prints a line once a pack is written)."""

    def __init__(self, cmd: list[str], env: dict[str, str], stream: str) -> None:
        pipes = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
                 stream: subprocess.PIPE}
        self.proc = subprocess.Popen(cmd, env=env, text=True, **pipes)
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, args=(getattr(self.proc, stream),),
                         daemon=True).start()

    def _read(self, pipe) -> None:
        for line in pipe:
            self.lines.put((time.perf_counter(), line))

    def when(self, text: str, timeout: float = 900) -> float:
        end = time.perf_counter() + timeout
        while True:
            try:
                at, line = self.lines.get(timeout=max(0.01, end - time.perf_counter()))
            except queue.Empty:
                raise SystemExit(f"no {text!r} from {self.proc.args}") from None
            if text in line:
                return at

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def watch_latencies(cmd: list[str], env: dict[str, str], stream: str, ready: str, done: str,
                    corpus: Path, edits: range) -> list[float]:
    """Seconds from each edit to the watcher's line saying the new pack is written."""
    w = Watching(cmd, env, stream)
    try:
        w.when(ready)
        time.sleep(1.0)  # let the first pack's own writes settle
        out = []
        for edit in edits:
            began = time.perf_counter()
            touch_one(corpus, edit)
            out.append(w.when(done) - began)
            time.sleep(0.5)
        return out
    finally:
        w.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--tokenizer", default="o200k")
    ap.add_argument("--no-repomix", action="store_true")
    ap.add_argument("--repacks", type=int, default=3, help="re-packs (one edit each) per run")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="scoutlens-bench-"))
    corpus = args.corpus or stdlib_copy(work)
    scoutlens = [sys.executable, "-m", "app.cli"]
    base_env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    out_s, out_r = work / "pack.xml", work / "repomix.xml"
    rmx = None if args.no_repomix else repomix_bin()
    results: dict[str, list[float]] = {k: [] for k in (
        "scoutlens_cold", "scoutlens_repack", "repomix_cold", "repomix_repack",
        "scoutlens_ingest_cold", "scoutlens_reingest", "scoutlens_watch", "repomix_watch")}
    rss = 0
    for run in range(args.runs):
        home = work / f"home-{run}"
        env = {**base_env, "SCOUTLENS_HOME": str(home)}
        pack = [*scoutlens, "pack", str(corpus), "-t", args.tokenizer, "--out", str(out_s),
                "--manifest", str(work / "manifest.json")]
        dt, peak = timed(pack, env)
        results["scoutlens_cold"].append(dt)
        rss = max(rss, peak)
        if rmx:
            rmx_cmd = [str(rmx), str(corpus), "-o", str(out_r), "--quiet"]
            renv = {**base_env, "REPOMIX_TOKEN_CACHE": "0"}
            results["repomix_cold"].append(timed(rmx_cmd, renv)[0])
            timed(rmx_cmd, base_env)  # fill repomix's token cache
        for edit in range(args.repacks):  # short runs on a noisy machine: more of them
            touch_one(corpus, run * 10 + edit)
            results["scoutlens_repack"].append(timed(pack, env)[0])
            if rmx:
                results["repomix_repack"].append(timed(rmx_cmd, base_env)[0])
        edits = range(run * 10 + 5, run * 10 + 5 + args.repacks)
        results["scoutlens_watch"] += watch_latencies(
            [*pack, "--watch"], {**env, "COLUMNS": "200"}, "stderr", "watching", "re-packed in",
            corpus, edits)
        if rmx:
            results["repomix_watch"] += watch_latencies(
                [str(rmx), str(corpus), "-o", str(out_r), "--watch"], base_env, "stdout",
                "Watching", "Rebuilt at", corpus, edits)
        ingest = [*scoutlens, "ingest", str(corpus), "--corpus", "bench", "-t", args.tokenizer,
                  "--json"]
        results["scoutlens_ingest_cold"].append(timed(ingest, env)[0])
        touch_one(corpus, run * 10 + 9)
        results["scoutlens_reingest"].append(timed(ingest, env)[0])

    manifest = json.loads((work / "manifest.json").read_text())
    tokens = manifest["total_tokens"]
    mb = out_s.stat().st_size / 1e6
    med = {k: statistics.median(v) for k, v in results.items() if v}
    report = {
        "corpus": str(corpus), "files": len(manifest["sources"]), "tokens": tokens,
        "packed_mb": round(mb, 1), "runs": args.runs, "tokenizer": args.tokenizer,
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "scoutlens_cold_mb_per_s": round(mb / med["scoutlens_cold"], 1),
        "scoutlens_cold_tokens_per_s": round(tokens / med["scoutlens_cold"]),
        "scoutlens_peak_rss_mb": round(rss / 1024),
        "cores": os.cpu_count(),
    }
    if "repomix_cold" in med:
        report["speedup_cold_vs_repomix"] = round(med["repomix_cold"] / med["scoutlens_cold"], 2)
        report["speedup_repack_vs_repomix_cached"] = round(
            med["repomix_repack"] / med["scoutlens_repack"], 2)
        report["speedup_watch_vs_repomix_watch"] = round(
            med["repomix_watch"] / med["scoutlens_watch"], 2)
    print(json.dumps(report, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
