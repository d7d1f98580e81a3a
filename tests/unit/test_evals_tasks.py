"""Eval task generators: exact lengths, answers recoverable from the prompt, depths, scoring."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from evals.tasks import TASKS, Generator, score
from ingest.tokenizers import load_tokenizer


@pytest.fixture(scope="module")
def gen():
    tok = load_tokenizer("cl100k")
    return Generator(tok.encode, tok.decode)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("length", [1024, 4096])
def test_lengths_are_exact_and_answers_are_in_the_prompt(gen, task, length):
    s = gen.sample(task, length, 0.4, seed=3)
    assert abs(gen.count(s.prompt) - length) <= 2  # exact up to a BPE seam
    assert s.meta["tokens"] == gen.count(s.prompt)
    if task == "vt":
        first = re.search(rf"VAR {s.answers[0]} = (\d+)\.", s.context)
        assert first and first.group(1) in s.question
        for prev, name in zip(s.answers, s.answers[1:], strict=False):
            assert f"VAR {name} = VAR {prev}." in s.context
    elif task in ("cwe", "fwe"):
        words = re.search(r"(?:Word list|Coded text): ([a-z ]+)\.", s.context).group(1).split()
        top = [w for w, _ in Counter(words).most_common(len(s.answers))]
        assert set(top) == set(s.answers)
    else:
        assert all(a in s.context for a in s.answers)
    assert score(s, " ".join(s.answers)) == 1.0
    assert score(s, "I do not know") == 0.0


@pytest.mark.parametrize("depth", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_the_needle_lands_at_the_depth_asked(gen, depth):
    s = gen.sample("niah", 4096, depth, seed=5)
    at = s.context.index(s.meta["needle"]) / len(s.context)
    assert abs(at - depth) < 0.05


def test_deterministic_from_the_seed(gen):
    a, b = gen.sample("multikey", 2048, 0.5, seed=9), gen.sample("multikey", 2048, 0.5, seed=9)
    assert a == b
    assert gen.sample("multikey", 2048, 0.5, seed=10).answers != a.answers


def test_scoring_all_and_part(gen):
    mv = gen.sample("multivalue", 1024, seed=1)  # "all": the share of values present
    assert score(mv, " ".join(mv.answers[:2])) == pytest.approx(2 / len(mv.answers))
    qa = gen.sample("qa", 1024, seed=1)  # "part": any answer is enough
    assert qa.metric == "part" and score(qa, f"It was {qa.answers[0].lower()}.") == 1.0


def test_bad_requests(gen):
    with pytest.raises(ValueError, match="unknown task"):
        gen.sample("nope", 1024)
    with pytest.raises(ValueError, match="too short"):
        gen.sample("multiquery", 40)
