"""LongBench v2 from its published data file (issue 30, item 2): the authors' prompts word for
word, their answer extraction and result table run from their own files (tests/fixtures/
longbench, THUDM/LongBench at 2e00731), the middle truncation, a run of all three variants
through a stand-in server that records each request (chain of thought's second call included),
its result.txt, and a local copy's mistakes, each one line with nothing sent or stored."""

from __future__ import annotations

import ast
import json
import random
import re
import subprocess
import sys
from pathlib import Path

from fakes import FakeOpenAI, Reply
from helpers import last_line_error
from helpers import wide_cli as cli

from app.services import eval_runs
from evals import longbench
from evals.tasks import score_text

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "longbench"


def _their_function(name: str):
    """A function of the authors' pred.py, taken from its source (the script itself imports
    datasets, openai and torch at the top)."""
    tree = ast.parse((FIXTURE / "pred.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    scope = {"re": re}
    exec(compile(ast.Module([node], []), "pred.py", "exec"), scope)
    return scope[name]


def record(i: int, answer: str, difficulty: str, length: str, context: str) -> dict:
    return {"_id": f"id{i}", "domain": "Code Repository Understanding", "sub_domain": "x",
            "difficulty": difficulty, "length": length, "question": f" Which module {i}? ",
            "choice_A": "alpha ", "choice_B": "beta", "choice_C": "gamma", "choice_D": "delta",
            "answer": answer, "context": context}


def data_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    long = "def handler(request):\n    return request.body\n" * 200
    rows = [record(0, "B", "easy", "short", long), record(1, "C", "hard", "medium", "tiny text"),
            record(2, "A", "hard", "long", long + "$Q$ stays text")]
    (folder / "data.json").write_text(json.dumps(rows))
    return folder


def test_the_prompts_are_the_authors_word_for_word():
    for name, text in (("0shot", longbench.ZERO_SHOT), ("0shot_cot", longbench.COT),
                       ("0shot_cot_ans", longbench.COT_ANSWER),
                       ("0shot_no_context", longbench.NO_CONTEXT)):
        assert (FIXTURE / "prompts" / f"{name}.txt").read_text(encoding="utf-8") == text


def test_answers_are_extracted_as_pred_py_extracts_them():
    theirs = _their_function("extract_answer")
    rng = random.Random(2)
    pieces = ["The correct answer is ", "(B)", "B", "**", "(E)", "C.", " so", "the correct "
              "answer is (A)", "\n", "The correct answer is (", "D)"]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        assert longbench.extract_answer(text) == theirs(text), text
    assert longbench.score("B", "The correct answer is **(B)**") == 1.0
    assert score_text(("B",), "longbench2:easy:short", "<think>The correct answer is (B)"
                      "</think>The correct answer is (C)") == 0.0  # thinking left out


def test_the_result_table_is_result_pys(tmp_path):
    rng = random.Random(4)
    preds = [{"difficulty": rng.choice(["easy", "hard"]),
              "length": rng.choice(["short", "medium", "long"]), "pred": "A",
              "judge": rng.random() < 0.4} for _ in range(200)]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "model.jsonl").write_text("\n".join(json.dumps(p) for p in preds))
    subprocess.run([sys.executable, str(FIXTURE / "result.py")], cwd=tmp_path, check=True)
    ours = longbench.result_txt([("model", longbench.results(
        [(p["difficulty"], p["length"], float(p["judge"])) for p in preds]))])
    assert (tmp_path / "result.txt").read_text() == ours


def test_a_long_prompt_keeps_its_first_and_last_halves():
    ids = list(range(11))
    decode = lambda x: ",".join(map(str, x))  # noqa: E731
    assert longbench.truncate("p", 4, lambda _: ids, decode) == "0,1,9,10"
    assert longbench.truncate("p", 5, lambda _: ids, decode) == "0,1,8,9,10"  # pred.py's halves
    assert longbench.truncate("p", 11, lambda _: ids, decode) == "p"


def test_a_run_of_all_three_variants(tmp_path, scoutlens_home):
    from app.services.tokencache import tokenizer

    data = data_file(tmp_path / "lb")
    tok = tokenizer("cl100k")
    server = FakeOpenAI(max_model_len=4096).start()
    # record order: task, then sample: 0-shot x2, cot x2 (two calls each), no-context x2
    server.script(Reply(deltas=("The correct answer is (B)",)),
                  Reply(deltas=("The correct answer is B",)),
                  Reply(deltas=("  It reads the body.  ",)), Reply(deltas=("The correct answer "
                                                                            "is (B)",)),
                  Reply(deltas=("Hmm.",)), Reply(deltas=("I think (C)",)),
                  Reply(deltas=("The correct answer is (D)",)),
                  Reply(deltas=("The correct answer is (C)",)))
    try:
        done = cli("eval", "run", "--endpoint", server.url, "--task",
                   "longbench-v2,longbench-v2-cot,longbench-v2-nocontext", "--data", str(data),
                   "--lengths", "512", "--samples", "2", "--run-id", "lb", "--concurrency", "1",
                   "--tokenizer", "cl100k")
        sent = [s.body for s in server.completions]
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    items = longbench.Data(str(data)).items
    full = longbench.fill(longbench.ZERO_SHOT, items[0], items[0].context)
    ids = tok.encode(full)
    assert len(ids) > 512
    first = sent[0]["messages"]
    assert first == [{"role": "user", "content": tok.decode(ids[:256] + ids[-256:])}]
    assert sent[0]["max_tokens"] == 128
    assert sent[1]["messages"][0]["content"] == longbench.fill(longbench.ZERO_SHOT, items[1],
                                                               "tiny text")
    # chain of thought: 1,024 tokens of reasoning, then the answer asked without the document
    assert sent[2]["max_tokens"] == 1024 and sent[3]["max_tokens"] == 128
    assert sent[3]["messages"][0]["content"] == longbench.fill(
        longbench.COT_ANSWER, items[0], cot="It reads the body.")
    assert "The text is too long and omitted here." in sent[3]["messages"][0]["content"]
    assert sent[6]["messages"][0]["content"] == longbench.fill(longbench.NO_CONTEXT, items[0])
    scores = {(c.task, c.sample): c.score for c in eval_runs.cells_of("lb")}
    assert scores == {("longbench-v2", 0): 1.0, ("longbench-v2", 1): 0.0,
                      ("longbench-v2-cot", 0): 1.0, ("longbench-v2-cot", 1): 0.0,
                      ("longbench-v2-nocontext", 0): 0.0, ("longbench-v2-nocontext", 1): 1.0}
    report = cli("eval", "report", "lb", "--out", str(tmp_path / "rep"))
    assert report.returncode == 0, report.stderr
    lines = (tmp_path / "rep" / "longbench-v2" / "512" / "result.txt").read_text().splitlines()
    assert lines[0] == "Model\tOverall\tEasy\tHard\tShort\tMedium\tLong"
    assert sorted(lines[1:]) == sorted([
        "fake-model\t50.0\t100.0\t0.0\t100.0\t0.0\t",
        "fake-model_cot\t50.0\t100.0\t0.0\t100.0\t0.0\t",
        "fake-model_no_context\t50.0\t0.0\t100.0\t0.0\t100.0\t"])
    assert "LongBench v2" in report.stdout


def test_mistakes_with_the_data_file_are_one_line(tmp_path, scoutlens_home):
    server = FakeOpenAI(max_model_len=4096).start()
    base = ("eval", "run", "--endpoint", server.url, "--lengths", "1k", "--tokenizer", "cl100k",
            "--task", "longbench-v2")
    folder = tmp_path / "lb"
    try:
        last_line_error(cli(*base), "reads LongBench v2's data.json: --data DIR")
        last_line_error(cli(*base, "--data", str(folder)), "LongBench v2 data folder not found")
        folder.mkdir()
        last_line_error(cli(*base, "--data", str(folder)), "data.json: no such file")
        (folder / "data.json").write_text("[{")
        last_line_error(cli(*base, "--data", str(folder)), "data.json: not LongBench v2's JSON")
        (folder / "data.json").write_text('[{"_id": "x"}]')
        last_line_error(cli(*base, "--data", str(folder)), "record 1 lacks the string fields")
        (folder / "data.json").write_text(json.dumps([record(0, "E", "easy", "short", "c")]))
        last_line_error(cli(*base, "--data", str(folder)), "record 1: answer 'E' is not A-D")
        data_file(folder)
        last_line_error(cli(*base, "--data", str(folder), "--samples", "4"),
               "holds 3 records; sample 4 was asked for")
        last_line_error(cli(*base, "--data", str(folder), "--lengths", "4k"),
               "4,096 do not fit the model's window of 4,096")
        sent = server.completions
    finally:
        server.close()
    assert not sent and eval_runs.list_runs() == []


