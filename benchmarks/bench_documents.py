"""Analyst documents, side by side in one run: `scoutlens ingest` against Microsoft's markitdown
converting the same generated files (Word, PowerPoint, Excel, saved web pages, mails with an
attachment, EPUBs; benchmarks/docgen.py makes them with the libraries themselves), both on the
same cores (2 by default: the processes are pinned to them, and each tool gets 2 workers).

Reports wall time, files/s, MB/s and peak RSS of each tool's whole process tree (psutil, sampled
every 50 ms; summed over the tree, so worker pools count), at two corpus sizes (250 and 1,000
files by default: scoutlens's peak should not grow with the count), then recall: each planted
needle's question through `scoutlens ask --dry-run --json`, a hit when the needle's place and
answer are in the context built and its file is among the sources. markitdown has no
retrieval; its column says whether its text of the needle's file holds the answer at all.

markitdown lives in its own virtual environment (benchmarks/.venv-markitdown, made on the first
run from PyPI; nothing of it is in the project's locks). Its converters run in a pool of 2
processes, one file at a time, the Python API `MarkItDown().convert(path)`.

Usage: python benchmarks/bench_documents.py [--files 1000] [--small 250] [--runs 1]
                                           [--work DIR] [--cores 2] [--no-recall]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docgen  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MID_VENV = HERE / ".venv-markitdown"
#: lxml 6 makes markitdown 0.1.9's docx pre-processing (BeautifulSoup's "xml" parser) drop the
#: namespaces, so every .docx fails with "Could not find the body element": pinned below 6
MID_SPEC = ("markitdown[docx,pptx,xlsx,outlook]==0.1.9", "lxml<6")
CORPUS = "bench-docs"

#: runs inside markitdown's venv: argv = files list, needles json, workers
MID_RUNNER = r'''
import json, sys
from multiprocessing import get_context

_md = None
_needles = {}

def init(needles):
    global _md, _needles
    from markitdown import MarkItDown
    _md = MarkItDown()
    _needles = needles

def convert(path):
    try:
        text = _md.convert(path).text_content or ""
    except Exception as exc:
        return path, type(exc).__name__, 0, None
    needle = _needles.get(path)
    found = None
    if needle is not None:
        found = needle["place"] in text and any(a in text for a in needle["answers"])
    return path, "", len(text), found

if __name__ == "__main__":
    files = open(sys.argv[1]).read().split("\n")
    needles = json.load(open(sys.argv[2]))
    with get_context("fork").Pool(int(sys.argv[3]), init, (needles,)) as pool:
        rows = list(pool.imap_unordered(convert, files, chunksize=1))
    json.dump(rows, sys.stdout)
'''


# -- measuring -----------------------------------------------------------------------------

def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def measure(cmd: list[str], env: dict[str, str], cores: list[int]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS MB of the process tree, stdout) of one command on `cores`."""
    peak = [0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=REPO,
                                preexec_fn=lambda: os.sched_setaffinity(0, cores))
        ps = psutil.Process(proc.pid)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                with contextlib.suppress(psutil.Error):
                    peak[0] = max(peak[0], tree_rss(ps))
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        dt = time.perf_counter() - t0
        done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        if code != 0:
            raise SystemExit(f"failed ({code}): {' '.join(cmd)}\n{err.read().decode()[-3000:]}")
        return dt, peak[0] >> 20, out.read().decode()


def pick_cores(count: int) -> list[int]:
    have = sorted(os.sched_getaffinity(0))
    return have[:count]


# -- corpora -------------------------------------------------------------------------------

def subset(corpus: Path, dest: Path, share: float) -> Path:
    """The first `share` of each kind's files, hard-linked (same bytes, no copy)."""
    if dest.exists():
        return dest
    for folder in sorted(p for p in corpus.iterdir() if p.is_dir()):
        files = sorted(folder.iterdir())
        (dest / folder.name).mkdir(parents=True, exist_ok=True)
        for f in files[:max(1, round(len(files) * share))]:
            os.link(f, dest / folder.name / f.name)
    return dest


def files_of(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.is_file())


def corpus_mb(files: list[Path]) -> float:
    return sum(f.stat().st_size for f in files) / 1e6


