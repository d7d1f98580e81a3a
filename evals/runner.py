"""Run a grid of eval cells against a backend: generate, send, score, hand each result back.

Cells are ordered by (task, length, sample, depth descending) so that consecutive requests share
the longest haystack prefix (the needle is the first difference), which a server's prefix cache
or the embedded KV cache reuses; a haystack does not depend on the length, so a length also
reuses the shorter one before it. With concurrency, each group's deepest cell (the whole
haystack before its needle) goes first and alone, and the group's other depths follow it in
parallel, so running them together never costs the cache hit. Lengths that do not fit the
window with the answer reserve are refused before anything is sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, fields
from itertools import groupby

from engine.types import Backend, CompletionRequest, EngineError
from evals.babilong import ANSWER_TOKENS as BABILONG_ANSWER
from evals.longbench import ANSWER_TOKENS as LB_ANSWER
from evals.longbench import COT_TOKENS
from evals.tasks import (
    BABILONG,
    MRCR,
    PIPELINE_TASKS,
    RAW,
    RULER,
    SUITE_TASKS,
    Generator,
    Sample,
    score_text,
)

#: suites' own answer lengths (LongBench v2's pred.py), over --max-tokens
ANSWER_TOKENS = {"longbench-v2": LB_ANSWER, "longbench-v2-cot": COT_TOKENS,
                 "longbench-v2-nocontext": LB_ANSWER,
                 **{t: BABILONG_ANSWER for t in BABILONG}}
DEPTHLESS = ("multikey", "multivalue", "multiquery", "vt", "cwe", "fwe", *SUITE_TASKS)


@dataclass(frozen=True)
class EvalConfig:
    tasks: tuple[str, ...] = ("niah",)
    lengths: tuple[int, ...] = (1024, 2048, 4096)
    depths: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    samples: int = 1
    haystack: str = "prose"
    max_tokens: int = 32
    seed: int = 0
    concurrency: int = 4
    tokenizer: str = ""  # what counted the lengths: `server:URL`, `embedded`, `cl100k`, ...
    data: str = ""  # a folder of a published suite's files (BABILong), for its tasks
    keep_thinking: bool = False  # score a reasoning model's thinking block with its answer
    #: how RULER's prompt goes: `base` (its base model template: the text as a raw completion)
    #: or `chat` (its OpenAI client: the whole text as one user message)
    ruler_template: str = "base"
    #: answer tokens for BABILong, LongBench v2 and MRCR in place of their authors' (a reasoning
    #: model needs room to think); None: theirs. RULER's lengths hold its own, so it keeps them
    suite_max_tokens: int | None = None

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, data: dict) -> EvalConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
                      if k in names})


@dataclass(frozen=True)
class Cell:
    task: str
    length: int
    depth: float
    sample: int

    @property
    def key(self) -> tuple:
        return (self.task, self.length, round(self.depth, 4), self.sample)


@dataclass
class CellResult:
    cell: Cell
    prompt_hash: str
    answers: tuple[str, ...]
    metric: str
    response: str = ""
    score: float | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0
    status: str = "done"
    error: str | None = None


def plan_cells(config: EvalConfig) -> list[Cell]:
    cells = []  # a length, depth or task given twice is one cell, not a duplicate
    for task in dict.fromkeys(config.tasks):
        depths = (-1.0,) if task in DEPTHLESS else config.depths
        for length in sorted(set(config.lengths)):
            for sample in range(config.samples):
                for depth in sorted({round(d, 4) for d in depths}, reverse=True):
                    cells.append(Cell(task, length, depth, sample))
    return cells


def answer_tokens(config: EvalConfig, task: str, own: int | None = None) -> int:
    """A cell's answer tokens: a suite's own (`own`, or its table's) unless the run gives
    `suite_max_tokens` (never for RULER, whose lengths hold its own); else --max-tokens."""
    own = own or ANSWER_TOKENS.get(task)
    if own is None:
        return config.max_tokens
    return own if task in RULER or not config.suite_max_tokens else config.suite_max_tokens


#: tasks whose length is not their prompt's size: a retrieval cell's is the corpus it searches
#: (meant to exceed the window), a BABILong file's is nominal and an MRCR length is a bin's
#: upper bound; the prompts of the last two are counted against the window before a send
NOMINAL = (*PIPELINE_TASKS, *BABILONG, *MRCR)


def needs(config: EvalConfig, task: str, length: int, reserve: int = 64,
          answer: int | None = None) -> int:
    """The window a cell needs: a RULER length already holds its answer tokens (its
    max_seq_length); other tasks' lengths are the prompt, so the answer and a reserve add."""
    if task in RULER:
        return length
    return length + answer_tokens(config, task, answer) + reserve


def too_long(config: EvalConfig, window: int | None, reserve: int = 64) -> list[int]:
    """Lengths some task the model reads whole cannot fit in `window` (a retrieval cell's
    length is the corpus it searches, which is meant to exceed it)."""
    if window is None:
        return []
    return sorted({n for n in config.lengths for t in config.tasks
                   if t not in NOMINAL and needs(config, t, n, reserve) > window})


def check_window(config: EvalConfig, window: int | None, reserve: int = 64) -> None:
    over = too_long(config, window, reserve)
    if over:
        task = next(t for t in config.tasks if t not in NOMINAL
                    and needs(config, t, over[0], reserve) > window)
        answer = ("RULER's answer tokens inside each length" if task in RULER
                  else f"{answer_tokens(config, task)} answer tokens reserved for {task}")
        raise EngineError(f"lengths {', '.join(f'{n:,}' for n in over)} do not fit the "
                          f"model's window of {window:,} tokens with {answer}: drop them or "
                          "use a model with a longer window")


def _sample(gen: Generator, cell: Cell, config: EvalConfig) -> Sample:
    depth = cell.depth if cell.depth >= 0 else 0.5  # depthless tasks place their own needles
    # a suite's samples are records of one file per seed (RULER draws them in sequence)
    seed = config.seed if cell.task in SUITE_TASKS else config.seed * 1000 + cell.sample
    return gen.sample(cell.task, cell.length, depth, seed=seed, index=cell.sample)


def run_cells(cells: list[Cell], backend: Backend, gen: Generator, config: EvalConfig,
              concurrency: int = 1) -> Iterator[CellResult]:
    """Results in completion order; a failing request is a failed cell, not a crash."""

    def one(cell: Cell) -> CellResult:
        try:
            s = _sample(gen, cell, config)
        except (EngineError, ValueError) as exc:  # e.g. the server's /tokenize went away
            return CellResult(cell, "", (), "all", status="failed", error=str(exc))
        text = json.dumps([s.history, s.prompt]) if s.history else s.prompt
        h = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        result = CellResult(cell, h, s.answers, (RAW if config.keep_thinking else "") + s.metric)
        try:
            chat = config.ruler_template == "chat" if cell.task in RULER else s.chat
            c = backend.stream(CompletionRequest(
                prompt=s.sep + s.question, prefix=s.context, chat=chat, history=s.history,
                max_tokens=answer_tokens(config, cell.task, s.max_tokens))).collect()
        except EngineError as exc:
            result.status, result.error = "failed", str(exc)
            return result
        if s.then and not c.incomplete:  # LongBench v2's chain of thought: ask for the answer
            first = c
            try:
                c = backend.stream(CompletionRequest(
                    prompt=s.then.replace("$COT$", first.text.strip()), chat=s.chat,
                    max_tokens=answer_tokens(config, cell.task, s.then_tokens))).collect()
            except EngineError as exc:
                result.status, result.error = "failed", str(exc)
                return result
            c.timings.ttft_s, c.timings.total_s = (first.timings.ttft_s,
                                                   first.timings.total_s + c.timings.total_s)
            c.usage = first.usage
        if c.incomplete:
            result.status, result.error = "failed", c.error or "incomplete answer"
        result.response = c.text
        result.score = (score_text(s.answers, result.metric, c.text)
                        if result.status == "done" else None)
        result.prompt_tokens, result.cached_tokens = c.usage.prompt_tokens, c.usage.cached_tokens
        result.ttft_s, result.total_s = c.timings.ttft_s, c.timings.total_s
        return result

    if concurrency <= 1:
        for cell in cells:
            yield one(cell)
        return
    groups = [list(g) for _, g in groupby(cells, key=lambda c: (c.task, c.length, c.sample))]
    with ThreadPoolExecutor(concurrency) as pool:
        running: set[Future] = set()
        for group in groups:
            if len(group) == 1:  # nothing to share within the group: no need to wait
                running.add(pool.submit(one, group[0]))
                continue
            lead = pool.submit(one, group[0])
            while not lead.done():  # hand back what finishes while the leader prefills
                finished, _ = wait(running | {lead}, return_when=FIRST_COMPLETED)
                for f in finished - {lead}:
                    running.discard(f)
                    yield f.result()
            yield lead.result()
            running |= {pool.submit(one, c) for c in group[1:]}
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                yield f.result()
