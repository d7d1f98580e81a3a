"""How many pages of real PDFs the figure rule of ingest/pdf.py calls figure pages, at several
thresholds, and how long finding them takes; draws sample pages to look at by eye.

    .venv/bin/python benchmarks/measure_pdf_figures.py DIR_OR_PDF... [--pages 60] [--draw OUT]

(--draw draws each figure page in a child process given 20 s: a page of PyMuPDF's own test
files, test_2548.pdf p.5, takes minutes to draw.)

Each page's figure share (its pictures and drawings, decorations repeated on many pages left
out) is measured once; a page qualifies at a threshold when its share reaches it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pymupdf

from ingest import pdf

THRESHOLDS = (0.03, 0.05, 0.06, 0.08, 0.12, 0.2)


def pdfs(paths: list[str]) -> list[Path]:
    """The PDFs named or under the folders named."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        found += sorted(path.rglob("*.pdf")) if path.is_dir() else [path]
    return found


def shares(doc: pymupdf.Document, pages: int) -> list[tuple[int, float, str]]:
    """(page, figure share, what makes it) for the first `pages` pages, with repeated parts
    left out as figure_pages leaves them out."""
    count = min(pages, doc.page_count)
    found = [pdf.figure_parts(doc.load_page(i)) for i in range(count)]
    seen = Counter(key for parts in found for key in {part.key for part in parts})
    limit = max(2, pdf._REPEATED * count)
    out = []
    for number, parts in enumerate(found, 1):
        kept = [part for part in parts if seen[part.key] < limit]
        kinds = "+".join(sorted({"picture" if p.picture else "drawing" for p in kept}))
        out.append((number, pdf.figure_share(doc.load_page(number - 1).rect, kept), kinds))
    return out


def draw(path: Path, number: int, out: Path) -> None:
    """Draw one page as a small PNG to look at, in a child process that is stopped after 20 s."""
    out.parent.mkdir(parents=True, exist_ok=True)
    code = ("import pymupdf, sys; d = pymupdf.open(sys.argv[1]); "
            "d.load_page(int(sys.argv[2]) - 1).get_pixmap(dpi=50).save(sys.argv[3])")
    try:
        subprocess.run([sys.executable, "-c", code, str(path), str(number), str(out)],
                       timeout=20, check=False, capture_output=True)
    except subprocess.TimeoutExpired:
        print(f"not drawn in 20 s: {path.name} p{number}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--pages", type=int, default=60, help="pages read per PDF")
    parser.add_argument("--draw", help="folder to draw qualifying pages into (PNG)")
    args = parser.parse_args()
    pymupdf.TOOLS.mupdf_display_errors(False)
    total, seconds, qualified = 0, 0.0, Counter()
    rows: list[tuple[str, int, float, str]] = []
    files = 0
    for path in pdfs(args.paths):
        try:
            doc = pymupdf.open(path)
            if doc.needs_pass or doc.page_count == 0:
                continue
            start = time.perf_counter()
            measured = shares(doc, args.pages)
            took = time.perf_counter() - start
            seconds += took
            if took > 2:
                print(f"slow: {path.name}: {took:.1f} s for {len(measured)} pages", flush=True)
        except Exception as exc:  # a damaged test file: counted out, named
            print(f"skipped {path.name}: {type(exc).__name__}")
            continue
        files += 1
        total += len(measured)
        for number, share, kinds in measured:
            qualified.update(t for t in THRESHOLDS if share >= t)
            if share >= min(THRESHOLDS):
                rows.append((path.name, number, share, kinds))
                if args.draw and share >= pdf.FIGURE_SHARE:
                    draw(path, number, Path(args.draw) / f"{path.stem}-p{number}.png")
    for name, number, share, kinds in rows:
        print(f"{share:6.3f}  {kinds:16} {name} p{number}")
    print(f"\n{files} PDFs, {total} pages, figure search {seconds:.2f} s "
          f"({1000 * seconds / max(total, 1):.1f} ms/page)")
    for t in THRESHOLDS:
        mark = "  <- FIGURE_SHARE" if t == pdf.FIGURE_SHARE else ""
        share = 100 * qualified[t] / max(total, 1)
        print(f"share >= {t:4.2f}: {qualified[t]:5} pages ({share:.1f}%){mark}")


if __name__ == "__main__":
    main()
