"""Long-context tasks in the NIAH / RULER family, generated from a seed: every sample carries its
prompt, its expected answers and how they are scored, so a response can be scored (and re-scored)
without a judge model.

Tasks: `niah` (one needle at a depth), RULER's `single` (number / word / uuid values), `multikey`
(distractor needles with other keys), `multivalue` (several values for one key), `multiquery`
(several keys asked at once), `vt` (variable tracking through a chain of assignments), `cwe` and
`fwe` (common / frequent words extraction) and `qa` (a question over generated passages with
distractors). Lengths are token counts under the caller's tokenizer: the haystack is cut so
that haystack + question is exactly the length asked (or within a token or two where a BPE seam
merges).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from evals.haystack import build

TASKS = ("niah", "single", "multikey", "multivalue", "multiquery", "vt", "cwe", "fwe", "qa")
_WORDS = ["amber", "basil", "cobalt", "dune", "ember", "fjord", "garnet", "harbor", "indigo",
          "juniper", "kestrel", "lagoon", "meadow", "nectar", "onyx", "prairie", "quartz",
          "raven", "saffron", "tundra", "umber", "violet", "willow", "xenon", "yarrow", "zephyr"]


@dataclass(frozen=True)
class Sample:
    task: str
    length: int  # target tokens of haystack + question
    depth: float  # where the (first) needle sits, 0..1; -1 when the task has no depth
    seed: int
    context: str  # the haystack: the reusable prefix
    question: str
    answers: tuple[str, ...]
    metric: str = "all"  # all: share of answers present; part: 1 if any is present
    meta: dict = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        return self.context + "\n\n" + self.question


def score(sample: Sample, response: str) -> float:
    """RULER's string match: `all` is the share of expected answers in the response, `part` is
    1.0 when any of them is."""
    text = response.casefold()
    hits = [a.casefold() in text for a in sample.answers]
    if not hits:
        return 0.0
    return float(any(hits)) if sample.metric == "part" else sum(hits) / len(hits)


class Generator:
    """Builds samples of exact lengths under one tokenizer (encode/decode)."""

    def __init__(self, encode: Callable[[str], list[int]], decode: Callable[[list[int]], str],
                 haystack: str = "prose"):
        self.encode, self.decode, self.haystack = encode, decode, haystack

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def sample(self, task: str, length: int, depth: float = 0.5, seed: int = 0) -> Sample:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}: {', '.join(TASKS)}")
        # the needle and the haystack do not depend on the depth: cells of one length share the
        # haystack up to the needle, so a prefix cache reuses it from one depth to the next
        rng = random.Random(f"{task}|{length}|{seed}")
        make = getattr(self, f"_{task}")
        needles, depths, question, answers, metric, meta = make(rng, depth)
        room = length - self.count("\n\n" + question)
        if room < sum(self.count(n) for n in needles) + 16:
            raise ValueError(f"{length} tokens is too short for task {task}")
        hay_seed = random.Random(f"{self.haystack}|{length}|{seed}").randrange(1 << 30)
        context = self._exact(needles, depths, room, hay_seed, question)
        return Sample(task, length, depth if task in ("niah", "single", "qa") else -1.0, seed,
                      context, question, tuple(answers), metric,
                      {**meta, "tokens": self.count(context + "\n\n" + question)})

    def _exact(self, needles: list[str], depths: list[float], room: int, seed: int,
               question: str) -> str:
        """A haystack sized so that haystack + question has exactly `room` + question tokens;
        BPE seams can merge or split a token, so measure and correct a few times."""
        target = room + self.count("\n\n" + question)
        size = room
        text = ""
        for _ in range(5):
            text = build(self.haystack, size, needles, depths, seed, self.encode, self.decode)
            diff = target - self.count(text + "\n\n" + question)
            if diff == 0:
                break
            size += diff
        return text

    # --- tasks: (needles, depths, question, answers, metric, meta) ---------------------------

    def _niah(self, rng: random.Random, depth: float):
        value = str(rng.randrange(1_000_000, 9_999_999))
        needle = f"The special magic number is {value}."
        return ([needle], [depth], "What is the special magic number mentioned in the text? "
                "Answer with the number only.", [value], "all", {"needle": needle})

    def _single(self, rng: random.Random, depth: float):
        key = rng.choice(_WORDS) + "-" + rng.choice(_WORDS)
        kind = rng.choice(["number", "word", "uuid"])
        value = {"number": str(rng.randrange(1_000_000, 9_999_999)),
                 "word": rng.choice(_WORDS) + rng.choice(_WORDS),
                 "uuid": str(uuid.UUID(int=rng.getrandbits(128)))}[kind]
        needle = f"One of the special magic {kind}s for {key} is: {value}."
        return ([needle], [depth], f"What is the special magic {kind} for {key}?", [value],
                "all", {"kind": kind, "key": key})

    def _multikey(self, rng: random.Random, depth: float):
        keys = rng.sample(_WORDS, 4)
        values = [str(rng.randrange(1_000_000, 9_999_999)) for _ in keys]
        needles = [f"One of the special magic numbers for {k} is: {v}." for k, v in
                   zip(keys, values, strict=True)]
        depths = [rng.random() for _ in keys]
        return (needles, depths, f"What is the special magic number for {keys[0]}?",
                [values[0]], "all", {"key": keys[0], "distractors": keys[1:]})

    def _multivalue(self, rng: random.Random, depth: float):
        key = rng.choice(_WORDS)
        values = [str(rng.randrange(1_000_000, 9_999_999)) for _ in range(4)]
        needles = [f"One of the special magic numbers for {key} is: {v}." for v in values]
        return (needles, [rng.random() for _ in values],
                f"What are all the special magic numbers for {key}?", values, "all",
                {"key": key})

    def _multiquery(self, rng: random.Random, depth: float):
        keys = rng.sample(_WORDS, 4)
        values = [str(rng.randrange(1_000_000, 9_999_999)) for _ in keys]
        needles = [f"One of the special magic numbers for {k} is: {v}." for k, v in
                   zip(keys, values, strict=True)]
        return (needles, [rng.random() for _ in keys],
                f"What are the special magic numbers for {', '.join(keys)}?", values, "all",
                {"keys": keys})

    def _vt(self, rng: random.Random, depth: float):
        names = ["".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5))
                 for _ in range(5)]
        value = str(rng.randrange(10_000, 99_999))
        needles = [f"VAR {names[0]} = {value}."] + [
            f"VAR {names[i]} = VAR {names[i - 1]}." for i in range(1, len(names))]
        depths = sorted(rng.random() for _ in needles)
        return (needles, depths, f"Which variables are assigned the value {value}? List them.",
                names, "all", {"chain": names})

    def _cwe(self, rng: random.Random, depth: float):
        common = rng.sample(_WORDS, 5)
        rare = [w for w in _WORDS if w not in common]
        words = [w for w in common for _ in range(12)] + [rng.choice(rare) for _ in range(20)]
        rng.shuffle(words)
        listing = "Word list: " + " ".join(words) + "."
        return ([listing], [0.5], "What are the 5 most common words in the word list?",
                common, "all", {"counts": dict(Counter(words).most_common(5))})

    def _fwe(self, rng: random.Random, depth: float):
        ranks = rng.sample(_WORDS, 3)
        words = [ranks[0]] * 30 + [ranks[1]] * 20 + [ranks[2]] * 12 + [
            rng.choice(_WORDS) for _ in range(30)]
        rng.shuffle(words)
        code = "Coded text: " + " ".join(words) + "."
        top = [w for w, _ in Counter(words).most_common(3)]
        return ([code], [0.5], "What are the three most frequently appearing words in the "
                "coded text?", top, "all", {})

    def _qa(self, rng: random.Random, depth: float):
        people = rng.sample(["Ada", "Bram", "Cleo", "Dov", "Esme", "Finn", "Gita", "Hugo"], 4)
        towns = rng.sample(["Arden", "Belmoor", "Corvale", "Dunmore", "Eastwick", "Fairholm"], 4)
        jobs = ["potter", "pilot", "clerk", "baker"]
        passages = [f"Passage: {p} moved to {t} to work as a {rng.choice(jobs)}."
                    for p, t in zip(people, towns, strict=True)]
        depths = [depth] + [rng.random() for _ in passages[1:]]
        return (passages, depths, f"Answer based on the passages. Which town did {people[0]} "
                "move to?", [towns[0]], "part", {"distractors": towns[1:]})
