"""Ingest at scale: a ~77M-token corpus (this project's own site-packages, text files only: no
binaries, nothing over 2 MB), cold, into a fresh home, with reading in one process and in
worker processes, side by side in one run. Reports wall time, peak RSS of the whole process
tree (os.wait4), tokens/s, and the time of one `ask --dry-run` (index loaded, nothing
generated) over the result.

Usage: python benchmarks/bench_ingest_scale.py [--source DIR] [--work DIR] [--runs 1]
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

TEXT = {".py", ".pyi", ".md", ".txt", ".rst", ".json", ".toml", ".cfg", ".js", ".ts", ".html",
        ".css", ".c", ".h", ".yaml", ".yml"}
QUESTION = "What is the value of DEFAULT_MAX_RETRIES in the openai package?"


def text_copy(src: Path, dest: Path) -> Path:
    """The text files of `src` (under 2 MB, no __pycache__), copied once into `dest`."""
    if dest.exists():
        return dest
    for path in src.rglob("*"):
        if (path.suffix in TEXT and path.is_file() and "__pycache__" not in path.parts
                and path.stat().st_size < 2 << 20):
            target = dest / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return dest


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS MB of the process tree, stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        dt = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{err.read().decode()[-2000:]}")
        return dt, usage.ru_maxrss // 1024, out.read().decode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", type=Path, default=Path(sysconfig.get_paths()["purelib"]))
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "scoutlens-scale")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    corpus = text_copy(args.source, args.work / "corpus")
    exe = [sys.executable, "-m", "app.cli"]
    results: dict[str, list[tuple[float, int, int, float]]] = {"1 process": [], "workers": []}
    for _ in range(args.runs):
        for label, workers in (("1 process", "1"), ("workers", "0")):
            home = args.work / f"home-{workers}"
            shutil.rmtree(home, ignore_errors=True)
            env = {**os.environ, "SCOUTLENS_HOME": str(home), "SCOUTLENS_WORKERS": workers}
            dt, rss, out = run([*exe, "ingest", "site", str(corpus), "--json"], env)
            tokens = json.loads(out)["total_tokens"]
            dry, _, _ = run([*exe, "ask", "site", QUESTION, "--dry-run", "--json"], env)
            dry, _, _ = run([*exe, "ask", "site", QUESTION, "--dry-run", "--json"], env)  # warm
            results[label].append((dt, rss, tokens, dry))
    print(f"corpus: {corpus} (cpus {os.cpu_count()})")
    print(f"{'reading':10} {'ingest s':>9} {'peak RSS':>9} {'tokens':>12} {'Mtok/s':>7} "
          f"{'dry-run s':>9}")
    for label, rows in results.items():
        dt = statistics.median(r[0] for r in rows)
        rss = max(r[1] for r in rows)
        tokens = rows[0][2]
        print(f"{label:10} {dt:9.1f} {rss:8d}M {tokens:12,} {tokens / dt / 1e6:7.2f} "
              f"{statistics.median(r[3] for r in rows):9.2f}")
    a, b = (statistics.median(r[0] for r in results[k]) for k in ("1 process", "workers"))
    print(f"workers / 1 process: {b / a:.2f}x the time")


if __name__ == "__main__":
    main()