# -- markitdown ----------------------------------------------------------------------------

def markitdown_python() -> Path:
    """The venv's python, made on the first run (from PyPI: the benchmark's reference tool)."""
    python = MID_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MID_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *MID_SPEC], check=True)
    return python


def run_markitdown(corpus: Path, needles: list[docgen.Needle], work: Path, cores: list[int],
                   workers: int) -> dict:
    files = files_of(corpus)
    listing = work / f"mid-files-{corpus.name}.txt"
    listing.write_text("\n".join(str(f) for f in files))
    by_path = {str(corpus / n.file): {"place": n.place, "answers": list(n.answers)}
               for n in needles if (corpus / n.file).exists()}
    needle_file = work / f"mid-needles-{corpus.name}.json"
    needle_file.write_text(json.dumps(by_path))
    runner = work / "mid_runner.py"
    runner.write_text(MID_RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    dt, rss, out = measure([str(markitdown_python()), str(runner), str(listing), str(needle_file),
                            str(workers)], env, cores)
    rows = json.loads(out)
    failed = Counter(Path(p).suffix[1:] + ":" + err for p, err, _, _ in rows if err)
    found = {os.path.relpath(p, corpus): f for p, _, _, f in rows if f is not None}
    return {"seconds": dt, "rss": rss, "failed": dict(failed), "found": found,
            "chars": sum(r[2] for r in rows)}


# -- scoutlens -----------------------------------------------------------------------------

def scoutlens_env(home: Path, workers: int) -> dict[str, str]:
    return {**os.environ, "SCOUTLENS_HOME": str(home), "SCOUTLENS_WORKERS": str(workers),
            "OMP_NUM_THREADS": "1"}


def run_scoutlens(corpus: Path, home: Path, cores: list[int], workers: int) -> dict:
    shutil.rmtree(home, ignore_errors=True)
    cmd = [sys.executable, "-m", "app.cli", "ingest", "--corpus", CORPUS, str(corpus), "--json"]
    dt, rss, out = measure(cmd, scoutlens_env(home, workers), cores)
    report = json.loads(out)
    status = Counter((Path(f["path"]).suffix[1:], f["status"], f.get("reason", ""))
                     for f in report["files"])
    return {"seconds": dt, "rss": rss, "tokens": report["total_tokens"],
            "status": {f"{k}:{s}{':' + r if r else ''}": n for (k, s, r), n in status.items()}}


def recall(needles: list[docgen.Needle], home: Path, cores: list[int]) -> list[dict]:
    """Each needle's question through `ask --dry-run --json`: is its place and answer in the
    context built, and which source (with its locator) brought it."""
    rows = []
    env = scoutlens_env(home, 1)
    for n in needles:
        cmd = [sys.executable, "-m", "app.cli", "ask", CORPUS, n.question, "--dry-run", "--json"]
        dt, _, out = measure(cmd, env, cores)
        dry = json.loads(out)
        context = dry.get("context", "")
        cited = [s for s in dry.get("sources", []) if str(s.get("path", "")).startswith(n.file)]
        rows.append({"kind": n.kind, "where": n.where, "question": n.question,
                     "hit": n.found_in(context) and bool(cited), "file_in_sources": bool(cited),
                     "mode": dry.get("mode"), "seconds": dt,
                     "cited": {k: v for k, v in cited[0].items() if k != "tokens"}
                     if cited else None})
    return rows


# -- report --------------------------------------------------------------------------------

def line(label: str, files: int, mb: float, seconds: float, rss: int) -> str:
    return (f"{label:24} {files:6d} {mb:8.1f} {seconds:8.1f} {files / seconds:8.1f} "
            f"{mb / seconds:7.2f} {rss:8d}M")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1_000)
    ap.add_argument("--small", type=int, default=250, help="the smaller corpus (RSS vs count)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--needles", type=int, default=8, help="needles per kind")
    ap.add_argument("--runs", type=int, default=1, help="median of this many runs")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "scoutlens-docs")
    ap.add_argument("--no-recall", action="store_true")
    ap.add_argument("--no-markitdown", action="store_true")
    ap.add_argument("--no-scoutlens", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    cores = pick_cores(args.cores)
    workers = len(cores)
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    needles = docgen.generate(args.work / "corpus", args.files, args.seed, args.needles,
                              processes=workers)
    print(f"generated/kept {args.files} files in {time.perf_counter() - t0:.0f} s")
    big = args.work / "corpus"
    sizes = {args.files: big}
    if args.small and args.small < args.files:
        sizes = {args.small: subset(big, args.work / f"corpus-{args.small}",
                                    args.small / args.files), **sizes}
    results: dict = {"cores": cores, "runs": args.runs, "sizes": {}}
    for count, corpus in sizes.items():
        files = files_of(corpus)
        entry = {"files": len(files), "mb": corpus_mb(files),
                 "kinds": dict(Counter(f.suffix[1:] for f in files)), "scoutlens": [],
                 "markitdown": []}
        for _ in range(args.runs):  # alternate the tools, so drift on the machine hits both
            if not args.no_scoutlens:
                entry["scoutlens"].append(run_scoutlens(corpus, args.work / "home", cores,
                                                        workers))
                progress("scoutlens", count, entry["scoutlens"][-1])
            if not args.no_markitdown:
                entry["markitdown"].append(run_markitdown(corpus, needles, args.work, cores,
                                                          workers))
                progress("markitdown", count, entry["markitdown"][-1])
        results["sizes"][count] = entry
    if not args.no_recall and not args.no_scoutlens:
        results["recall"] = recall(needles, args.work / "home", cores)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


def progress(tool: str, count: int, run: dict) -> None:
    print(f"  {tool} {count} files: {run['seconds']:.1f} s, peak RSS {run['rss']} MB",
          flush=True)


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(results: dict) -> None:
    print(f"cores {results['cores']}, median of {results['runs']} run(s); "
          "peak RSS = the whole process tree")
    print(f"{'tool':24} {'files':>6} {'MB':>8} {'seconds':>8} {'files/s':>8} {'MB/s':>7} "
          f"{'peak RSS':>9}")
    for count, e in results["sizes"].items():
        speeds = {}
        for tool in ("scoutlens", "markitdown"):
            if e[tool]:
                dt = median(e[tool], "seconds")
                rss = max(r["rss"] for r in e[tool])
                speeds[tool] = dt
                print(line(f"{tool} ({count})", e["files"], e["mb"], dt, rss))
        if len(speeds) == 2:
            ratio = speeds["markitdown"] / speeds["scoutlens"]
            print(f"{'':24} scoutlens throughput = {ratio:.2f}x markitdown's")
        for tool in ("scoutlens", "markitdown"):
            if e[tool]:
                last = e[tool][-1]
                problems = {k: v for k, v in last.get("status", last.get("failed", {})).items()
                            if ":added" not in k}
                print(f"  {tool} files not read: {problems or 'none'}")
    if "recall" in results:
        found = results["sizes"][max(results["sizes"])]["markitdown"]
        mid = found[-1]["found"] if found else {}
        per: dict[str, list[dict]] = defaultdict(list)
        for r in results["recall"]:
            per[r["kind"]].append(r)
        print(f"\n{'kind':6} {'needle in':18} {'ask --dry-run hits':>18} {'file cited':>10} "
              f"{'markitdown text holds it':>25}  example citation")
        for kind, rows in per.items():
            hits = sum(r["hit"] for r in rows)
            cited = sum(r["file_in_sources"] for r in rows)
            files = [n for n in mid if n.startswith(kind + "/")]
            example = next((r["cited"] for r in rows if r["hit"] and r["cited"]), None)
            print(f"{kind:6} {rows[0]['where']:18} {hits:>9}/{len(rows):<8} {cited:>6}/"
                  f"{len(rows):<3} {sum(mid[n] for n in files):>14}/{len(files):<10}  {example}")
        total = results["recall"]
        print(f"all    {'':18} {sum(r['hit'] for r in total):>9}/{len(total)}  (mode "
              f"{Counter(r['mode'] for r in total).most_common(1)[0][0]}, "
              f"{statistics.median(r['seconds'] for r in total):.1f} s a question)")


if __name__ == "__main__":
    main()
