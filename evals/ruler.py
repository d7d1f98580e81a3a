"""RULER's 13 tasks made the way its own data preparation makes them, and scored the way its
evaluation scores them, so a score sits beside a published RULER table.

Source: github.com/NVIDIA/RULER at c3f5e3b (Apache 2.0): `scripts/synthetic.yaml` (the 13 task
configurations), `scripts/data/synthetic/constants.py` (templates, answer prefixes, answer
lengths), `niah.py`, `variable_tracking.py`, `common_words_extraction.py`,
`freq_words_extraction.py`, `qa.py` (the generators) and `scripts/eval/synthetic/constants.py`
(string_match_all / string_match_part). The texts below are theirs, word for word.

Same seed and same tokenizer, same prompts: every random draw happens in RULER's order, the
binary search for the haystack size included (it draws too), so record i of a task at a length
is RULER's record i. A length is RULER's `max_seq_length`: prompt plus the task's answer tokens.
The prompt is RULER's `base` model template: `input + answer_prefix`, sent as a raw completion.

Differences, each on purpose (docs/evals.md has the parity table):
- the essay tasks split the essays into sentences with a rule (end punctuation, then space)
  where RULER uses NLTK's punkt model, a download: a needle can land a sentence away;
- a haystack size that never fits raises an error where RULER's loop retries forever;
- the user's corpus can stand in for the essays, marked as such in every cell.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import re
import string
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.text import encodable

COMMIT = "c3f5e3b"
SEED = 42  # RULER's --random_seed; scoutlens's --seed S is RULER's seed 42 + S
THRESHOLD = 85.6  # Llama-2-7B at 4K: RULER's bar for the effective length


@dataclass(frozen=True)
class Family:
    template: str
    answer_prefix: str
    tokens_to_generate: int
    metric: str  # string_match_all or string_match_part


FAMILIES = {
    "niah": Family(
        "Some special magic {type_needle_v} are hidden within the following text. Make sure to "
        "memorize it. I will quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are "
        "all the special magic {type_needle_v} for {query} mentioned in the provided text?",
        " The special magic {type_needle_v} for {query} mentioned in the provided text are",
        128, "all"),
    "variable_tracking": Family(
        "Memorize and track the chain(s) of variable assignment hidden in the following text."
        "\n\n{context}\nQuestion: Find all variables that are assigned the value {query} in the "
        "text above.",
        " Answer: According to the chain(s) of variable assignment in the text above, {num_v} "
        "variables are assigned the value {query}, they are: ",
        30, "all"),
    "common_words_extraction": Family(
        "Below is a numbered list of words. In these words, some appear more often than others. "
        "Memorize the ones that appear most often.\n{context}\nQuestion: What are the 10 most "
        "common words in the above list?",
        " Answer: The top 10 words that appear most often in the list are:",
        120, "all"),
    "freq_words_extraction": Family(
        "Read the following coded text and track the frequency of each coded word. Find the "
        "three most frequently appeared coded words. {context}\nQuestion: Do not provide any "
        "explanation. Please ignore the dots '....'. What are the three most frequently "
        "appeared words in the above coded text?",
        " Answer: According to the coded text above, the three most frequently appeared words "
        "are:",
        50, "all"),
    "qa": Family(
        "Answer the question based on the given documents. Only give me the answer and do not "
        "output any other words.\n\nThe following are given documents.\n\n{context}\n\nAnswer "
        "the question based on the given documents. Only give me the answer and do not output "
        "any other words.\n\nQuestion: {query}",
        " Answer:", 32, "part"),
}


def _niah(haystack: str, k: str, v: str, nk: int = 1, nv: int = 1, nq: int = 1):
    return ("niah", {"type_haystack": haystack, "type_needle_k": k, "type_needle_v": v,
                     "num_needle_k": nk, "num_needle_v": nv, "num_needle_q": nq})


#: scripts/synthetic.yaml, in its order
CONFIGS: dict[str, tuple[str, dict]] = {
    "niah_single_1": _niah("noise", "words", "numbers"),
    "niah_single_2": _niah("essay", "words", "numbers"),
    "niah_single_3": _niah("essay", "words", "uuids"),
    "niah_multikey_1": _niah("essay", "words", "numbers", nk=4),
    "niah_multikey_2": _niah("needle", "words", "numbers"),
    "niah_multikey_3": _niah("needle", "uuids", "uuids"),
    "niah_multivalue": _niah("essay", "words", "numbers", nv=4),
    "niah_multiquery": _niah("essay", "words", "numbers", nq=4),
    "vt": ("variable_tracking", {"type_haystack": "noise", "num_chains": 1, "num_hops": 4}),
    "cwe": ("common_words_extraction", {"freq_cw": 30, "freq_ucw": 3, "num_cw": 10}),
    "fwe": ("freq_words_extraction", {"alpha": 2.0}),
    "qa_1": ("qa", {"dataset": "squad"}),
    "qa_2": ("qa", {"dataset": "hotpotqa"}),
}
TASKS = tuple(CONFIGS)

#: the files RULER downloads, by the names its download scripts give them (scripts/data/
#: synthetic/json/): what each is, where its authors publish it
FILES = {
    "PaulGrahamEssays.json": "Paul Graham's essays as {\"text\": ...}: RULER's "
                             "json/download_paulgraham_essay.py writes it",
    "squad.json": "SQuAD 2.0 dev set (rajpurkar.github.io/SQuAD-explorer/dataset/dev-v2.0.json)",
    "hotpotqa.json": "HotpotQA dev, distractor setting (curtis.ml.cmu.edu/datasets/hotpot/"
                     "hotpot_dev_distractor_v1.json)",
    "english_words.json": "RULER's json/english_words.json (git-lfs, sha256 affcd6d45fdf3cc8"
                          "43d585c99c97ad615094e760e6c4756b654bab6c73bc2eca): cwe's words past "
                          "wonderwords' list, from about 128K tokens",
}
ESSAY = "PaulGrahamEssays.json"
_QA_FILE = {"squad": "squad.json", "hotpotqa": "hotpotqa.json"}
NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
DOCUMENT = "Document {i}:\n{document}"
# niah's needle depths: np.round(np.linspace(0, 100, num=40)).astype(int)
DEPTHS = [int(d) for d in np.round(np.linspace(0, 100, num=40, endpoint=True)).astype(int)]
_MAX_TRIES = 10_000  # RULER's retry loop has no bound; a size that never fits is an error here


def family(task: str) -> Family:
    return FAMILIES[CONFIGS[task][0]]


def needs(task: str) -> str | None:
    """The file a task reads (None: made from nothing but wonderwords' word lists, or not one
    of RULER's tasks)."""
    if task not in CONFIGS:
        return None
    kind, args = CONFIGS[task]
    if kind == "niah" and args["type_haystack"] == "essay":
        return ESSAY
    return _QA_FILE.get(args.get("dataset", ""))


class RulerError(ValueError):
    """A task that cannot be made: a missing or malformed file, a length too short."""


@dataclass(frozen=True)
class Record:
    """One line of RULER's prepared file: what is sent is `input + answer_prefix`."""

    input: str
    answer_prefix: str
    outputs: tuple[str, ...]
    length: int  # RULER's: prompt tokens + the task's answer tokens


# --- scoring (scripts/eval/evaluate.py, scripts/eval/synthetic/constants.py) ----------------

def postprocess(prediction: str) -> str:
    """evaluate.py's postprocess_pred: stripped, control characters made newlines."""
    return re.sub(r"[\x00-\x1f]", "\n", prediction.strip()).strip()


def score(references: Sequence[str], metric: str, prediction: str) -> float:
    """One prediction's share of string_match_all (`all`) or string_match_part (`part`), 0-1:
    RULER averages these and multiplies by 100."""
    pred = postprocess(prediction).lower()
    hits = [1.0 if r.lower() in pred else 0.0 for r in references]
    if not hits:
        return 0.0
    return max(hits) if metric == "part" else sum(hits) / len(hits)


# --- word lists --------------------------------------------------------------------------------

def _wonderwords(name: str) -> list[str]:
    """A word list of the installed wonderwords, as RULER reads it (its private
    `_get_words_from_text_file`: the asset's lines, right-stripped)."""
    from importlib.resources import files

    text = files("wonderwords.assets").joinpath(name).read_text(encoding="utf-8")
    return [line.rstrip() for line in text.splitlines(keepends=True)]


class _Pairs(Sequence[str]):
    """niah's keys, `sorted(set(f"{adj}-{noun}"))`, without building its six million strings:
    strings sort by their adjective's `adj-` unless one such key begins another (`blue-` and
    `blue-eyed-`); those groups are sorted whole. Indexes as the list would, so
    `random.choice` draws what RULER draws."""

    def __init__(self, adjs: list[str], nouns: list[str]):
        self._nouns = sorted(set(nouns))
        groups: list[list[str]] = []
        for key in sorted({a + "-" for a in adjs}):
            if groups and key.startswith(groups[-1][0]):
                groups[-1].append(key)
            else:
                groups.append([key])
        self._groups: list[str | list[str]] = [
            g[0] if len(g) == 1 else sorted({k + n for k in g for n in self._nouns})
            for g in groups]
        self._starts = [0]
        for g in self._groups:
            self._starts.append(self._starts[-1] + (len(self._nouns) if isinstance(g, str)
                                                    else len(g)))

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, i):  # type: ignore[override]
        if not 0 <= i < len(self):
            raise IndexError(i)
        g = bisect.bisect_right(self._starts, i) - 1
        group, at = self._groups[g], i - self._starts[g]
        return group + self._nouns[at] if isinstance(group, str) else group[at]


