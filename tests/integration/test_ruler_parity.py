"""RULER parity (issue 30, item 1): RULER's own data preparation scripts (tests/fixtures/ruler,
NVIDIA/RULER at c3f5e3b) run beside the port on the bundled model's tokenizer with RULER's
seed, and every prompt, answer prefix, expected output and counted length must be identical:
the six offline tasks, and the essay and qa tasks on small files in their published layouts
(the essays with the port's sentence rule on both sides: NLTK's punkt is a download). The keys'
word list is checked whole against the list RULER builds."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_ruler_task_makes_rulers_prompts_at_4k(model_dir):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ruler_parity.py"),
                           "--lengths", "4096", "--samples", "2", "--files", "--json",
                           "--tokenizer", str(model_dir)],
                          capture_output=True, text=True, cwd=ROOT, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout)
    assert [r["task"] for r in rows] == list(__import__("evals.ruler").ruler.TASKS)
    for r in rows:
        assert r["identical"] == r["samples"] == 2, r
        lo, hi = r["prompt_tokens"]
        assert 2500 < lo <= hi <= 4096, r  # RULER's sizes fill the length, answer reserved


def test_the_keys_word_list_is_the_one_ruler_builds():
    from wonderwords import random_word

    from evals import ruler

    nouns = random_word._get_words_from_text_file("nounlist.txt")
    adjs = random_word._get_words_from_text_file("adjectivelist.txt")
    words = sorted(set(f"{adj}-{noun}" for adj in adjs for noun in nouns))  # niah.py's
    pairs = ruler._Pairs(adjs, nouns)
    assert len(pairs) == len(words)
    rng = random.Random(0)
    for i in [0, len(words) - 1, *(rng.randrange(len(words)) for _ in range(100_000))]:
        assert pairs[i] == words[i]
