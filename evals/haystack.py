"""Haystacks of an exact token length, generated locally and deterministically from a seed.

Two kinds ship: `filler` (RULER's repeated "The grass is green..." noise) and `prose` (sentences
composed from a word bank, varied enough that a needle does not stand out by style alone). Text
is cut at the token level under the target's tokenizer, so a prompt has exactly the length asked.
"""

from __future__ import annotations

import random
from collections.abc import Callable

FILLER = ("The grass is green. The sky is blue. The sun is yellow. Here we go. "
          "There and back again. ")

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


def prose_sentences(rng: random.Random, n: int) -> list[str]:
    return [f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
            f"{rng.choice(_TAILS)}. " for _ in range(n)]


def sentences(kind: str, rng: random.Random, approx_chars: int) -> list[str]:
    if kind == "filler":
        return [FILLER] * (approx_chars // len(FILLER) + 1)
    if kind == "prose":
        return prose_sentences(rng, approx_chars // 50 + 1)
    raise ValueError(f"unknown haystack {kind!r}: filler | prose")


def build(kind: str, tokens: int, needles: list[str], depths: list[float], seed: int,
          encode: Callable[[str], list[int]], decode: Callable[[list[int]], str]) -> str:
    """A haystack of `tokens` tokens (needles included) with each needle placed at its depth
    (0 = start, 1 = end) on a sentence boundary."""
    rng = random.Random(seed)
    needle_tokens = sum(len(encode(n)) for n in needles)
    room = max(0, tokens - needle_tokens)
    parts = sentences(kind, rng, room * 6 + 200)
    body_ids = encode("".join(parts))[:room]
    body = decode(body_ids)
    # needles go in at sentence ends nearest to their depth
    cuts = [i + 2 for i in range(len(body) - 1) if body[i] == "." and body[i + 1] == " "]
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
        text.append(needle if needle.endswith(" ") else needle + " ")
        pos = at
    text.append(body[pos:])
    return "".join(text)