_WORDS: dict[str, Sequence[str]] = {}


def _niah_words() -> Sequence[str]:
    if "niah" not in _WORDS:
        _WORDS["niah"] = _Pairs(_wonderwords("adjectivelist.txt"), _wonderwords("nounlist.txt"))
    return _WORDS["niah"]


def _cwe_words() -> list[str]:
    if "cwe" not in _WORDS:
        words = (_wonderwords("nounlist.txt") + _wonderwords("adjectivelist.txt")
                 + _wonderwords("verblist.txt"))
        _WORDS["cwe"] = sorted(set(words))
    return list(_WORDS["cwe"])


# --- haystack sources -------------------------------------------------------------------------

@dataclass(frozen=True)
class Sources:
    """Where the downloaded haystacks are: `folder` holds RULER's files by their names;
    `essay` (a corpus's text, by characters wanted) stands in for the essays when given."""

    folder: str | None = None
    essay: Callable[[int], str] | None = None
    essay_label: str = ""

    def path(self, name: str, task: str) -> Path:
        if not self.folder:
            raise RulerError(f"ruler-{task} reads {name} ({FILES[name]}): --data DIR holding it"
                             + (", or --haystack CORPUS for the essays" if name == ESSAY else ""))
        path = Path(self.folder) / name
        if not path.is_file():
            raise RulerError(f"{path}: no such file (ruler-{task} reads {FILES[name]})")
        return path

    def json(self, name: str, task: str):
        path = self.path(name, task)
        try:
            with path.open(encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RulerError(f"{path}: not the JSON RULER reads ({str(exc)[:120]})") from None
        if not encodable(data):
            raise RulerError(f"{path}: holds text that is not Unicode (a lone surrogate)")
        return data



def _essay_words(sources: Sources, task: str, length: int) -> list[str]:
    if sources.essay is not None:
        text = sources.essay(max(length * 8, 4096))
    else:
        data = sources.json(ESSAY, task)
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise RulerError(f"{Path(sources.folder or '') / ESSAY}: no \"text\" string")
    words = re.sub(r"\s+", " ", text).split(" ")
    longest = max(words, key=len)
    if len(longest) > MAX_WORD:  # 500 of them (RULER's step) would be a 100 MB prompt
        where = sources.essay_label or str(Path(sources.folder or "") / ESSAY)
        raise RulerError(f"{where}: a 'word' of {len(longest):,} characters; the essay tasks "
                         f"cut their haystack by words of at most {MAX_WORD:,}")
    return words


MAX_WORD = 1_000
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'\u201d\u2019)])\s+")


def sentences(text: str) -> list[str]:
    """Sentences for the needles to go between: after . ! or ? (and a closing quote), then
    space. NLTK's punkt does this with a trained model RULER downloads."""
    return [s for s in _SENTENCE_END.split(text) if s]


# --- the generators, one per family, each RULER's script in its order of draws ---------------

KEEP = 16  # records kept: a run asks in order, a few at once; a 1M-token record is ~4 MB


class Task:
    """One task at one length and seed: the binary search for the haystack size runs when it is
    made; `record(i)` makes records in order (each draws from the one stream, as RULER's loop
    does), keeping the last KEEP; an earlier one is made again from the start."""

    def __init__(self, task: str, max_seq_length: int, seed: int, count: Callable[[str], int],
                 sources: Sources):
        self.task, self.count, self.sources = task, count, sources
        kind, self.args = CONFIGS[task]
        self.family = FAMILIES[kind]
        # prepare.py: the model template (`base`: the task template alone) + answer prefix
        self.template = self.family.template + self.family.answer_prefix
        self.max_seq_length = max_seq_length
        self.ttg = self.family.tokens_to_generate
        self.seed = seed
        self._start()

    def _start(self) -> None:
        self.rng = random.Random(self.seed)  # random.seed(args.random_seed)
        self.np = np.random.RandomState(self.seed)  # np.random.seed(args.random_seed)
        self.made = 0
        self.kept: dict[int, Record] = {}
        self.setup()

    @property
    def capacity(self) -> int | None:
        """How many records the task can make (qa: its file's questions); None: no bound."""
        return None

    def record(self, index: int) -> Record:
        if index in self.kept:
            return self.kept[index]
        if index < self.made:
            self._start()
        while self.made <= index:
            self.kept[self.made] = self.next()
            self.made += 1
            self.kept.pop(self.made - 1 - KEEP, None)
        return self.kept[index]

    def setup(self) -> None:
        raise NotImplementedError

    def next(self) -> Record:
        raise NotImplementedError

    def _search(self, make: Callable[[int], str], lower: int, upper: int,
                reserve: int, limit: int) -> int | None:
        """RULER's binary search: the largest size whose prompt + reserve fits `limit`."""
        best = None
        while lower <= upper:
            mid = (lower + upper) // 2
            if self.count(make(mid)) + reserve <= limit:
                best, lower = mid, mid + 1
            else:
                upper = mid - 1
        return best

    def _fit(self, make: Callable[[int], str], size: int, step: int, reserve: int,
             limit: int | None = None) -> tuple[str, int]:
        """RULER's retry loop: `make(size)` until it fits, `step` smaller each miss while the
        size is over `step` (then the same size again: its draws differ each time)."""
        limit = self.max_seq_length if limit is None else limit
        for _ in range(_MAX_TRIES):
            text = make(size)
            length = self.count(text) + reserve
            if length <= limit:
                return text, length
            if size > step:
                size -= step
            elif length > 2 * limit:  # new draws move a size by a few tokens, not twice over
                break
        raise RulerError(f"ruler-{self.task}: {limit:,} tokens is too short for its template "
                         "and one haystack piece")

    def _split(self, text: str, length: int, outputs) -> Record:
        at = text.rfind(self.family.answer_prefix[:10])  # RULER finds it by its first 10
        return Record(text[:at], text[at:], tuple(outputs), length)


class _Niah(Task):
    def setup(self) -> None:
        a = self.args
        self.nk = max(a["num_needle_k"], a["num_needle_q"])
        self.words = _niah_words()
        self.kind = a["type_haystack"]
        if self.kind == "essay":
            self.hay = _essay_words(self.sources, self.task, self.max_seq_length)
        incremental = {"essay": 500, "noise": 25, "needle": 25}[self.kind]
        if self.kind != "essay" and self.max_seq_length < 4096:
            incremental = 5
        self.incremental = incremental
        sample, _ = self._make(incremental)
        per = self.count(sample) / incremental
        upper = max(int((self.max_seq_length / per) * 3), incremental * 2)
        best = self._search(lambda n: self._make(n)[0], incremental, upper, self.ttg,
                            self.max_seq_length)
        self.size = best if best is not None else incremental

    def _random(self, kind: str) -> str:
        if kind == "numbers":
            return str(self.rng.randint(10**6, 10**7 - 1))
        if kind == "words":
            return self.rng.choice(self.words)
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _make(self, num_haystack: int) -> tuple[str, list[str]]:
        a, rng = self.args, self.rng
        keys, values, needles = [], [], []
        for _ in range(self.nk):
            keys.append(self._random(a["type_needle_k"]))
            value = []
            for _ in range(a["num_needle_v"]):
                value.append(self._random(a["type_needle_v"]))
                needles.append(NEEDLE.format(type_needle_v=a["type_needle_v"], key=keys[-1],
                                             value=value[-1]))
            values.append(value)
        random.Random(self.seed).shuffle(needles)
        if self.kind == "essay":
            hay = self.hay
            if num_haystack <= len(hay):
                text = " ".join(hay[:num_haystack])
            else:
                repeats = (num_haystack + len(hay) - 1) // len(hay)
                text = " ".join((hay * repeats)[:num_haystack])
            sents = sentences(text.strip())
            at = [0] + sorted(int(len(sents) * (d / 100)) for d in
                              rng.sample(DEPTHS, len(needles))) + [len(sents)]
            parts = []
            for i in range(1, len(at)):
                parts.append(" ".join(sents[at[i - 1]:at[i]]))
                if i - 1 < len(needles):
                    parts.append(needles[i - 1])
            context = " ".join(parts)
        else:
            if self.kind == "noise":
                lines = [NOISE] * num_haystack
            else:
                lines = [NEEDLE.format(type_needle_v=a["type_needle_v"],
                                       key=self._random(a["type_needle_k"]),
                                       value=self._random(a["type_needle_v"]))
                         for _ in range(num_haystack)]
            for index, element in zip(sorted(rng.sample(range(num_haystack), len(needles)),
                                             reverse=True), needles, strict=False):
                lines.insert(index, element)
            context = "\n".join(lines)
        picked = rng.sample(range(self.nk), a["num_needle_q"])
        queries = [keys[i] for i in picked]
        answers = [v for i in picked for v in values[i]]
        query = (", ".join(queries[:-1]) + ", and " + queries[-1] if len(queries) > 1
                 else queries[0])
        template, kind_v = self.template, a["type_needle_v"]
        if a["num_needle_q"] * a["num_needle_v"] == 1:
            template = (template.replace("Some", "A").replace("are all", "is")
                        .replace("are", "is").replace("answers", "answer"))
            kind_v = kind_v[:-1]
        return template.format(type_needle_v=kind_v, context=context, query=query), answers

    def next(self) -> Record:
        answers: list[str] = []

        def make(n: int) -> str:
            text, answers[:] = self._make(n)
            return text

        text, length = self._fit(make, self.size, self.incremental, self.ttg)
        return self._split(text, length, answers)


class _VariableTracking(Task):
    def setup(self) -> None:
        a = self.args
        self.hops, self.chains = a["num_hops"], a["num_chains"]
        # main(): a one-sample run at 500 tokens makes the in-context example first
        example = self._example(500, 5)
        self.example = example[0] + " " + " ".join(example[1]) + "\n"
        self.example_tokens = self.count(self.example)
        incremental = 5 if self.max_seq_length < 4096 else 10
        self.incremental = incremental
        self.size = self._size(self.max_seq_length, incremental, self.example_tokens, self.ttg,
                               icl=False)

    def _chains(self, icl: bool) -> tuple[list[list[str]], list[list[str]]]:
        rng, k = self.rng, (3 if icl else 5)
        hops = min(10, self.hops) if icl else self.hops
        names = ["".join(rng.choices(string.ascii_uppercase, k=k)).upper()
                 for _ in range((hops + 1) * self.chains)]
        while len(set(names)) < self.chains * (hops + 1):
            names.append("".join(rng.choices(string.ascii_uppercase, k=k)).upper())
        out_vars, out_chains = [], []
        for i in range(0, len(names), hops + 1):
            these = names[i:i + hops + 1]
            out_vars.append(these)
            first = "12345" if icl else str(self.np.randint(10000, 99999))
            chain = [f"VAR {these[0]} = {first}"]
            for j in range(hops):
                chain.append(f"VAR {these[j + 1]} = VAR {these[j]} ")
            out_chains.append(chain)
        return out_vars, out_chains

    def _make(self, noises: int, icl: bool) -> tuple[str, list[str]]:
        names, chains = self._chains(icl)
        value = chains[0][0].split("=")[-1].strip()
        lines = [NOISE] * noises
        for chain in chains:
            spots = sorted(self.rng.sample(range(len(lines)), len(chain)))
            for spot, j in zip(spots, range(len(chain)), strict=False):
                lines.insert(spot + j, chain[j])
        context = "\n".join(lines).replace(". \n", ".\n")
        text = self.template.format(context=context, query=value, num_v=self.hops + 1)
        return text, names[0]

    def _size(self, limit: int, incremental: int, example_tokens: int, ttg: int,
              icl: bool) -> int:
        sample, _ = self._make(incremental, icl)
        per = self.count(sample) / incremental
        upper = max(int((limit / per) * 3), incremental * 2)
        best = self._search(lambda n: self._make(n, icl)[0], incremental, upper,
                            example_tokens + ttg, limit)
        return best if best is not None else incremental

    def _randomize(self, example: str) -> str:
        for item in example.strip().split()[-self.hops - 1:]:
            new = "".join(self.rng.choices(string.ascii_uppercase, k=len(item))).upper()
            example = example.replace(item, new)
        return example.replace("12345", str(self.np.randint(10000, 99999)))

    def _example(self, limit: int, incremental: int) -> tuple[str, list[str]]:
        """sys_vartrack_w_noise_random's first call: one in-context example in `limit` tokens,
        no answer tokens."""
        size = self._size(limit, incremental, 0, 0, icl=True)
        names: list[str] = []

        def make(n: int) -> str:
            text, got = self._make(n, icl=True)
            names[:] = got
            return text

        return self._fit(make, size, incremental, 0, limit)[0], names

    def next(self) -> Record:
        names: list[str] = []
        start = self.family.template[:20]

        def make(n: int) -> str:
            text, got = self._make(n, icl=False)
            names[:] = got
            cut = text.index(start)
            return text[:cut] + self._randomize(self.example) + "\n" + text[cut:]

        text, length = self._fit(make, self.size, self.incremental, self.ttg)
        return self._split(text, length, names)


class _CommonWords(Task):
    def setup(self) -> None:
        self.words = _cwe_words()
        random.Random(self.seed).shuffle(self.words)
        self._randle: list[str] | None = None
        tokens_per_word = self.count(self._make(4096)[0]) / 4096
        upper = max(int(self.max_seq_length // tokens_per_word) * 2, 20)
        best = self._search(lambda n: self._make(n)[0], 10, upper, self.ttg, self.max_seq_length)
        self.size = best if best is not None else 10

    def _randle_words(self) -> list[str]:
        if self._randle is None:
            data = self.sources.json("english_words.json", self.task)
            if not isinstance(data, dict) or not all(isinstance(w, str) for w in data.values()):
                raise RulerError(f"{self.sources.path('english_words.json', self.task)}: not a "
                                 "JSON object of words")
            self._randle = list(data.values())
        return self._randle

    def _example(self, num_words: int, common: int, uncommon: int) -> tuple[str, list[str]]:
        num_cw = self.args["num_cw"]
        pool = self.words if num_words <= len(self.words) else self._randle_words()
        full = self.rng.sample(pool, num_words)
        top, rest = full[:num_cw], full[num_cw:]
        listed = top * int(common) + rest * int(uncommon)
        random.Random(self.seed).shuffle(listed)
        return " ".join(f"{i + 1}. {w}" for i, w in enumerate(listed)), top

    def _make(self, num_words: int) -> tuple[str, list[str]]:
        a = self.args
        if self.max_seq_length < 4096:
            shots = [self._example(20, 3, 1)]
            context, answer = self._example(num_words, 6, 1)
        else:
            shots = [self._example(40, 10, 3)]
            context, answer = self._example(num_words, a["freq_cw"], a["freq_ucw"])
        done = [self.template.format(num_cw=a["num_cw"], context=c, query="") + " "
                + " ".join(f"{i + 1}. {w}" for i, w in enumerate(ans)) for c, ans in shots]
        text = self.template.format(num_cw=a["num_cw"], context=context, query="")
        return "\n".join(done) + "\n" + text, answer

    def next(self) -> Record:
        answers: list[str] = []

        def make(n: int) -> str:
            text, answers[:] = self._make(n)
            return text

        text, length = self._fit(make, self.size, 10, self.ttg)
        return self._split(text, length, answers)


ZETA_2 = math.pi ** 2 / 6  # scipy.special.zeta(2.0), the only alpha RULER's tasks use


class _FreqWords(Task):
    def setup(self) -> None:
        self.alpha = self.args["alpha"]
        if self.alpha != 2.0:
            raise RulerError("ruler-fwe: only RULER's alpha of 2.0 is made here")
        self.limit = self.max_seq_length - self.ttg
        self.vocab_size = self.limit // 50
        if self.vocab_size < 8:  # the three answers after the "..." noise word, and others
            raise RulerError(f"ruler-fwe: {self.max_seq_length:,} tokens is too short (its "
                             "vocabulary is the length / 50)")
        self.words = self._generate(-1, self.limit // 32)[2]

    def _text(self, vocab: list[str], num_words: int) -> tuple[str, list[str]]:
        k = np.arange(1, len(vocab) + 1)
        counts = (num_words * (k ** -self.alpha) / ZETA_2).astype(int)
        words = [x for w, n in zip(vocab, counts, strict=True) for x in [w] * n]
        random.Random(self.seed).shuffle(words)
        return self.template.format(context=" ".join(words), query=""), vocab[1:4]

    def _generate(self, num_words: int, incremental: int) -> tuple[str, list[str], int]:
        vocab = ["".join(self.rng.choices(string.ascii_lowercase, k=6))
                 for _ in range(self.vocab_size)]
        while len(set(vocab)) < self.vocab_size:
            vocab.append("".join(self.rng.choices(string.ascii_lowercase, k=6)))
        vocab = sorted(set(vocab))
        random.Random(self.seed).shuffle(vocab)
        vocab[0] = "..."
        if num_words > 0:
            text, _ = self._text(vocab, num_words)
            while self.count(text) > self.limit:
                if num_words <= 0:
                    raise RulerError(f"ruler-fwe: {self.max_seq_length:,} tokens is too short")
                num_words -= incremental
                text, _ = self._text(vocab, num_words)
        else:
            num_words = self.limit // 6
            text, _ = self._text(vocab, num_words)
            while self.count(text) < self.limit:
                num_words += incremental
                text, _ = self._text(vocab, num_words)
            num_words -= incremental
        text, answer = self._text(vocab, num_words)
        return text, answer, num_words

    def next(self) -> Record:
        text, answer, _ = self._generate(self.words, self.limit // 32)
        return self._split(text, self.count(text) + self.ttg, answer)


class _QA(Task):
    def setup(self) -> None:
        dataset = self.args["dataset"]
        data = self.sources.json(_QA_FILE[dataset], self.task)
        try:
            self.qas, self.docs = (_read_squad(data) if dataset == "squad"
                                   else _read_hotpotqa(data))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            path = self.sources.path(_QA_FILE[dataset], self.task)
            raise RulerError(f"{path}: not the {dataset} layout RULER reads (no field "
                             f"{str(exc)[:60]})") from None
        if not self.qas:
            raise RulerError(f"{self.sources.path(_QA_FILE[dataset], self.task)}: no questions")
        sample = self._make(0, 10)[0]
        per = self.count(sample) / 10
        upper = max(int((self.max_seq_length / per) * 3), 20)
        best = self._search(lambda n: self._make(0, n)[0], 10, upper, self.ttg,
                            self.max_seq_length)
        self.size = best if best is not None else 10

    def _make(self, index: int, num_docs: int) -> tuple[str, list[str]]:
        qa = self.qas[index]
        docs, more = qa["context"], qa.get("more_context", [])
        if num_docs < len(self.docs):
            if (num_docs - len(docs)) > len(more):
                taken = set(docs + more)
                extra = [i for i in range(len(self.docs)) if i not in taken]
                picked = docs + more + self.rng.sample(
                    extra, max(0, num_docs - len(docs) - len(more)))
            else:
                picked = docs + self.rng.sample(more, num_docs - len(docs))
            chosen = [self.docs[i] for i in picked]
        else:
            repeats = (num_docs + len(self.docs) - 1) // len(self.docs)
            chosen = (self.docs * repeats)[:num_docs]
        random.Random(self.seed).shuffle(chosen)
        context = "\n\n".join(DOCUMENT.format(i=i + 1, document=d)
                              for i, d in enumerate(chosen))
        return self.template.format(context=context, query=qa["query"]), qa["outputs"]

    @property
    def capacity(self) -> int | None:
        return len(self.qas)

    def next(self) -> Record:
        index = self.made
        if index >= len(self.qas):
            raise RulerError(f"ruler-{self.task}: the file has {len(self.qas)} questions")
        answers: list[str] = []

        def make(n: int) -> str:
            text, answers[:] = self._make(index, n)
            return text

        text, length = self._fit(make, self.size, 10, self.ttg)
        return self._split(text, length, answers)


def _text(value):
    """A field RULER reads as text: anything else is the wrong layout (a TypeError here)."""
    if not isinstance(value, str):
        raise TypeError(f"a text field holds {type(value).__name__}")
    return value


def _read_squad(data: dict) -> tuple[list[dict], list[str]]:
    docs = sorted({_text(p["context"]) for d in data["data"] for p in d["paragraphs"]})
    at = {c: i for i, c in enumerate(docs)}
    qas = []
    for d in data["data"]:
        more = [at[p["context"]] for p in d["paragraphs"]]
        for p in d["paragraphs"]:
            for q in p["qas"]:
                if not q["is_impossible"]:
                    qas.append({"query": _text(q["question"]),
                                "outputs": [_text(a["text"]) for a in q["answers"]],
                                "context": [at[p["context"]]],
                                "more_context": [i for i in more if i != at[p["context"]]]})
    return qas, docs


def _read_hotpotqa(data: list) -> tuple[list[dict], list[str]]:
    docs = sorted({f"{_text(t)}\n{''.join(map(_text, p))}" for d in data for t, p in d["context"]})
    at = {c: i for i, c in enumerate(docs)}
    qas = [{"query": _text(d["question"]), "outputs": [_text(d["answer"])],
            "context": [at[f"{t}\n{''.join(p)}"] for t, p in d["context"]]} for d in data]
    return qas, docs


_KINDS = {"niah": _Niah, "variable_tracking": _VariableTracking,
          "common_words_extraction": _CommonWords, "freq_words_extraction": _FreqWords,
          "qa": _QA}


def make(task: str, max_seq_length: int, seed: int, count: Callable[[str], int],
         sources: Sources | None = None) -> Task:
    """RULER's task `task` at `max_seq_length` with `seed` (RULER's --random_seed), counted by
    `count`; `.record(i)` is line i of the file RULER's prepare.py writes."""
    if task not in CONFIGS:
        raise RulerError(f"unknown RULER task {task!r} ({', '.join(TASKS)})")
    if not 0 <= seed < 2**32:
        raise RulerError(f"RULER's seed is 42 + --seed and must be 0 to 2**32 - 1: --seed "
                         f"{seed - SEED} gives {seed}")
    return _KINDS[CONFIGS[task][0]](task, max_seq_length, seed, count, sources or Sources())

