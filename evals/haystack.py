"""Haystack text, generated locally and deterministically from a seed, and needle placement.

Two generated kinds ship: `filler` (RULER's repeated "The grass is green..." noise) and `prose`
(sentences composed from a word bank, varied enough that a needle does not stand out by style
alone); a user's own corpus is the third (evals/corpus.py). A kind's text depends on the seed
only, never on the length, so a shorter haystack is a prefix of a longer one and a server's
prefix cache carries over from one length to the next. Text is cut at the token level under the
target's tokenizer, so a prompt has exactly the length asked.
"""

from __future__ import annotations

import random
import re

FILLER = ("The grass is green. The sky is blue. The sun is yellow. Here we go. "
          "There and back again. ")
KINDS = ("prose", "filler")

_SUBJECTS = ["The committee", "A traveller", "The old harbour", "Our neighbour", "The river",
             "A young engineer", "The village baker", "The northern road", "An archivist",
             "The orchestra", "A careful student", "The lighthouse keeper", "The garden"]
_VERBS = ["considered", "remembered", "described", "questioned", "welcomed", "measured",
          "painted", "followed", "repaired", "collected", "admired", "ignored", "visited"]
_OBJECTS = ["the long winter", "a forgotten letter", "the morning market", "an unfinished map",
            "the quiet hills", "a wooden bridge", "the evening train", "a borrowed book",
            "the crowded square", "a distant island", "the spring festival", "an empty room"]
_TAILS = ["before the rain began", "with unusual patience", "as the bells rang",
          "without saying a word", "for the third time that year", "while the others slept",
          "in the pale light", "after a long debate", "despite the cold wind", "at dawn"]
_CUT = re.compile(r"\. |\n")


def prose_sentences(rng: random.Random, n: int) -> list[str]:
    return [f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
            f"{rng.choice(_TAILS)}. " for _ in range(n)]


def source_text(kind: str, seed: int, chars: int) -> str:
    """At least `chars` characters of a generated kind; a longer call extends a shorter one."""
    if kind == "filler":
        return FILLER * (chars // len(FILLER) + 1)
    if kind == "prose":
        return "".join(prose_sentences(random.Random(seed), chars // 50 + 1))
    raise ValueError(f"unknown haystack {kind!r}: {' | '.join(KINDS)} or a corpus name")


def cut_points(body: str) -> list[int]:
    """Where a needle may go: after a sentence end or at a line start."""
    return [m.end() for m in _CUT.finditer(body) if m.end() < len(body)]


def place(body: str, needles: list[str], depths: list[float],
          cuts: list[int] | None = None) -> str:
    """Each needle at the cut point nearest its depth (0 = start, 1 = end)."""
    cuts = cut_points(body) if cuts is None else cuts
    placed: list[tuple[int, str]] = []
    for needle, depth in zip(needles, depths, strict=True):
        want = int(len(body) * min(max(depth, 0.0), 1.0))
        at = min(cuts, key=lambda c: abs(c - want)) if cuts and 0 < depth < 1 else (
            0 if depth <= 0 else len(body))
        placed.append((at, needle))
    text, pos = [], 0
    for at, needle in sorted(placed):
        text.append(body[pos:at])
        if at and not body[at - 1].isspace():
            text.append(" ")  # a needle after a token-level cut starts a new sentence
        text.append(needle if needle.endswith((" ", "\n")) else needle + " ")
        pos = at
    text.append(body[pos:])
    return "".join(text)
