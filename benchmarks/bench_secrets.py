"""Secret scanning cost at ingest: scoutlens's anchored scan (ingest.secrets.scan) against the
plain way of running detect-secrets' plugins, every plugin on every line, side by side on the
same files of the standard library; then the anchored scan over the whole standard library.

    python benchmarks/bench_secrets.py [--files 300] [--runs 3]

Prints JSON: seconds (median of runs) for both on the sample, the ratio, findings of each (they
must agree line for line), and the whole-library time and findings (false positives: the
library holds no real secrets).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest import secrets  # noqa: E402


def _stdlib_files() -> list[Path]:
    root = Path(os.__file__).parent
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)


def _plain(texts: list[tuple[str, str]]) -> set[tuple[str, int]]:
    """Every plugin on every line (what a scan without anchors does)."""
    found = set()
    plugins = [(p, k) for p, k, _ in secrets._plugins() if k != secrets.PRIVATE_KEY]
    for name, text in texts:
        for n, line in enumerate(text.split("\n"), start=1):
            for plugin, _ in plugins:
                if secrets._spans(plugin, line, name):
                    found.add((name, n))
    return found


def _anchored(texts: list[tuple[str, str]]) -> set[tuple[str, int]]:
    return {(name, f.line) for name, text in texts for f in secrets.scan(text, name).findings
            if f.kind != secrets.PRIVATE_KEY}


def _timed(fn, texts, runs: int) -> tuple[float, set]:
    times, result = [], set()
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn(texts)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    files = _stdlib_files()
    texts = [(p.name, p.read_text("utf-8", "replace")) for p in files]
    sample = texts[:: max(1, len(texts) // a.files)][: a.files]
    plain_s, plain = _timed(_plain, sample, a.runs)
    anchored_s, anchored = _timed(_anchored, sample, a.runs)
    whole_s, whole = _timed(_anchored, texts, a.runs)
    mb = sum(len(t) for _, t in texts) / 1e6
    print(json.dumps({
        "sample": {"files": len(sample), "mb": round(sum(len(t) for _, t in sample) / 1e6, 2),
                   "plain_s": round(plain_s, 2), "anchored_s": round(anchored_s, 3),
                   "speedup": round(plain_s / anchored_s, 1),
                   "plain_findings": len(plain), "anchored_findings": len(anchored),
                   "same_lines": plain <= anchored},
        "stdlib": {"files": len(texts), "mb": round(mb, 1), "anchored_s": round(whole_s, 2),
                   "mb_per_s": round(mb / whole_s, 1), "findings": len(whole)},
    }, indent=1))


if __name__ == "__main__":
    main()
