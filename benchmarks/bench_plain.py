"""Retrieval for questions in plain words: does the one line that answers a developer's question
reach the context `ask` would send, when the question names no identifier from that line?

The questions (`benchmarks/questions/plain-*.json`) were written by hand from the real text of
this project's site-packages and of the standard library, before any ranking was tuned, each with
the one line that answers it ("How long does uvicorn keep an idle keep-alive connection open by
default?" -> `uvicorn/config.py`, the `timeout_keep_alive` default). A line is found again by its
text near its recorded number, so a package's newer release moves it without breaking the set.
Every fourth question of each file is the development set (the only misses read while tuning);
the rest are held out, and reported apart.

Each question is answered with `ask --dry-run`'s context on the embedded model's 8K window (its
tokenizer only, nothing generated), once per arm, all in one run: `bm25` (BM25 alone), `fused`
(the default signals). Scored by whether the context holds the line (its file, with a span
covering it). Reports recall per corpus and split, side by side, with the median context time.

Usage: python benchmarks/bench_plain.py --home DIR [--site-root DIR] [--arms bm25,fused]
       [--json FILE]  (corpora `site` and `stdlib` must be ingested in DIR's home)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: None: the default signals of the code under test; `before`: the fusion this issue started
#: from (symbols, paths, BM25), on today's index
ARMS = {"bm25": ("bm25",), "before": ("symbol", "path", "bm25"), "fused": None}


@dataclass(frozen=True)
class Question:
    corpus: str
    package: str
    text: str
    path: str
    line: int
    places: tuple[tuple[str, int], ...]  # (path, line) that answer it, the first the main one
    dev: bool


def load_questions(folder: Path = HERE / "questions") -> list[dict]:
    out = []
    for file in sorted(folder.glob("plain-*.json")):
        for i, q in enumerate(json.loads(file.read_text())):
            out.append({**q, "dev": i % 4 == 0, "file": file.name})
    return out


def locate(root: Path, path: str, line: int, text: str) -> int | None:
    """The line number of `text` in `root/path` nearest `line` (None: the line is gone)."""
    try:
        lines = (root / path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    found = [i + 1 for i, s in enumerate(lines) if s.strip() == text.strip()]
    return min(found, key=lambda n: abs(n - line)) if found else None


def resolve(raw: list[dict], roots: dict[str, Path]) -> tuple[list[Question], list[str]]:
    out, stale = [], []
    for q in raw:
        root = roots[q["corpus"]]
        n = locate(root, q["path"], q["line"], q["text"])
        if n is None:
            stale.append(f"{q['path']}:{q['line']} {q['text'][:50]!r}")
            continue
        also = tuple((p, int(ln)) for p, ln in q.get("also", []))
        out.append(Question(q["corpus"], q["package"], q["question"], q["path"], n,
                            ((q["path"], n), *also), q["dev"]))
    return out, stale


def hit(ctx_json: dict, q: Question) -> bool:
    """The context holds one of the question's places: its file, with a span covering it."""
    for src in ctx_json["sources"]:
        for path, line in q.places:
            if src["path"] != path:
                continue
            lines = src.get("lines")
            if lines is None:
                return True
            a, _, b = str(lines).partition("-")
            if int(a) <= line <= int(b or a):
                return True
    return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--site-root", type=Path, default=Path("/work/bench/site"))
    ap.add_argument("--stdlib-root", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    ap.add_argument("--arms", default="bm25,fused")
    ap.add_argument("--only", choices=("dev", "held"), help="one split only")
    ap.add_argument("--corpora", default="site,stdlib")
    ap.add_argument("--json", type=Path, help="write the per-question results here")
    args = ap.parse_args()
    os.environ["SCOUTLENS_HOME"] = str(args.home)
    sys.path.insert(0, str(HERE.parent))
    from app.services.backends import make_backend
    from app.services.context import build_context
    from app.services.snapshot import open_snapshot

    questions, stale = resolve(load_questions(), {"site": args.site_root,
                                                  "stdlib": args.stdlib_root})
    questions = [q for q in questions if q.corpus in args.corpora.split(",")]
    if args.only:
        questions = [q for q in questions if q.dev == (args.only == "dev")]
    backend = make_backend("embedded", weights=False)  # the tokenizer and window only
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    rows = []
    for q in questions:
        row = {"corpus": q.corpus, "package": q.package, "question": q.text, "path": q.path,
               "line": q.line, "dev": q.dev}
        for arm in arms:
            kwargs = {} if ARMS.get(arm) is None else {"signals": ARMS[arm]}
            t0 = time.perf_counter()
            with open_snapshot(q.corpus) as snap:
                ctx = build_context(snap, q.text, "retrieval", backend, 384, **kwargs)
            row[f"{arm}_s"] = time.perf_counter() - t0
            js = ctx.to_json()
            row[arm] = hit(js, q)
            row[f"{arm}_unsure"] = bool(js.get("unsure"))
            row[f"{arm}_lead"] = js.get("lead", 0.0)
            row[f"{arm}_top"] = [h["path"] for h in js["hits"][:3]]
            row[f"{arm}_scope"] = js.get("scope", [])
        rows.append(row)
        print(f"{'ok' if row[arms[-1]] else '--'} {q.corpus:6} {q.text}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(f"{len(rows)} questions ({len(stale)} stale: line not found), "
          f"{len({(r['corpus'], r['package']) for r in rows})} packages, window {backend.window:,}")
    print(f"{'corpus':8} {'split':5} {'n':>3} " + " ".join(f"{a:>7}" for a in arms))
    for corpus in ("site", "stdlib"):
        for split in ("dev", "held", "all"):
            sel = [r for r in rows if r["corpus"] == corpus
                   and (split == "all" or r["dev"] == (split == "dev"))]
            if sel:
                print(f"{corpus:8} {split:5} {len(sel):3d} " + " ".join(
                    f"{sum(r[a] for r in sel) / len(sel):7.0%}" for a in arms))
    print("median context time: " + ", ".join(
        f"{a} {statistics.median(r[f'{a}_s'] for r in rows):.2f} s" for a in arms))
    last = arms[-1]
    flagged = [r for r in rows if r[f"{last}_unsure"]]
    if flagged:
        print(f"'{last}' said unsure on {len(flagged)}: {sum(not r[last] for r in flagged)} of "
              f"them misses; misses it did not flag: "
              f"{sum(not r[last] and not r[f'{last}_unsure'] for r in rows)}")
    for s in stale:
        print(f"  stale: {s}")
    for r in rows:
        if r["dev"] and not r[last]:
            print(f"  missed (dev): {r['question']}  -> {r['path']}:{r['line']}  "
                  f"top: {r[f'{last}_top']} scope: {r.get(f'{last}_scope')}")


if __name__ == "__main__":
    main()
