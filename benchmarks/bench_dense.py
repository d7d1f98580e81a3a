"""What dense retrieval adds: recall of the place that answers a question, BM25 alone vs every
signal fused without sentence vectors vs fused with them, in one run, side by side.

The corpus is real and small enough to embed in a few minutes on two cores: docstring-heavy
standard-library packages (email, http, urllib, logging, json, concurrent and a dozen modules)
plus the two PDF manuals Debian ships (libtasn1, the shared-mime-info spec). Questions:
  - `nl-code`, `nl-pdf`: written by hand from the real text, in natural language that
    paraphrases it (no identifiers), each with one known place (a definition, a PDF page);
  - `doc`, `def`, `const`: bench_retrieval.py's generated questions (a docstring's first
    sentence verbatim, a rare definition, a constant's value), to see dense does no harm there.
Each is scored as bench_retrieval.py scores it: is the place in the context `ask --dry-run` would
send on the embedded model's 8K window. Reports recall per kind, the embedding time (per 1M
corpus tokens and per 1M word pieces), the index's size with and without vectors, and the
median latency of a search and of a dry-run context with and without dense.

Usage: python benchmarks/bench_dense.py [--work DIR] [--json FILE] [--auto 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

STDLIB = ["email", "http", "urllib", "logging", "json", "concurrent", "argparse.py",
          "textwrap.py", "difflib.py", "shutil.py", "tarfile.py", "zipfile.py", "csv.py",
          "calendar.py", "gzip.py", "heapq.py", "fractions.py", "statistics.py"]
PDFS = ["/usr/share/doc/libtasn1-doc/libtasn1.pdf",
        "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf"]

#: (question, file, text that marks the place: a definition's line in code, a page in a PDF)
NL_CODE = [
    ("How can I split a sample into equal-probability intervals, for example to find the "
     "quartile cut points?", "statistics.py", "def quantiles("),
    ("How do I estimate the middle value of data grouped into continuous class intervals?",
     "statistics.py", "def median_grouped("),
    ("Which handler writes formatted log records to a file on disk?", "logging/__init__.py",
     "class FileHandler("),
    ("Which logging destination starts a new file once the current one grows too large?",
     "logging/handlers.py", "class RotatingFileHandler("),
    ("Where does the network log sender retry connecting with an exponentially growing "
     "delay?", "logging/handlers.py", "def createSocket("),
    ("How do I make the logging system create loggers of my own subclass?",
     "logging/__init__.py", "def setLoggerClass("),
    ("How can I attach contextual information to every message a logger emits?",
     "logging/__init__.py", "class LoggerAdapter("),
    ("How do I unpack every member of a zip archive into the current working directory?",
     "zipfile.py", "def extractall("),
    ("How do I rearrange a list in place so the smallest item is always first, in linear "
     "time?", "heapq.py", "def heapify("),
    ("How do I add an item to a priority queue while keeping its ordering property?",
     "heapq.py", "def heappush("),
    ("How do I turn a floating point number into an exact ratio of two integers?",
     "fractions.py", "def from_float("),
    ("How much free and total space is there on the drive holding a given folder?",
     "shutil.py", "def disk_usage("),
    ("How can I skip files matching glob patterns when copying a whole directory tree?",
     "shutil.py", "def ignore_patterns("),
    ("What copies a file's bytes to another path in the most efficient way, without its "
     "permissions or timestamps?", "shutil.py", "def copyfile("),
    ("How can I tell whether an email consists of several parts?", "email/message.py",
     "def is_multipart("),
    ("Which part of an email should be shown to the reader as its main text?",
     "email/message.py", "def get_body("),
    ("How do I loop over the attached files of an email, skipping the main text?",
     "email/message.py", "def iter_attachments("),
    ("How do I produce a timestamp string in the format mail headers use?", "email/utils.py",
     "def formatdate("),
    ("How do I register a new character encoding's properties for mail messages globally?",
     "email/charset.py", "def add_charset("),
    ("How do I decode a mail header written in quoted printable Q encoding?",
     "email/quoprimime.py", "def header_decode("),
    ("Which problem is recorded when the first header line of a message is indented like a "
     "continuation?", "email/errors.py", "class FirstHeaderLineIsContinuationDefect("),
    ("How do I get a month laid out as weeks, each a list of seven dates?", "calendar.py",
     "def monthdatescalendar("),
    ("How does a pending asynchronous result get marked as failed with an error?",
     "concurrent/futures/_base.py", "def set_exception("),
    ("How do I reflow a paragraph so no line is longer than a given width, getting back one "
     "string?", "textwrap.py", "def fill("),
    ("What finds the longest contiguous run two sequences have in common?", "difflib.py",
     "def find_longest_match("),
    ("How can I check whether a file is an archive the tape archive module can read?",
     "tarfile.py", "def is_tarfile("),
    ("How do I compress a bytes object in memory in one call?", "gzip.py", "def compress("),
    ("How can I guess the delimiter and quoting of a comma-separated file from a sample?",
     "csv.py", "class Sniffer"),
    ("Which argument type opens the named file for me when the command line is parsed?",
     "argparse.py", "class FileType("),
    ("How do I parse a date string from a web server into seconds since the epoch?",
     "http/cookiejar.py", "def http2time("),
    ("How do I combine a base address with a relative link to get an absolute address?",
     "urllib/parse.py", "def urljoin("),
    ("How can a crawler check whether a site's exclusion rules let it fetch a page?",
     "urllib/robotparser.py", "class RobotFileParser"),
    ("Which request handler serves the files of the current directory over the web?",
     "http/server.py", "class SimpleHTTPRequestHandler("),
]
NL_PDF = [
    ("Does the ASN.1 parser distinguish upper and lower case letters?", "libtasn1.pdf",
     "The parser is case sensitive"),
    ("Which floating-point type does the ASN.1 library not support?", "libtasn1.pdf",
     "doesn’t handle the REAL type"),
    ("Can the library be used from several threads at once, without shared global state?",
     "libtasn1.pdf", "No global variables are used"),
    ("Which tool turns a schema file and a file of value assignments into binary output?",
     "libtasn1.pdf", "generates a DER encoding from a file"),
    ("Which command-line utility can time how long decoding takes?", "libtasn1.pdf",
     "perform a benchmark on decoding"),
    ("How big must the buffer for an error message be at least?", "libtasn1.pdf",
     "pre-allocated buffer of at least"),
    ("What improvements are planned for later versions of the library?", "libtasn1.pdf",
     "2.5 Future developments"),
    ("How do I make an exact duplicate of a node of the tree?", "libtasn1.pdf",
     "This function will return an exact copy"),
    ("How do I remove an optional field while setting values?", "libtasn1.pdf",
     "If an element is OPTIONAL and you want to delete it"),
    ("How can I learn how many bytes the encoded output needs before producing it?",
     "libtasn1.pdf", "To know the size of the DER encoding use a NULL value"),
    ("Does the database record which program a user prefers for opening a kind of file?",
     "shared-mime-info-spec.pdf", "does NOT store user preferences"),
    ("Which command must a program run after installing its description file?",
     "shared-mime-info-spec.pdf", "MUST run the update-mime-database command"),
    ("What is the default priority of a file name pattern, and the highest allowed?",
     "shared-mime-info-spec.pdf", "The default weight value is"),
    ("Should file name patterns be compared without regard to upper and lower case?",
     "shared-mime-info-spec.pdf", "MUST match globs case-insensitively"),
    ("With a name that has several extensions, such as a compressed archive, which pattern "
     "wins?", "shared-mime-info-spec.pdf", "MUST match the longest sequence of extensions"),
    ("How does the content-sniffing rules file begin, and does it carry a version number?",
     "shared-mime-info-spec.pdf", "There is no version number in the file"),
    ("Are numbers in the content-sniffing rules stored in big or little byte order?",
     "shared-mime-info-spec.pdf", "All numbers are big-endian"),
    ("What does the human-readable description of a type usually consist of?",
     "shared-mime-info-spec.pdf", "comment elements give a human-readable"),
]
CONFIGS = {"bm25": ("bm25",), "fused": ("symbol", "path", "bm25"),
           "fused+dense": ("symbol", "path", "bm25", "dense")}


@dataclass(frozen=True)
class Place:
    kind: str
    text: str
    path: str  # as stored
    line: int = 0  # code: the line; 0 for a PDF
    page: int = 0  # PDF: the 1-based page


def build_corpus(folder: Path) -> Path:
    std = Path(sysconfig.get_paths()["stdlib"])
    if folder.exists():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for part in STDLIB:
        src = std / part
        if src.is_dir():
            shutil.copytree(src, tmp / part, ignore=shutil.ignore_patterns(
                "__pycache__", "test", "tests"))
        else:
            tmp.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tmp / part)
    (tmp / "docs").mkdir(parents=True, exist_ok=True)
    for pdf in PDFS:
        if Path(pdf).exists():
            shutil.copy2(pdf, tmp / "docs" / Path(pdf).name)
    tmp.rename(folder)
    return folder


def stored_path(stored: set[str], rel: str) -> str:
    found = sorted(p for p in stored if p == rel or p.endswith("/" + rel))
    if not found:
        raise SystemExit(f"not in the corpus: {rel}")
    return found[0]


def hand_questions(root: Path, stored: set[str]) -> list[Place]:
    import pymupdf

    out = []
    for text, rel, anchor in NL_CODE:
        path = stored_path(stored, rel)
        source = (root / path).read_text(encoding="utf-8")
        at = source.find(anchor)
        if at < 0:
            raise SystemExit(f"anchor {anchor!r} not in {rel}")
        out.append(Place("nl-code", text, path, line=source.count("\n", 0, at) + 1))
    for text, name, anchor in NL_PDF:
        path = stored_path(stored, name)
        with pymupdf.open(root / path) as doc:
            pages = [i + 1 for i, p in enumerate(doc) if anchor in p.get_text()]
        if not pages:
            raise SystemExit(f"anchor {anchor!r} on no page of {name}")
        out.append(Place("nl-pdf", text, path, page=pages[0]))
    return out


def hit(ctx, q: Place) -> bool:
    """The context holds the place: its PDF page, or its file with a span covering the line."""
    for src in ctx.to_json()["sources"]:
        if src["path"] != q.path:
            continue
        if q.page:
            if int(src.get("page", 0) or 0) == q.page:
                return True
            continue
        lines = src.get("lines")
        if lines is None:
            return True
        a, _, b = str(lines).partition("-")
        if int(a) <= q.line <= int(b or a):
            return True
    return False


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "scoutlens-dense")
    ap.add_argument("--auto", type=int, default=30, help="generated questions (doc/def/const)")
    ap.add_argument("--json", type=Path, help="write the per-question results here")
    args = ap.parse_args()
    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here.parent), str(here)]
    os.environ["SCOUTLENS_HOME"] = str(args.work / "home")
    os.environ["SCOUTLENS_DENSE"] = "1"
    root = build_corpus(args.work / "corpus")

    from bench_retrieval import write_questions

    from app.services.backends import make_backend
    from app.services.catalog import corpus_exists, corpus_version
    from app.services.context import build_context
    from app.services.index import embedder, index_dir, load_index
    from app.services.ingesting import ingest
    from app.services.search import search
    from app.services.snapshot import load_documents, open_snapshot
    from app.settings import get_settings
    from ingest.embeddings import digest
    from ingest.retrieval import SegmentIndex

    get_settings.cache_clear()
    name = "densebench"
    if not corpus_exists(name):
        os.environ["SCOUTLENS_DENSE"] = "0"  # the lexical index first; vectors timed below
        get_settings.cache_clear()
        t0 = time.perf_counter()
        ingest([root], name)
        print(f"ingested {root} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        os.environ["SCOUTLENS_DENSE"] = "1"
        get_settings.cache_clear()
    _, docs = load_documents(name)
    stored = {d.path for d in docs}
    tokens = sum(d.tokens for d in docs)
    version = corpus_version(name)
    folder = index_dir(name, version)

    t0 = time.perf_counter()
    model = embedder(print)
    load_s = time.perf_counter() - t0
    if model is None:
        raise SystemExit("the embedding model did not load")
    lexical_mb = folder_mb(folder) - (folder / "vectors.npy").stat().st_size / 1e6 \
        if (folder / "vectors.npy").exists() else folder_mb(folder)
    SegmentIndex.load(folder).save(folder)  # without vectors: embedding is timed from scratch
    t0 = time.perf_counter()
    with open_snapshot(name) as snap:
        index = load_index(snap, dense=True, build_vectors=True, note=print)
    embed_s = time.perf_counter() - t0
    if index.vectors is None:
        raise SystemExit("no vectors were built")
    segments = [(s.text, d.path) for d in load_documents(name)[1] for s in d.segments]
    pieces = sum(model.pieces(digest(p, t)) for t, p in segments)
    vectors_mb = (folder / "vectors.npy").stat().st_size / 1e6

    questions = hand_questions(root, stored)
    questions += [Place(q.kind, q.text, q.path, line=q.line)
                  for q in write_questions(root, stored, args.auto)]
    backend = make_backend("embedded", weights=False)
    rows = []
    for q in questions:
        row = {"kind": q.kind, "question": q.text, "path": q.path, "line": q.line,
               "page": q.page}
        for label, signals in CONFIGS.items():
            t0 = time.perf_counter()
            search(name, q.text, k=400, signals=signals)
            row[f"{label}_search_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            with open_snapshot(name) as snap:
                ctx = build_context(snap, q.text, "retrieval", backend, 384, signals=signals)
            row[f"{label}_s"] = time.perf_counter() - t0
            row[label] = hit(ctx, q)
        rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))

    n_seg = len(index.ids)
    print(f"{name}: {len(docs):,} files ({sum(p.endswith('.pdf') for p in stored)} PDFs), "
          f"{tokens:,} tokens, {n_seg:,} segments; {len(rows)} questions, window "
          f"{backend.window:,}")
    print(f"embedding: {n_seg:,} segment digests, {pieces:,} word pieces in {embed_s:.1f} s "
          f"({pieces / embed_s:,.0f} pieces/s): {embed_s / tokens * 1e6 / 60:.1f} min per 1M "
          f"corpus tokens, {embed_s / pieces * 1e6 / 60:.1f} min per 1M word pieces; model "
          f"load {load_s:.1f} s per process")
    print(f"index: {lexical_mb:.1f} MB lexical + {vectors_mb:.1f} MB vectors (float16 x 384)")
    print(f"{'kind':8} {'n':>3} " + " ".join(f"{c:>12}" for c in CONFIGS))
    for kind in ("nl-code", "nl-pdf", "doc", "def", "const", "all"):
        sel = [r for r in rows if kind == "all" or r["kind"] == kind]
        if sel:
            print(f"{kind:8} {len(sel):3d} " + " ".join(
                f"{sum(r[c] for r in sel) / len(sel):12.0%}" for c in CONFIGS))
    print("median latency (model loaded, index warm): " + "; ".join(
        f"{c}: search {statistics.median(r[f'{c}_search_s'] for r in rows) * 1000:.0f} ms, "
        f"dry-run context {statistics.median(r[f'{c}_s'] for r in rows) * 1000:.0f} ms"
        for c in CONFIGS))
    for r in rows:
        if r["fused"] != r["fused+dense"]:
            print(f"  {'gained' if r['fused+dense'] else 'LOST':6} ({r['kind']}): "
                  f"{r['question']}")
    for r in rows:
        if not r["fused+dense"]:
            print(f"  missed by all+dense ({r['kind']}): {r['question']} -> {r['path']}")


if __name__ == "__main__":
    main()
