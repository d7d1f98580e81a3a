"""A corpus of about a billion tokens that any machine with this project can make, ingested.

Real text first: the standard library, the site-packages of each virtual environment named
(text files under 2 MB, as benchmarks/bench_ingest_scale.py takes them) and Debian's
documentation (/usr/share/doc, plain text only). The rest is copies of that text, each with its
identifiers renamed so no file and no segment is a duplicate of another: copy k swaps each
file's identifiers among themselves (a seeded permutation of the file's own names) and gives
one name in ten a new spelling (`name_k3`), so the vocabulary keeps growing, more slowly than
the text, as a real corpus's does.

Then, on the corpus: a cold `scoutlens ingest` (wall time, peak RSS of the process tree from
os.wait4), the index and database size on disk, `ask --dry-run` and `search` over it (index
loaded, nothing generated), and a re-ingest after one file changed.

With --postgresql the database is a private PostgreSQL server (tests/pg.py: loopback, fsync
off), the team setup, and a second replica answers from it too: a second SCOUTLENS_HOME on the
same database, which has no index until its first question builds one from the database's rows
(timed), then both replicas answer the same question at the same time.

Usage: python benchmarks/bench_billion.py [--tokens 1e9] [--work DIR] [--venv DIR ...]
       [--make-only] [--skip-make] [--postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from bench_ingest_scale import TEXT, run  # the same text files, the same timed child

BYTES_PER_TOKEN = 5.5  # o200k on this mix (site-packages: 446 MB, 80.7M tokens)
NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{3,}\b")
QUESTIONS = ("where is the retry limit of the http client decided",
             "DEFAULT_MAX_RETRIES",
             "where is the retry limit decided in the urllib3 package")  # names a place


def real_sources(venvs: list[Path]) -> list[tuple[str, Path]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = [("stdlib", stdlib)]
    for venv in venvs:
        for site in sorted(venv.glob("lib/python*/site-packages")):
            out.append((f"{venv.name.strip('.') or 'venv'}-site", site))
    if Path("/usr/share/doc").is_dir():
        out.append(("debian-doc", Path("/usr/share/doc")))
    return out


def _text_files(src: Path):
    for path in sorted(src.rglob("*")):
        if (path.suffix in TEXT or (path.suffix == "" and "doc" in src.parts)) \
                and "__pycache__" not in path.parts and not path.is_symlink() \
                and path.is_file() and 0 < path.stat().st_size < 2 << 20:
            yield path


def renamed(text: str, k: int) -> str:
    """Copy k of `text`: its names swapped among themselves, one in ten respelled."""
    names = sorted(set(NAME.findall(text)))
    if not names:
        return text + f"\n# copy {k}\n"
    rng = random.Random(f"{k}:{len(text)}:{names[0]}")
    shuffled = names[:]
    rng.shuffle(shuffled)
    mapping = {a: (b + f"_k{k}" if rng.random() < 0.1 else b)
               for a, b in zip(names, shuffled, strict=True)}
    return NAME.sub(lambda m: mapping[m.group(0)], text)


def make(work: Path, target: int, venvs: list[Path]) -> tuple[Path, int]:
    """The corpus folder and its size in bytes (made once; kept between runs)."""
    corpus = work / "corpus"
    done = work / "corpus.json"
    if done.exists():
        return corpus, json.loads(done.read_text())["bytes"]
    shutil.rmtree(corpus, ignore_errors=True)
    total, real = 0, []
    for label, src in real_sources(venvs):
        for path in _text_files(src):
            target_path = corpus / "real" / label / path.relative_to(src)
            target_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target_path)
            real.append(target_path)
            total += target_path.stat().st_size
    print(f"real text: {len(real):,} files, {total / 1e6:,.0f} MB", flush=True)
    k = 0
    while total / BYTES_PER_TOKEN < target:
        k += 1
        for path in real:
            if total / BYTES_PER_TOKEN >= target:
                break
            text = path.read_text(encoding="utf-8", errors="replace")
            dest = corpus / f"copy{k}" / path.relative_to(corpus / "real")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(renamed(text, k), encoding="utf-8")
            total += dest.stat().st_size
        print(f"copy {k}: {total / 1e6:,.0f} MB so far", flush=True)
    done.write_text(json.dumps({"bytes": total, "copies": k, "real_files": len(real)}))
    return corpus, total


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=float, default=1e9)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "scoutlens-1b")
    ap.add_argument("--venv", type=Path, action="append", default=[])
    ap.add_argument("--make-only", action="store_true")
    ap.add_argument("--skip-make", action="store_true")
    ap.add_argument("--postgresql", action="store_true")
    args = ap.parse_args()
    venvs = args.venv or [Path(sys.prefix)]
    corpus, size = make(args.work, int(args.tokens), venvs)
    print(f"corpus: {corpus} ({size / 1e9:.2f} GB)", flush=True)
    if args.make_only:
        return
    pg = None
    home = args.work / ("home-pg" if args.postgresql else "home")
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "SCOUTLENS_HOME": str(home)}
    if args.postgresql:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from pg import PgServer

        pg = PgServer().start()
        env["SCOUTLENS_DATABASE_URL"] = pg.create_db("big")
    try:
        report = measure(corpus, size, home, env)
        if pg is not None:
            report.update(replicas(home, env))
            print(json.dumps(report), flush=True)
        report.update(reingest(corpus, env))
    finally:
        if pg is not None:
            pg.stop()
    print(json.dumps(report, indent=1))


def measure(corpus: Path, size: int, home: Path, env: dict[str, str]) -> dict:
    exe = [sys.executable, "-m", "app.cli"]
    report: dict = {"cpus": os.cpu_count(), "corpus_bytes": size,
                    "database": "postgresql" if "SCOUTLENS_DATABASE_URL" in env else "sqlite"}
    dt, rss, out = run([*exe, "ingest", "big", str(corpus), "--json"], env)
    report.update(ingest_s=round(dt, 1), ingest_peak_rss_mb=rss,
                  tokens=json.loads(out)["total_tokens"])
    print(json.dumps(report), flush=True)
    report["index_mb"] = round(du(home / "indexes") / 1e6)
    report["database_mb"] = database_mb(home, env)
    # once untimed: the first question converts the bundled model into this fresh home
    run([*exe, "ask", "big", QUESTIONS[0], "--dry-run", "--json"], env)
    for name, cmd in (("dry_run", ["ask", "big", QUESTIONS[0], "--dry-run", "--json"]),
                      ("dry_run_named", ["ask", "big", QUESTIONS[2], "--dry-run", "--json"]),
                      ("search", ["search", "big", QUESTIONS[1], "--json"])):
        times, peaks = [], []
        for _ in range(3):
            dt, rss, _ = run([*exe, *cmd], env)
            times.append(dt)
            peaks.append(rss)
        report[f"{name}_s"] = round(sorted(times)[1], 2)
        report[f"{name}_peak_rss_mb"] = max(peaks)
    print(json.dumps(report), flush=True)
    return report


def reingest(corpus: Path, env: dict[str, str]) -> dict:
    changed = next(corpus.rglob("*.py"))
    changed.write_text(changed.read_text() + "\n# one change\n")
    dt, rss, _ = run([sys.executable, "-m", "app.cli", "ingest", "big", str(corpus), "--json"],
                     env)
    return {"reingest_s": round(dt, 1), "reingest_peak_rss_mb": rss}


def database_mb(home: Path, env: dict[str, str]) -> int:
    url = env.get("SCOUTLENS_DATABASE_URL")
    if url is None:
        return round(sum(p.stat().st_size for p in home.glob("scoutlens.db*")) / 1e6)
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return round(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
                     / 1e6)


def replicas(home: Path, env: dict[str, str]) -> dict:
    """A second replica on the same database: its first question builds its index from the
    database's rows; then both answer a dry run at once (3 rounds, medians)."""
    exe = [sys.executable, "-m", "app.cli"]
    second = home.with_name(home.name + "-replica")
    shutil.rmtree(second, ignore_errors=True)
    env2 = {**env, "SCOUTLENS_HOME": str(second)}
    dt, rss, _ = run([*exe, "search", "big", QUESTIONS[1], "--json"], env2)
    out: dict = {"replica_first_search_s": round(dt, 1), "replica_first_search_peak_rss_mb": rss}
    run([*exe, "ask", "big", QUESTIONS[0], "--dry-run", "--json"], env2)  # converts the model
    both: dict[str, list[float]] = {"first": [], "second": []}
    for _ in range(3):
        cmd = [*exe, "ask", "big", QUESTIONS[0], "--dry-run", "--json"]
        t0 = time.perf_counter()
        procs = {k: subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                 for k, e in (("first", env), ("second", env2))}
        left = dict(procs)
        while left:
            pid, status = os.wait()
            for k, p in list(left.items()):
                if p.pid == pid:
                    if os.waitstatus_to_exitcode(status) != 0:
                        raise SystemExit(f"replica {k}: dry run failed")
                    p.returncode = 0
                    both[k].append(time.perf_counter() - t0)
                    del left[k]
    out.update({f"replicas_at_once_dry_run_{k}_s": round(statistics.median(v), 2)
                for k, v in both.items()})
    return out


if __name__ == "__main__":
    main()
