"""OpenAI MRCR from its published files (issue 30, item 3): the dataset card's grade (the
hash-prefix rule, then SequenceMatcher), its o200k bins, the conversation sent as chat
messages to a stand-in server that records it, and a local copy's mistakes, each one line
with nothing sent or stored."""

from __future__ import annotations

import json
from difflib import SequenceMatcher
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fakes import FakeOpenAI, Reply
from helpers import last_line_error
from helpers import wide_cli as cli

from app.services import eval_runs
from evals import mrcr
from evals.tasks import expand_tasks, score_text
from ingest.tokenizers import load_tokenizer


def cards_grade(response, answer, random_string_to_prepend) -> float:
    """The grade function of the openai/mrcr dataset card, as published."""
    if not response.startswith(random_string_to_prepend):
        return 0
    response = response.removeprefix(random_string_to_prepend)
    answer = answer.removeprefix(random_string_to_prepend)
    return float(SequenceMatcher(None, response, answer).ratio())


def conversation(words: int, topic: str, prefix: str) -> list[dict]:
    body = " ".join(f"{topic}{i % 7}" for i in range(words))
    return [{"role": "user", "content": f"Write a poem about {topic}."},
            {"role": "assistant", "content": body},
            {"role": "user", "content": "Write a poem about rocks."},
            {"role": "assistant", "content": "Rocks sit <|im_start|> still."},
            {"role": "user", "content": f"Prepend {prefix} to the 1st (1 indexed) poem about "
                                        f"{topic}. Do not include any other text."}]


def write_part(path: Path, rows: list[tuple[list[dict], str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "prompt": [json.dumps(m) for m, _, _ in rows], "answer": [a for _, a, _ in rows],
        "random_string_to_prepend": [p for _, _, p in rows],
        "n_needles": [2] * len(rows)}), path)


def published(root: Path) -> Path:
    """2needle/2needle_{0,1,10}.parquet: a record too small for the 8K bin, two in it (one in
    part 1, one in part 10, read after part 1 as the parts are numbered), one over it."""
    small = conversation(100, "tapirs", "aaa111")
    first = conversation(1500, "owls", "bbb222")
    second = conversation(1700, "newts", "ccc333")
    big = conversation(3000, "yaks", "ddd444")
    write_part(root / "2needle" / "2needle_0.parquet", [(small, "aaa111short poem", "aaa111")])
    write_part(root / "2needle" / "2needle_10.parquet",
               [(second, "ccc333newts newts", "ccc333"), (big, "ddd444y", "ddd444")])
    write_part(root / "2needle" / "2needle_1.parquet", [(first, "bbb222owls owls", "bbb222")])
    return root


def test_grading_is_the_cards():
    cases = [("abcHello world", "abcHello world", "abc"), ("Hello world", "abcHello", "abc"),
             ("abcHelo wrld", "abcHello world", "abc"), ("abc", "abcX", "abc"), ("", "", "")]
    for response, answer, prefix in cases:
        assert mrcr.grade(response, answer, prefix) == cards_grade(response, answer, prefix)
        assert score_text((answer,), f"mrcr:{prefix}", response) == cards_grade(
            response, answer, prefix)
    assert expand_tasks(["mrcr"]) == ("mrcr-2", "mrcr-4", "mrcr-8")


def test_bins_are_o200k_tokens_of_the_messages(tmp_path):
    data = mrcr.Data(str(published(tmp_path)))
    o200k = load_tokenizer("o200k")
    records = data.records(2, 8192, 2)
    assert [r.prefix for r in records] == ["bbb222", "ccc333"]  # part 1 before part 10
    for r in records:
        assert r.tokens == sum(o200k.count(c) for _, c in r.messages)
        assert 4096 < r.tokens <= 8192
    assert data.records(2, 16384, 1)[0].prefix == "ddd444"
    with pytest.raises(mrcr.MRCRError, match="2 records of 2 needles fall in the bin up to "
                                             "8,192 tokens; sample 3 was asked for"):
        data.records(2, 8192, 3)


def test_a_run_sends_the_conversation_and_grades_the_reply(tmp_path, scoutlens_home):
    from app.services.tokencache import tokenizer

    data = published(tmp_path / "mrcr")
    records = mrcr.Data(str(data)).records(2, 8192, 2)
    # an 8K window runs the 8K bin: a bin's upper bound is not its conversations' size, which
    # are counted, each, against the window
    server = FakeOpenAI(max_model_len=8192).start()
    server.script(Reply(deltas=("bbb222owls owls",)), Reply(deltas=("newts newts",)))
    try:
        done = cli("eval", "run", "--endpoint", server.url, "--task", "mrcr-2", "--data",
                   str(data), "--lengths", "8k", "--samples", "2", "--run-id", "mr",
                   "--concurrency", "1", "--tokenizer", "cl100k")
        sent = [s.body for s in server.completions]
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert [b["messages"] for b in sent] == [[{"role": r, "content": c} for r, c in rec.messages]
                                             for rec in records]
    cl100k = tokenizer("cl100k")
    assert [b["max_tokens"] for b in sent] == [2 * cl100k.count(rec.answer) + 64
                                               for rec in records]
    scores = sorted((c.sample, c.score) for c in eval_runs.cells_of("mr"))
    assert scores == [(0, 1.0), (1, 0.0)]  # the second reply lost its hash prefix


def test_mistakes_with_a_local_copy_are_one_line(tmp_path, scoutlens_home):
    server = FakeOpenAI(max_model_len=32768).start()
    base = ("eval", "run", "--endpoint", server.url, "--lengths", "8k", "--tokenizer", "cl100k",
            "--task", "mrcr-2")
    root = tmp_path / "mrcr"
    try:
        last_line_error(cli(*base), "reads OpenAI MRCR's published files: --data DIR")
        last_line_error(cli(*base, "--data", str(root)), "MRCR data folder not found")
        root.mkdir()
        last_line_error(cli(*base, "--data", str(root)), "no MRCR file for 2 needles")
        part = root / "2needle" / "2needle_0.parquet"
        part.parent.mkdir()
        part.write_text("not parquet")
        last_line_error(cli(*base, "--data", str(root)), "not a parquet file MRCR publishes")
        pq.write_table(pa.table({"prompt": ["[]"]}), part)
        last_line_error(cli(*base, "--data", str(root)), "lacks the columns answer, "
                                               "random_string_to_prepend")
        write_part(part, [([{"role": "user", "content": "x"}], "a", "p")])
        pq.write_table(pa.table({"prompt": ["{" + "x" * 5000], "answer": ["a"],
                                 "random_string_to_prepend": ["p"]}), part)
        last_line_error(cli(*base, "--data", str(root)), "row 1: its prompt is not the JSON list")
        write_part(part, [(conversation(1500, "owls", "p")[:-1], "a", "p")])
        last_line_error(cli(*base, "--data", str(root)), "does not end with a user turn")
        write_part(part, [(conversation(1500, "owls", "p"), "pa", "p")])
        last_line_error(cli(*base, "--data", str(root), "--samples", "2"), "sample 2 was asked for")
        sent = server.completions
    finally:
        server.close()
    assert not sent and eval_runs.list_runs() == []


