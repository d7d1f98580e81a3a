"""A second look at the candidates: each segment by its best few lines, not as a whole.

The answer to a question in plain words usually sits on one line (`timeout_keep_alive: int = 5`)
near the words that say what it is for, while BM25 scores an 80-line segment by all the words it
holds: a segment that repeats the question's commoner words everywhere outranks the one whose
single line holds its rarer ones together. Here every candidate is scored by its best window of
`WINDOW` lines: the summed IDF of the question's terms the window holds, a term hidden inside a
longer identifier (`header` in `_MAXHEADERS`) counting half. Cheap: the candidates' text is
already read, and nothing but string checks runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ingest.retrieval import Stems, terms
from ingest.textsplit import split_lines

WINDOW = 3  # lines: the answering line and one either side
INSIDE = 0.5  # a term found only inside a longer word
MIN_INSIDE = 4  # characters a term needs to be looked for inside longer words


@dataclass(frozen=True)
class Window:
    """A segment's best few lines: their score and where they are (0-based, in the segment's
    own lines as ingest.textsplit.split_lines cuts them)."""

    score: float
    first: int
    last: int


def best_window(text: str, weights: dict[str, float], stems: Stems) -> Window:
    """The best `WINDOW`-line window of `text` by the summed weight of the terms it holds."""
    lines = split_lines(text) or [text]
    found: list[dict[str, float]] = []
    prefixes = {term[:MIN_INSIDE] for term in weights}
    for line in lines:
        low = line.lower()
        here: dict[str, float] = {}
        if not any(p in low for p in prefixes):  # no term can be here: skip the split
            found.append(here)
            continue
        keys = {stems(t) for t in terms(line)}
        for term, weight in weights.items():
            if term in keys:
                here[term] = weight
            elif len(term) >= MIN_INSIDE and term in low:
                here[term] = weight * INSIDE
        found.append(here)
    best = Window(0.0, 0, 0)
    for i, here in enumerate(found):
        if not here:
            continue
        a, b = max(0, i - WINDOW // 2), min(len(found), i + WINDOW // 2 + 1)
        seen: dict[str, float] = {}
        for near in found[a:b]:
            for term, w in near.items():
                seen[term] = max(seen.get(term, 0.0), w)
        score = sum(seen.values())
        if score > best.score:
            best = Window(score, a, b - 1)
    return best


def rank_by_lines(candidates: Iterable[tuple[int, str]], weights: dict[str, float],
                  stems: Stems) -> list[tuple[int, Window]]:
    """(candidate id, its best window), candidates given best first, by their best window,
    ties kept in the given order; those holding no term of the question are left out."""
    scored = [(best_window(text, weights, stems), i, sid)
              for i, (sid, text) in enumerate(candidates)]
    return [(sid, w) for w, _, sid in sorted(scored, key=lambda x: (-x[0].score, x[1]))
            if w.score > 0]
