"""Pictures as documents, side by side in one run: `scoutlens ingest` on generated screenshots
and scans (benchmarks/imagegen.py: text, boxes and lines, 1280x800 to 3000x4000, PNG/JPEG/TIFF)
against the floor, the `tesseract` command run on the same files.

Arms (each process pinned to the same cores, 2 by default; medians of --runs):
- ingest without OCR (`--no-ocr`) at count/4 and count pictures: images/s and peak RSS, so
  memory can be seen flat in the image count; the same with a vision target (a Llama 4
  tokenizer: each picture is also scaled to its tile canvas and saved as a JPEG);
- ingest with OCR at --ocr-count pictures, and the `tesseract` command on the same files with
  the pipeline's own parallelism there (serial below ingest/pipeline.py PARALLEL_FILES files,
  else --cores processes), each command with OMP_THREAD_LIMIT=1 as the pipeline's OCR runs;
- word recall against the generator's ground truth for the OCR paths: the one ingest uses
  (ingest/ocr.py ocr_rgb), PyMuPDF's OCR (get_textpage_ocr, the path before), and the
  command (from the floor's output).

Peak RSS is the whole process tree's (psutil, sampled every 50 ms, summed, so worker pools
count) and the largest single process's high-water mark (VmHWM). The machine is shared: run
it more than once and read ratios rather than absolute times.

Usage: python benchmarks/bench_images.py [--count 1000] [--ocr-count 40] [--runs 3]
                                         [--cores 2] [--seed 0] [--work DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
import imagegen  # noqa: E402

CORPUS = "bench-images"
MAX_FILE = "64MB"  # a noisy 3000x4000 TIFF scan is over the default 10 MB


# -- measuring -----------------------------------------------------------------------------

def _hwm_kb(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def measure(cmd: list[str], env: dict[str, str], cores: list[int]) -> dict:
    """Wall seconds, peak RSS MB of the process tree, the largest process's VmHWM MB and the
    stdout of one command on `cores`."""
    peak, hwm = [0], [0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=REPO,
                                preexec_fn=lambda: os.sched_setaffinity(0, cores))
        ps = psutil.Process(proc.pid)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                total = 0
                with contextlib.suppress(psutil.Error):
                    for p in [ps, *ps.children(recursive=True)]:
                        with contextlib.suppress(psutil.Error):
                            total += p.memory_info().rss
                            hwm[0] = max(hwm[0], _hwm_kb(p.pid))
                peak[0] = max(peak[0], total)
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
        return {"seconds": dt, "rss_mb": peak[0] >> 20, "hwm_mb": hwm[0] >> 10,
                "stdout": out.read().decode()}


# -- corpora -------------------------------------------------------------------------------

def subset(pool: Path, made: list[imagegen.Made], dest: Path) -> Path:
    """The pictures `made` hard-linked under `dest` (same bytes, no copy), nothing else."""
    if dest.exists():
        return dest
    for m in made:
        (dest / m.file).parent.mkdir(parents=True, exist_ok=True)
        os.link(pool / m.file, dest / m.file)
    return dest


def megapixels(made: list[imagegen.Made]) -> float:
    return sum(m.width * m.height for m in made) / 1e6


# -- scoutlens -----------------------------------------------------------------------------

def ingest(corpus: Path, work: Path, cores: list[int], *, ocr: bool,
           tokenizer: str | None = None) -> dict:
    """`scoutlens ingest` of the folder into a fresh home; its report's statuses checked."""
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "SCOUTLENS_HOME": str(home), "SCOUTLENS_WORKERS": str(len(cores))}
    cmd = [sys.executable, "-m", "app.cli", "ingest", "--corpus", CORPUS, str(corpus), "--json",
           "--max-file-size", MAX_FILE, "--ocr" if ocr else "--no-ocr"]
    if tokenizer:
        cmd += ["--tokenizer", tokenizer]
    got = measure(cmd, env, cores)
    report = json.loads(got.pop("stdout"))
    status = Counter(f["status"] for f in report["files"])
    if status.get("added", 0) != len(list(corpus.rglob("*.*"))):
        raise SystemExit(f"ingest did not add every picture: {dict(status)}")
    got["tokens"] = report["total_tokens"]
    if tokenizer:
        got["jpegs"] = sum(1 for _ in home.rglob("*.jpg"))
    return got


def llama4_ranks(work: Path) -> str:
    """A byte-level rank file shaped like Llama 4's tokenizer.model: a vision target."""
    path = work / "llama4-bytes.model"
    path.write_text("".join(f"{base64.b64encode(bytes([i])).decode()} {i}\n"
                            for i in range(256)))
    return f"llama4:{path}"


# -- the floor: the tesseract command ------------------------------------------------------

