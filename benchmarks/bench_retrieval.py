"""Retrieval recall: does the place that answers a question reach the context `ask` would send?

Questions are written from the corpus's real text (nothing planted), each with one known place:
  - `def`: "In which file is the function NAME defined?" for a function or class whose name is
    defined exactly once in the corpus;
  - `const`: "What is the value of NAME in the MODULE module?" for a module-level constant
    assigned exactly once in the corpus;
  - `doc`: "Which function does this: <the first sentence of its docstring>?" (natural
    language, no identifier to match).
Each question is answered with `ask --dry-run` on the embedded model's 8K window (the model's
tokenizer only, nothing generated), once with every signal fused and once with BM25 alone (the
baseline), and scored by whether the context holds the place (its file, a span covering the
line). Reports recall per kind, side by side, and the median dry-run time.

Usage: python benchmarks/bench_retrieval.py [--corpus DIR] [--name NAME] [--questions 60]
       [--home DIR]  (default corpus: this Python's standard library, ~10M tokens)
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import statistics
import sys
import sysconfig
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

CONST = re.compile(r"^([A-Z][A-Z0-9_]{5,})\s*=\s*(.+)$", re.M)


@dataclass(frozen=True)
class Question:
    kind: str
    text: str
    path: str  # relative to the corpus root, as stored
    line: int


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py")
                  if "site-packages" not in p.parts and "__pycache__" not in p.parts)


def write_questions(root: Path, stored: set[str], n: int, seed: int = 7) -> list[Question]:
    """Questions from the real text of `root`'s Python files (those stored in the corpus)."""
    defs: dict[str, list[tuple[str, int]]] = {}
    consts: dict[str, list[tuple[str, int, str]]] = {}
    docs: list[tuple[str, int, str]] = []
    for path in _files(root):
        rel = path.relative_to(root).as_posix()
        if rel not in stored:
            continue
        try:
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defs.setdefault(node.name, []).append((rel, node.lineno))
                doc = ast.get_docstring(node)
                if doc and not node.name.startswith("_"):
                    first = " ".join(doc.split(".")[0].split())
                    if 8 <= len(first.split()) <= 20 and first.isascii():
                        docs.append((rel, node.lineno, first))
        for m in CONST.finditer(text):
            consts.setdefault(m.group(1), []).append(
                (rel, text.count("\n", 0, m.start()) + 1, m.group(2)))
    rng = random.Random(seed)
    once = sorted(k for k, v in defs.items() if len(v) == 1 and len(k) >= 8
                  and ("_" in k.strip("_") or re.search(r"[a-z][A-Z]", k)))
    const_once = sorted(k for k, v in consts.items() if len(v) == 1 and len(v[0][2]) < 60)
    phrase_count = Counter(d[2].lower() for d in docs)
    docs = sorted(d for d in docs if phrase_count[d[2].lower()] == 1)
    per = max(1, n // 3)
    out = [Question("def", f"In which file is the function {k} defined?", *defs[k][0])
           for k in rng.sample(once, min(per, len(once)))]
    for k in rng.sample(const_once, min(per, len(const_once))):
        rel, line, _ = consts[k][0]
        module = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        out.append(Question("const", f"What is the value of {k} in the {module} module?", rel,
                            line))
    for rel, line, first in rng.sample(docs, min(n - len(out), len(docs))):
        out.append(Question("doc", f"Which function does this: {first}?", rel, line))
    return out


def hit(ctx, q: Question) -> bool:
    """The context holds the question's place: its file, with a span covering the line."""
    for src in ctx.to_json()["sources"]:
        if src["path"] != q.path:
            continue
        lines = src.get("lines")
        if lines is None:
            return True
        a, _, b = str(lines).partition("-")
        if int(a) <= q.line <= int(b or a):
            return True
    return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    ap.add_argument("--name", default="stdlib")
    ap.add_argument("--questions", type=int, default=60)
    ap.add_argument("--home", type=Path, default=Path.home() / ".cache" / "scoutlens-bench")
    ap.add_argument("--json", type=Path, help="write the per-question results here")
    args = ap.parse_args()
    os.environ["SCOUTLENS_HOME"] = str(args.home)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from app.services.backends import make_backend
    from app.services.catalog import corpus_exists
    from app.services.context import build_context
    from app.services.ingesting import ingest
    from app.services.snapshot import load_documents, open_snapshot

    if not corpus_exists(args.name):
        t0 = time.perf_counter()
        ingest([args.corpus], args.name)
        print(f"ingested {args.corpus} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    _, docs = load_documents(args.name)
    stored = {d.path for d in docs}
    tokens = sum(d.tokens for d in docs)
    root = args.corpus if (args.corpus / next(iter(stored))).exists() else args.corpus.parent
    questions = write_questions(root, stored, args.questions)
    backend = make_backend("embedded", weights=False)  # the tokenizer and window only
    rows = []
    for q in questions:
        row = {"kind": q.kind, "question": q.text, "path": q.path, "line": q.line}
        for label, signals in (("fused", None), ("bm25", ("bm25",))):
            t0 = time.perf_counter()
            kwargs = {"signals": signals} if signals else {}  # None: the default signals
            with open_snapshot(args.name) as snap:
                ctx = build_context(snap, q.text, "retrieval", backend, 384, **kwargs)
            row[f"{label}_s"] = time.perf_counter() - t0
            row[label] = hit(ctx, q)
        rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(f"{args.name}: {len(docs):,} files, {tokens:,} tokens; {len(rows)} questions, "
          f"window {backend.window:,}")
    print(f"{'kind':8} {'n':>3} {'fused':>7} {'bm25':>7}")
    for kind in ("def", "const", "doc", "all"):
        sel = [r for r in rows if kind == "all" or r["kind"] == kind]
        if sel:
            print(f"{kind:8} {len(sel):3d} {sum(r['fused'] for r in sel) / len(sel):7.0%} "
                  f"{sum(r['bm25'] for r in sel) / len(sel):7.0%}")
    print(f"median dry-run context: fused {statistics.median(r['fused_s'] for r in rows):.2f} s,"
          f" bm25 {statistics.median(r['bm25_s'] for r in rows):.2f} s")
    for r in rows:
        if not r["fused"]:
            print(f"  missed ({r['kind']}): {r['question']}  -> {r['path']}:{r['line']}")


if __name__ == "__main__":
    main()
