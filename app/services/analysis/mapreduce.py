"""Model calls of an analysis: the map calls (one per part), then reduce levels that merge
their notes in groups that fit the window until one is left. Finished calls are kept by the
step store, so a rerun takes them instead of calling again; calls run concurrently on a
backend that batches (a server) and in turn on the in-process model."""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

from engine.types import Backend, CompletionRequest, EngineError, ModelTokenizer

MAX_CONCURRENT = 8  # calls in flight on a server that batches
#: progress(stage, done, total, detail), as the ingest pipeline reports it
Progress = Callable[[str, int, int, str], None]


class Steps(Protocol):
    """Where finished calls are kept (app.services.analysis.store)."""

    def get(self, level: int, position: int, key: str) -> str | None: ...

    def put(self, level: int, position: int, key: str, output: str, usage: dict,
            seconds: float) -> None: ...


@dataclass
class Tally:
    """What the calls cost: made now, taken from an earlier run, and their usage."""

    calls: int = 0
    resumed: int = 0
    levels: int = 0
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 0, "cached_tokens": 0,
                                                 "completion_tokens": 0})
    seconds: float = 0.0
    #: (level, position) of the calls whose answer stopped at max_tokens (kept: a cut answer
    #: is the model's, but what it left out must not read as "not in the document")
    cut_off: set[tuple[int, int]] = field(default_factory=set)


def key_of(request: CompletionRequest) -> str:
    """A call's identity: the same request on resume is the same call."""
    return hashlib.sha256(json.dumps(asdict(request), sort_keys=True,
                                     default=list).encode()).hexdigest()


def run_calls(requests: list[CompletionRequest], level: int, backend: Backend, steps: Steps,
              tally: Tally, progress: Progress | None = None,
              stage: str = "map") -> list[str]:
    """Each request's answer, in order: taken from `steps` when an earlier run finished it,
    else generated (and kept at once, so an interruption loses only the calls in flight)."""
    outputs: list[str | None] = [None] * len(requests)
    keys = [key_of(r) for r in requests]
    for i, key in enumerate(keys):
        outputs[i] = steps.get(level, i, key)
        if outputs[i] is not None and (level, i) in getattr(steps, "cut_off", ()):
            tally.cut_off.add((level, i))
    tally.resumed += sum(o is not None for o in outputs)
    todo = [i for i, o in enumerate(outputs) if o is None]
    done = len(requests) - len(todo)
    if progress:
        progress(stage, done, len(requests), f"{stage} calls")

    def call(i: int) -> str:
        started = time.perf_counter()
        completion = backend.stream(requests[i]).collect()
        if completion.incomplete:  # broke off: a partial answer is not kept as a finished call
            raise EngineError(f"a {stage} call failed ({completion.error or 'no answer'})")
        seconds = time.perf_counter() - started
        usage = {"prompt_tokens": completion.usage.prompt_tokens,
                 "cached_tokens": completion.usage.cached_tokens,
                 "completion_tokens": completion.usage.completion_tokens}
        if completion.finish_reason == "length":
            tally.cut_off.add((level, i))
            usage["finish_reason"] = "length"
        steps.put(level, i, keys[i], completion.text, usage, seconds)
        for k in tally.usage:
            tally.usage[k] += usage[k]
        tally.seconds += seconds
        tally.calls += 1
        return completion.text

    workers = min(MAX_CONCURRENT, len(todo)) if getattr(backend, "concurrent", False) else 1
    if workers <= 1:
        for i in todo:
            outputs[i] = call(i)
            done += 1
            if progress:
                progress(stage, done, len(requests), f"{stage} calls")
    else:
        for i, text in _together(call, todo, workers):
            outputs[i] = text
            done += 1
            if progress:
                progress(stage, done, len(requests), f"{stage} calls")
    return [o or "" for o in outputs]


def _together(call: Callable[[int], str], todo: list[int], workers: int):
    """(i, call(i)) as the calls finish, `workers` at a time, in daemon threads: when the
    caller stops (Ctrl-C, a failed call), no call begins after, and the process need not wait
    for those in flight (their answers are not kept; a resume makes them again)."""
    waiting: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in todo:
        waiting.put(i)
    finished: queue.SimpleQueue[tuple[int, str | None, BaseException | None]] = \
        queue.SimpleQueue()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                i = waiting.get_nowait()
            except queue.Empty:
                return
            try:
                finished.put((i, call(i), None))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                finished.put((i, None, exc))
                return

    for _ in range(workers):
        threading.Thread(target=work, name="scoutlens-analyze", daemon=True).start()
    try:
        for _ in todo:
            while True:
                try:
                    i, text, error = finished.get(timeout=0.5)  # Ctrl-C gets through
                    break
                except queue.Empty:
                    continue
            if error is not None:
                raise error
            yield i, text or ""
    finally:
        stop.set()


def reduce_all(notes: list[str], make: Callable[[list[str]], CompletionRequest],
               budget: int, tok: ModelTokenizer, backend: Backend, steps: Steps,
               tally: Tally, progress: Progress | None = None) -> str:
    """One text from many notes: groups of notes that fit one call are merged, level by
    level, until one is left."""
    level = 0
    while len(notes) > 1:
        level += 1
        groups = _groups(notes, make, budget, tok)
        if len(groups) == len(notes):  # nothing merges: each note fills a call on its own
            raise EngineError("the notes of one part do not fit the model's window together "
                              "with another's: use a model with a longer window or a lower "
                              "--max-tokens")
        notes = run_calls([make(g) for g in groups], level, backend, steps, tally, progress,
                          stage=f"reduce {level}")
    tally.levels = level
    return notes[0] if notes else ""


def _groups(notes: list[str], make: Callable[[list[str]], CompletionRequest], budget: int,
            tok: ModelTokenizer) -> list[list[str]]:
    """Consecutive notes in groups whose merge request fits the budget (counted)."""
    groups: list[list[str]] = []
    group: list[str] = []
    for note in notes:
        if group and tok.count_request(make(group + [note])).tokens > budget:
            groups.append(group)
            group = []
        group.append(note)
    if group:
        groups.append(group)
    return groups
