"""Long-context tasks in the NIAH / RULER family, generated from a seed: every sample carries its
prompt, its expected answers and how they are scored, so a response can be scored (and re-scored)
without a judge model.

Tasks: `niah` (one needle at a depth), RULER's `single` (number / word / uuid values), `multikey`
(distractor needles with other keys), `multivalue` (several values for one key), `multiquery`
(several keys asked at once), `vt` (variable tracking through a chain of assignments), `cwe` and
`fwe` (common / frequent words extraction) and `qa` (a question over generated passages with
distractors); and needles by modality planted in a user's corpus: `code` (a function in one
source file), `pdf` (a fact on one page) and `video` (text on one frame). Lengths are token
counts under the caller's tokenizer: the haystack is cut so that haystack + question is exactly
the length asked (or within a token or two where a BPE seam merges).

Suites' own tasks: `ruler-*` are RULER's 13 tasks as its data preparation makes them
(evals/ruler.py), `babilong-qa1..5` BABILong's published files (evals/babilong.py) and
`longbench-v2[-cot|-nocontext]` LongBench v2's data file (evals/longbench.py) and `mrcr-2|4|8`
OpenAI MRCR's conversations (evals/mrcr.py).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from evals import babilong, longbench, mrcr, ruler
from evals.corpus import CorpusText, kind_label, modal_needle, plant
from evals.haystack import KINDS, place, source_text

TASKS = ("niah", "single", "multikey", "multivalue", "multiquery", "vt", "cwe", "fwe", "qa")
RULER_STYLE = TASKS[1:]  # RULER's families, made here (`ruler-style` stands for them)
MODAL_TASKS = ("code", "pdf", "video")  # needles by modality, in a corpus haystack
#: the pipeline's own recall: needles planted in a stored corpus, scored by whether retrieval
#: puts them in the context (no model answers; app.services.retrieval_eval runs them)
PIPELINE_TASKS = ("retrieval",)
#: BABILong's qa1-qa5 from its published files (evals/babilong.py), `babilong` stands for all
BABILONG = tuple(f"babilong-{t}" for t in babilong.TASKS)
LONGBENCH = longbench.TASKS
MRCR = mrcr.TASKS  # `mrcr` stands for all three needle counts
#: tasks whose samples come from a suite's published files (--data), not generated
PUBLISHED_TASKS = BABILONG + LONGBENCH + MRCR
#: RULER's 13 tasks made as RULER makes them (evals/ruler.py), `ruler` stands for all
RULER = tuple(f"ruler-{t}" for t in ruler.TASKS)
#: a suite's own tasks: its prompts and answer lengths, no depth grid
SUITE_TASKS = PUBLISHED_TASKS + RULER
ALL_TASKS = TASKS + MODAL_TASKS + PIPELINE_TASKS + SUITE_TASKS
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
    sep: str = "\n\n"  # between the context and the question (a suite's own template: "")
    chat: bool = True  # through the model's chat template; False: the text as it is (RULER)
    max_tokens: int | None = None  # the suite's own answer length; None: the run's --max-tokens
    #: a second call whose prompt is this with `$COT$` replaced by the first answer, stripped
    #: (LongBench v2's chain of thought), answered in `then_tokens`; its answer is scored
    then: str | None = None
    then_tokens: int = 0
    history: tuple[tuple[str, str], ...] = ()  # earlier turns of a conversation (MRCR)

    @property
    def prompt(self) -> str:
        return self.context + self.sep + self.question


def score(sample: Sample, response: str) -> float:
    return score_text(sample.answers, sample.metric, response)


#: a stored metric with this prefix scores the whole response, thinking included
RAW = "raw:"


def answer_part(response: str) -> str:
    """What a reasoning model answered: the text after its last `</think>` (leading space
    dropped, as an API that hides the thinking returns it); nothing when the
    thinking never ended (the answer tokens ran out inside it); the whole text otherwise."""
    if "</think>" in response:  # the space a model puts after its thinking is not the answer
        return response.rsplit("</think>", 1)[1].lstrip()
    return "" if response.lstrip().startswith("<think>") else response


def score_text(answers: tuple[str, ...] | list[str], metric: str, response: str) -> float:
    """RULER's string match: `all` is the share of expected answers in the response, `part` is
    1.0 when any of them is; `babilong:...` is BABILong's own rule. A reasoning model's
    thinking block is left out (answer_part) unless the metric starts with `raw:`. A pure
    function of stored fields, so a run can be re-scored."""
    if metric.startswith(RAW):
        metric = metric.removeprefix(RAW)
    else:
        response = answer_part(response)
    if metric.startswith("babilong:"):
        return babilong.score(answers[0] if answers else "", response, metric)
    if metric.startswith("ruler:"):
        return ruler.score(answers, metric.removeprefix("ruler:"), response)
    if metric.startswith("longbench2:"):
        return longbench.score(answers[0] if answers else "", response)
    if metric.startswith("mrcr:"):
        return mrcr.grade(response, answers[0] if answers else "", metric.removeprefix("mrcr:"))
    text = response.casefold()
    hits = [a.casefold() in text for a in answers]
    if not hits:
        return 0.0
    return float(any(hits)) if metric == "part" else sum(hits) / len(hits)


def expand_tasks(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Task names with `ruler` standing for RULER's 13 tasks, `ruler-style` for the families made
    here and `babilong` for qa1-qa5; unknown names are an error that lists the valid ones."""
    out: list[str] = []
    aliases = {"ruler": RULER, "ruler-style": RULER_STYLE, "babilong": BABILONG, "mrcr": MRCR}
    for name in names:
        for t in aliases.get(name, (name,)):
            if t not in ALL_TASKS:
                raise ValueError(f"unknown task {t!r} (tasks: {', '.join(ALL_TASKS)}, ruler, "
                                 "ruler-style, babilong, mrcr)")
            if t not in out:
                out.append(t)
    return tuple(out)