def tesseract(files: list[Path], cores: list[int], parallel: int) -> dict:
    """`tesseract FILE stdout` for every file, `parallel` at a time, on `cores`."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def one(path: Path) -> str:
        done = subprocess.run(["tesseract", str(path), "stdout"], env=env, capture_output=True,
                              preexec_fn=lambda: os.sched_setaffinity(0, cores), check=True)
        return done.stdout.decode("utf-8", "replace")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        texts = list(pool.map(one, files))
    return {"seconds": time.perf_counter() - t0, "texts": texts}


# -- recall --------------------------------------------------------------------------------

def recall(made: list[imagegen.Made], texts: list[str]) -> float:
    """The share of the words drawn (counted with repeats) that the texts read."""
    hit = total = 0
    for m, text in zip(made, texts, strict=True):
        want = Counter(m.words)
        hit += sum((want & Counter(re.findall(r"[a-z]+", text.lower()))).values())
        total += sum(want.values())
    return hit / total if total else 0.0


def ocr_paths(pool: Path, made: list[imagegen.Made]) -> dict:
    """Seconds and texts of each picture through ingest's OCR and through PyMuPDF's, in this
    process (pinned to the benchmark's cores), decoding included."""
    from ingest import ocr
    from ingest.pictures import PictureOptions, open_pages

    out: dict = {"api": {"seconds": 0.0, "texts": []}, "pymupdf": {"seconds": 0.0, "texts": []}}
    for m in made:
        data = (pool / m.file).read_bytes()
        for name, read in (("api", ocr.ocr_rgb), ("pymupdf", ocr._read_pymupdf)):
            t0 = time.perf_counter()
            page = next(open_pages(data, PictureOptions()))
            text = read(page.tobytes(), page.width, page.height, "eng")
            out[name]["seconds"] += time.perf_counter() - t0
            out[name]["texts"].append(text)
    return out


# -- the run -------------------------------------------------------------------------------

def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def repeat(runs: int, arm) -> dict:
    got = [arm() for _ in range(runs)]
    row = {k: median(got, k) for k in ("seconds", "rss_mb", "hwm_mb") if k in got[0]}
    row["runs"] = [round(r["seconds"], 2) for r in got]
    row.update({k: v for k, v in got[-1].items() if k not in row and k != "texts"})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1_000, help="pictures in the no-OCR arms")
    ap.add_argument("--ocr-count", type=int, default=40, help="pictures in the OCR arms")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=HERE / ".tools" / "images")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    ap.add_argument("--skip", default="", help="comma-separated arms to leave out: "
                    "plain,vision,ocr,paths")
    args = ap.parse_args()
    from ingest.pipeline import PARALLEL_FILES

    skip = set(filter(None, args.skip.split(",")))
    cores = sorted(os.sched_getaffinity(0))[:args.cores]
    os.sched_setaffinity(0, cores)
    work = args.work.resolve()
    pool = work / f"pool-{args.seed}"
    t0 = time.perf_counter()
    made = imagegen.generate(pool, max(args.count, args.ocr_count), args.seed, len(cores))
    print(f"{len(made)} pictures in {pool} ({time.perf_counter() - t0:.0f} s)", flush=True)
    small = max(1, args.count // 4)
    rows: dict[str, dict] = {}
    for n in (small, args.count):
        corpus = subset(pool, made[:n], work / f"s{args.seed}-n{n}")
        mp = megapixels(made[:n])
        if "plain" not in skip:
            rows[f"ingest --no-ocr, {n}"] = {"n": n, "mp": mp, **repeat(
                args.runs, lambda c=corpus: ingest(c, work, cores, ocr=False))}
            print(rows[f"ingest --no-ocr, {n}"], flush=True)
        if "vision" not in skip:
            spec = llama4_ranks(work)
            rows[f"ingest --no-ocr vision, {n}"] = {"n": n, "mp": mp, **repeat(
                args.runs, lambda c=corpus, s=spec: ingest(c, work, cores, ocr=False,
                                                           tokenizer=s))}
            print(rows[f"ingest --no-ocr vision, {n}"], flush=True)
    n = args.ocr_count
    some = made[:n]
    corpus = subset(pool, some, work / f"s{args.seed}-n{n}")
    serial = n < PARALLEL_FILES  # the pipeline reads in worker processes from that many files
    recalls: dict[str, float] = {}
    if "ocr" not in skip:
        ocr_arms(rows, recalls, some, corpus, work, cores, args.runs, serial)
    if "paths" not in skip:
        paths = ocr_paths(pool, some)
        for name, got in paths.items():
            recalls[f"ocr_rgb via {name}"] = recall(some, got["texts"])
            rows[f"ocr_rgb via {name} (in-process), {n}"] = {
                "n": n, "mp": megapixels(some), "seconds": got["seconds"],
                "floor": f"tesseract command x1, {n}"}
    report(rows, recalls, cores, args)


def ocr_arms(rows: dict, recalls: dict, some: list[imagegen.Made], corpus: Path, work: Path,
             cores: list[int], runs: int, serial: bool) -> None:
    """The OCR arms, each beside the floor with its parallelism, runs interleaved so all see
    the same load: the CLI (the pipeline's own choice of workers), documents.process() in a
    pool of len(cores) processes, the tesseract command one at a time and len(cores) at once."""
    n, files, many = len(some), [corpus / m.file for m in some], len(cores)
    listing = work / f"files-{n}.txt"
    listing.write_text("\n".join(str(f) for f in files))
    pipeline = 1 if serial else many
    quarter = subset(corpus, some[:max(1, n // 4)], work / f"{corpus.name}-q")
    arms = {
        f"tesseract command x1, {n}": lambda: tesseract(files, cores, 1),
        f"tesseract command x{many}, {n}": lambda: tesseract(files, cores, many),
        f"ingest --ocr (CLI, x{pipeline}), {n}": lambda: ingest(corpus, work, cores, ocr=True),
        f"documents.process() x{many}, {n}": lambda: process_pool(listing, cores),
        f"ingest --ocr (CLI), {max(1, n // 4)}":  # its memory beside 4x the pictures
            lambda: ingest(quarter, work, cores, ocr=True),
    }
    floors = [f"tesseract command x{pipeline}, {n}", f"tesseract command x{many}, {n}", None]
    got: dict[str, list[dict]] = {name: [] for name in arms}
    for _ in range(runs):
        for name, arm in arms.items():
            got[name].append(arm())
            print(name, round(got[name][-1]["seconds"], 2), flush=True)
    for (name, results), floor in zip(got.items(), [None, None, *floors], strict=True):
        count = int(name.rsplit(", ", 1)[1])  # the arm's pictures
        rows[name] = {"n": count, "mp": megapixels(some[:count]),
                      **{k: median(results, k) for k in ("seconds", "rss_mb", "hwm_mb")
                         if k in results[0]},
                      "runs": [round(r["seconds"], 2) for r in results], "floor": floor}
        if "texts" in results[-1]:
            recalls[name.rsplit(",", 1)[0]] = recall(some, results[-1]["texts"])


def _process_file(path: str) -> str:
    from ingest.documents import ProcessOptions, process
    from ingest.types import Candidate

    where = Path(path)
    data = where.read_bytes()
    doc = process(Candidate(where.name, where, str(where.parent), len(data)), data,
                  ProcessOptions())
    return "\n".join(seg.text for seg in getattr(doc, "segments", []))


def _process_main(listing: str, workers: int) -> None:
    """In a subprocess: every listed file through documents.process (OCR on) in a pool of
    `workers` forked processes; their segments' text as JSON on stdout."""
    from multiprocessing import get_context

    files = Path(listing).read_text().split("\n")
    with get_context("fork").Pool(workers) as pool:
        texts = pool.map(_process_file, files, chunksize=1)
    json.dump(texts, sys.stdout)


def process_pool(listing: Path, cores: list[int]) -> dict:
    cmd = [sys.executable, __file__, "_process", str(listing), str(len(cores))]
    got = measure(cmd, {**os.environ}, cores)
    got["texts"] = json.loads(got.pop("stdout"))
    return got


def report(rows: dict[str, dict], recalls: dict[str, float], cores: list[int],
           args: argparse.Namespace) -> None:
    print(f"\ncores {cores}, medians of {args.runs} runs; tesseract command xK = K at once, "
          "each with OMP_THREAD_LIMIT=1")
    print(f"{'arm':58} {'n':>5} {'s':>8} {'img/s':>7} {'MP/s':>6} {'RSS MB':>7} {'HWM MB':>7}")
    for name, r in rows.items():
        print(f"{name:58} {r['n']:5} {r['seconds']:8.2f} {r['n'] / r['seconds']:7.2f} "
              f"{r['mp'] / r['seconds']:6.1f} {r.get('rss_mb', ''):>7} {r.get('hwm_mb', ''):>7}")
    for name, r in rows.items():
        floor = rows.get(r.get("floor") or "")
        if floor:
            print(f"{name}: {r['seconds'] / floor['seconds']:.2f}x {r['floor']}")
    for name, value in recalls.items():
        print(f"word recall, {name}: {value:.2%}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "recall": recalls, "cores": cores,
                                         "runs": args.runs}, indent=1, default=str))


if __name__ == "__main__":
    if sys.argv[1:2] == ["_process"]:
        _process_main(sys.argv[2], int(sys.argv[3]))
    else:
        main()