def planted_needle(seed: int) -> tuple[str, str, str]:
    """(needle sentence, question, answer) of a retrieval cell: a fact worded as documents word
    facts, asked as a user would ask it."""
    rng = random.Random(seed)
    key = f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}"
    value = str(rng.randrange(100_000, 999_999))
    return (f"The access code for the {key} vault is {value}.",
            f"What is the access code for the {key} vault?", value)


class Generator:
    """Builds samples of exact lengths under one tokenizer (encode/decode). The haystack is a
    generated kind (`prose`, `filler`) or a rendered corpus (evals/corpus.py)."""

    def __init__(self, encode: Callable[[str], list[int]], decode: Callable[[list[int]], str],
                 haystack: str | CorpusText = "prose", data: str | None = None):
        self.encode, self.decode = encode, decode
        self.data = data  # a folder of a suite's published files (BABILong)
        self._babilong: babilong.Data | None = None
        self._longbench: longbench.Data | None = None
        self._mrcr: mrcr.Data | None = None
        self._ruler: dict[tuple[str, int, int], ruler.Task] = {}  # (task, length, seed) -> its file
        self.corpus = haystack if isinstance(haystack, CorpusText) else None
        self.haystack = haystack.name if isinstance(haystack, CorpusText) else haystack
        if self.corpus is None and self.haystack not in KINDS:
            raise ValueError(f"unknown haystack {self.haystack!r}: {' | '.join(KINDS)} or a "
                             "corpus name")
        self._ids: dict[int, list[int]] = {}  # haystack seed -> token ids of its source text
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def sample(self, task: str, length: int, depth: float = 0.5, seed: int = 0,
               index: int = 0) -> Sample:
        """A sample of `task` at `length`: generated from `seed`, or, for a published suite,
        record `index` of its file at that length."""
        if task not in ALL_TASKS:
            raise ValueError(f"unknown task {task!r} (tasks: {', '.join(ALL_TASKS)})")
        if task in BABILONG:
            return self._published(task, length, seed, index)
        if task in LONGBENCH:
            return self._longbench_sample(task, length, seed, index)
        if task in MRCR:
            return self._mrcr_sample(task, length, seed, index)
        if task in RULER:
            return self._ruler_sample(task, length, seed, index)
        if task in MODAL_TASKS and self.corpus is None:
            raise ValueError(f"task {task} plants its needle in a corpus: use --haystack CORPUS")
        # the needle and the haystack do not depend on the depth: cells of one length share the
        # haystack up to the needle, so a prefix cache reuses it from one depth to the next
        rng = random.Random(f"{task}|{length}|{seed}")
        hay_seed = random.Random(f"{self.haystack}|{seed}").randrange(1 << 30)
        if task in MODAL_TASKS:
            return self._modal(task, rng, length, depth, seed, hay_seed)
        make = getattr(self, f"_{task}")
        needles, depths, question, answers, metric, meta = make(rng, depth)
        room = length - self.count("\n\n" + question)
        if room < sum(self.count(n) for n in needles) + 16:
            raise ValueError(f"{length} tokens is too short for task {task}")
        need = sum(self.count(n) for n in needles)
        context = self._exact(
            lambda size: place(self._body(hay_seed, size - need), needles, depths), room,
            question)
        return Sample(task, length, depth if task in ("niah", "single", "qa") else -1.0, seed,
                      context, question, tuple(answers), metric,
                      {**meta, "tokens": self.count(context + "\n\n" + question)})

    def _data(self, task: str) -> babilong.Data:
        if not self.data:
            raise ValueError(f"task {task} reads BABILong's published files: --data DIR (a "
                             "local copy of the RMT-team/babilong dataset)")
        with self._lock:
            if self._babilong is None:
                self._babilong = babilong.Data(self.data)
            return self._babilong

    def check_published(self, task: str, length: int, samples: int) -> None:
        """The task's file at `length` holds `samples` good records (read, not prompted)."""
        if task in LONGBENCH:
            self._longbench_data(task).item(samples - 1)  # every record checked as it loads
            return
        if task in MRCR:
            data = self._mrcr_data(task)
            with self._lock:
                data.records(int(task.removeprefix("mrcr-")), length, samples)
            return
        data = self._data(task)
        with self._lock:
            data.check(task.removeprefix("babilong-"), length, samples)

    def _mrcr_data(self, task: str) -> mrcr.Data:
        if not self.data:
            raise ValueError(f"task {task} reads OpenAI MRCR's published files: --data DIR (a "
                             "local copy of the openai/mrcr dataset)")
        with self._lock:
            if self._mrcr is None:
                self._mrcr = mrcr.Data(self.data)
            return self._mrcr

    def _mrcr_sample(self, task: str, length: int, seed: int, index: int) -> Sample:
        """The `index`-th record of the bin ending at `length` as the card asks it: the
        conversation as chat messages, the last user turn as the prompt."""
        data = self._mrcr_data(task)
        with self._lock:
            rec = data.records(int(task.removeprefix("mrcr-")), length, index + 1)[index]
        tokens = sum(self.count(text) for _, text in rec.messages)
        return Sample(task, length, -1.0, seed, "", rec.messages[-1][1], (rec.answer,),
                      f"mrcr:{rec.prefix}",
                      {"tokens": tokens + 4 * len(rec.messages), "o200k_tokens": rec.tokens,
                       "row": rec.row, "record": index}, sep="",
                      max_tokens=2 * self.count(rec.answer) + 64, history=rec.messages[:-1])

    def _longbench_data(self, task: str) -> longbench.Data:
        if not self.data:
            raise ValueError(f"task {task} reads LongBench v2's data.json: --data DIR (a local "
                             "copy of the THUDM/LongBench-v2 dataset)")
        with self._lock:
            if self._longbench is None:
                self._longbench = longbench.Data(self.data)
            return self._longbench

    def _longbench_sample(self, task: str, length: int, seed: int, index: int) -> Sample:
        """Record `index` of data.json as pred.py prompts it: one user message, truncated from
        the middle to `length` tokens (its max_len); chain of thought asks a second time."""
        item = self._longbench_data(task).item(index)
        template = {"longbench-v2": longbench.ZERO_SHOT, "longbench-v2-cot": longbench.COT,
                    "longbench-v2-nocontext": longbench.NO_CONTEXT}[task]
        prompt = longbench.truncate(longbench.fill(template, item, item.context), length,
                                    self.encode, self.decode)
        cot = task == "longbench-v2-cot"
        return Sample(task, length, -1.0, seed, prompt, "", (item.answer,),
                      longbench.metric(item),
                      {"tokens": self.count(prompt), "record": index, "id": item.id}, sep="",
                      max_tokens=longbench.COT_TOKENS if cot else longbench.ANSWER_TOKENS,
                      then=longbench.fill(longbench.COT_ANSWER, item) if cot else None,
                      then_tokens=longbench.ANSWER_TOKENS if cot else 0)

    def _published(self, task: str, length: int, seed: int, index: int) -> Sample:
        """A BABILong record as its authors prompt it: the prefix up to the question, then the
        question, joined with nothing between (their template's own blank line is in the
        prefix). Its length is the file's, counted, not cut."""
        data = self._data(task)
        qa = task.removeprefix("babilong-")
        with self._lock:
            record = data.record(qa, length, index)
        context, question = babilong.prompt_parts(qa, record)
        return Sample(task, length, -1.0, seed, context, question, (record.target,),
                      babilong.metric(qa, record.question),
                      {"tokens": self.count(context + question),
                       "file": babilong.label(length), "record": index}, sep="",
                      max_tokens=babilong.ANSWER_TOKENS)

    def check_ruler(self, task: str, length: int, samples: int, seed: int = 0) -> None:
        """RULER's file for `task` at `length` can be made (its files read, the haystack size
        found, record 0 made) and holds `samples` records; the rest are made as a run asks."""
        self._ruler_sample(task, length, seed, 0)
        with self._lock:
            made = self._ruler[(task.removeprefix("ruler-"), length, seed)]
        if made.capacity is not None and samples > made.capacity:
            raise ruler.RulerError(f"{task}: its file has {made.capacity} questions; "
                                   f"{samples} samples were asked for")

    def _ruler_sample(self, task: str, length: int, seed: int, index: int) -> Sample:
        """Record `index` of RULER's file for `task` at `length` (its max_seq_length: prompt and
        answer tokens) with RULER's seed 42 + `seed`: `input + answer_prefix` as raw text, its
        answer length and its string match. A corpus haystack stands in for the essays."""
        name = task.removeprefix("ruler-")
        key = (name, length, seed)
        essay = ruler.needs(name) == ruler.ESSAY and self.corpus is not None
        with self._lock:
            made = self._ruler.get(key)
            if made is None:
                sources = ruler.Sources(
                    self.data, (self.corpus.source if essay and self.corpus else None),
                    f"corpus {self.corpus.name}" if essay and self.corpus else "")
                made = self._ruler[key] = ruler.make(name, length, ruler.SEED + seed,
                                                     self.count, sources)
            record = made.record(index)
        fam = ruler.family(name)
        meta = {"tokens": record.length - fam.tokens_to_generate, "record": index,
                "ruler_seed": ruler.SEED + seed}
        if essay and self.corpus is not None:
            meta["haystack"] = f"corpus {self.corpus.name} in place of RULER's essays"
        return Sample(task, length, -1.0, seed, record.input, record.answer_prefix,
                      record.outputs, f"ruler:{fam.metric}", meta, sep="", chat=False,
                      max_tokens=fam.tokens_to_generate)

    def _source(self, seed: int, chars: int) -> str:
        if self.corpus is not None:
            return self.corpus.source(chars)
        return source_text(self.haystack, seed, chars)

    def _body(self, seed: int, tokens: int) -> str:
        """The first `tokens` tokens of the haystack's source text, decoded."""
        tokens = max(tokens, 0)
        seed = 0 if self.corpus is not None else seed  # a corpus is the same for every seed
        with self._lock:
            ids = self._ids.get(seed, [])
            chars = max(tokens * 6 + 200, 4096)
            while len(ids) < tokens:
                ids = self.encode(self._source(seed, chars))
                chars *= 2
            self._ids[seed] = ids
        # trailing whitespace would merge with the "\n\n" before the question
        return self.decode(ids[:tokens]).rstrip() if tokens else ""

    def _exact(self, make: Callable[[int], str], room: int, question: str) -> str:
        """Text from `make(size)` sized so that text + question has exactly `room` + question
        tokens. BPE seams can merge or split a token, so measure and correct; when corrections
        oscillate around a seam, try the sizes nearby and keep the closest that is not over."""
        target = room + self.count("\n\n" + question)
        tried: dict[int, tuple[int, str]] = {}  # size -> (target - tokens, text)

        def attempt(size: int) -> int:
            if size not in tried:
                text = make(size)
                tried[size] = (target - self.count(text + "\n\n" + question), text)
            return tried[size][0]

        size = room
        for _ in range(6):
            diff = attempt(size)
            if diff == 0:
                return tried[size][1]
            size += diff
        last = size
        for near in sorted(range(last - 3, last + 4), key=lambda n: abs(n - last)):
            if attempt(near) == 0:
                return tried[near][1]
        _, best = min(tried.items(), key=lambda kv: (kv[1][0] < 0, abs(kv[1][0])))
        return best[1]

    def _modal(self, task: str, rng: random.Random, length: int, depth: float, seed: int,
               hay_seed: int) -> Sample:
        """A needle of one modality (a function in a code file, a fact on a PDF page, text on
        a video frame) planted in the corpus unit nearest the depth."""
        assert self.corpus is not None
        kind = {"code": "code", "pdf": "pdf", "video": "video"}[task]
        needle_for, question, value = modal_needle(task, rng)
        room = length - self.count("\n\n" + question)
        need = max(self.count(needle_for(s)) for s in self.corpus.spans_of(kind)[:8]) \
            if self.corpus.spans_of(kind) else 0
        if not need:
            raise ValueError(f"corpus {self.corpus.name} has no {kind_label(kind)} to plant a "
                             f"{task} needle in")
        if room < need + 16:
            raise ValueError(f"{length} tokens is too short for task {task}")
        where: dict = {}

        def make(size: int) -> str:
            body = self._body(hay_seed, size - need)
            text, span, at, needle = plant(self.corpus, kind, body, depth, needle_for)
            where.update(where=span.label, at=round(at / max(len(text), 1), 4), needle=needle)
            return text

        context = self._exact(make, room, question)
        return Sample(task, length, depth, seed, context, question, (value,), "all",
                      {**where, "tokens":
                       self.count(context + "\n\n" + question)})

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
