"""What a hostile tester found in the published suites (issue 30), each fixed: a FIFO named like
an MRCR part, lone surrogates and non-text fields in a suite's files, markup in a run id, an
essay of one enormous word, paths the system refuses, LongBench's empty answers and group
fields, RULER's single-task summary name, a resumed run's tokenizer, a reasoning model's space
after thinking, MRCR's byte bound and bins, fwe's shortest lengths."""

from __future__ import annotations

import json
import os

import pytest
from fakes import FakeOpenAI, Reply
from helpers import last_line_error
from helpers import wide_cli as cli

from app.services import eval_runs
from evals import mrcr, ruler, ruler_report
from evals.tasks import score_text
from unit.test_longbench import data_file, record
from unit.test_mrcr import conversation, write_part


def _run(*args, max_model_len=32768, replies=()):
    server = FakeOpenAI(max_model_len=max_model_len).start()
    server.script(*[Reply(deltas=(r,)) for r in replies])
    try:
        done = cli("eval", "run", "--endpoint", server.url, "--tokenizer", "cl100k", *args)
        sent = list(server.completions)
    finally:
        server.close()
    return done, sent


def test_bad_files_are_one_line_before_anything_is_sent(tmp_path, scoutlens_home):
    fifo = tmp_path / "fifo" / "2needle"
    fifo.mkdir(parents=True)
    os.mkfifo(fifo / "2needle_0.parquet")  # a FIFO would block open() for ever
    done, sent = _run("--task", "mrcr-2", "--data", str(tmp_path / "fifo"), "--lengths", "8k")
    last_line_error(done, "no MRCR file for 2 needles")
    lb = tmp_path / "lb"
    lb.mkdir()
    (lb / "data.json").write_text(json.dumps([record(0, "A", "easy", "short", "x")])
                                  .replace('"x"', '"\\ud800"'))
    done, sent2 = _run("--task", "longbench-v2", "--data", str(lb), "--lengths", "2k")
    last_line_error(done, "record 1: text that is not Unicode")
    (lb / "data.json").write_text(json.dumps([record(0, "A", "easy:x", "short", "x")]))
    done, sent3 = _run("--task", "longbench-v2", "--data", str(lb), "--lengths", "2k")
    last_line_error(done, "difficulty 'easy:x'")
    ru = tmp_path / "ru"
    ru.mkdir()
    squad = {"data": [{"title": "t", "paragraphs": [{"context": "c " * 50, "qas": [
        {"question": "q", "answers": [{"text": 7}], "is_impossible": False}]}]}]}
    (ru / "squad.json").write_text(json.dumps(squad))
    done, sent4 = _run("--task", "ruler-qa_1", "--data", str(ru), "--lengths", "1k")
    last_line_error(done, "squad.json: not the squad layout RULER reads")
    (ru / "squad.json").write_text(json.dumps(squad).replace("7", '"\\udc00"'))
    done, sent5 = _run("--task", "ruler-qa_1", "--data", str(ru), "--lengths", "1k")
    last_line_error(done, "squad.json: holds text that is not Unicode")
    (ru / "PaulGrahamEssays.json").write_text(json.dumps({"text": "w" * 200_000 + " end."}))
    done, sent6 = _run("--task", "ruler-niah_single_2", "--data", str(ru), "--lengths", "2k")
    last_line_error(done, "a 'word' of 200,000 characters")
    done, sent7 = _run("--task", "longbench-v2", "--data", "/tmp/" + "a" * 300, "--lengths",
                       "2k")
    last_line_error(done, "not a usable path")
    done, sent8 = _run("--task", "ruler-fwe", "--lengths", "100")
    last_line_error(done, "ruler-fwe: 100 tokens is too short")
    assert not (sent + sent2 + sent3 + sent4 + sent5 + sent6 + sent7 + sent8)
    assert eval_runs.list_runs() == []
    listed = cli("eval", "data", str(tmp_path / "fifo" / "2needle" / "2needle_0.parquet"))
    last_line_error(listed, "not a folder")


def test_markup_in_a_run_id_is_text(scoutlens_home):
    done, _ = _run("--task", "ruler-niah_single_1", "--lengths", "1k", "--run-id", "[/]",
                   replies=(" 1",))
    assert done.returncode == 0, done.stderr
    assert "run [/]: 1 cells done" in done.stdout
    listed = cli("eval", "list")
    assert listed.returncode == 0 and "[/]" in listed.stdout
    report = cli("eval", "report", "[/]")
    assert report.returncode == 0 and "eval [/]" in report.stdout


def test_a_resumed_run_keeps_its_tokenizer(scoutlens_home):
    done, _ = _run("--task", "ruler-vt", "--lengths", "1k", "--run-id", "keep", replies=("x",))
    assert done.returncode == 0, done.stderr
    again = cli("eval", "run", "--run-id", "keep", "--tokenizer", "o200k", "--endpoint",
                "http://127.0.0.1:9/v1")
    last_line_error(again, "run keep counts its lengths with cl100k", "drop --tokenizer")


def test_longbench_leaves_out_empty_answers_as_pred_py_does(tmp_path, scoutlens_home):
    data = data_file(tmp_path / "lb")
    done, _ = _run("--task", "longbench-v2", "--data", str(data), "--lengths", "1k",
                   "--samples", "2", "--run-id", "empty", "--concurrency", "1",
                   replies=("The correct answer is (B)", ""))
    assert done.returncode == 0, done.stderr
    assert eval_runs.longbench_rows("empty") == {("longbench-v2", 1024): [("easy", "short",
                                                                          1.0)]}


def test_one_ruler_task_writes_summary_task_csv():
    rows = [ruler_report.TaskScore("vt", 50.0, "0/2")]
    assert ruler_report.summary_name(rows) == "summary-vt.csv"
    assert ruler_report.summary_name(rows * 2) == "summary.csv"


def test_a_reasoning_models_reply_after_thinking_keeps_mrcrs_prefix():
    reply = "<think>the first poem</think>\n\nabc123Owls fly."
    assert score_text(("abc123Owls fly.",), "mrcr:abc123", reply) == 1.0


def test_mrcr_bins_count_bytes_and_take_only_its_bins(tmp_path):
    cjk = [{"role": "user", "content": "写一首诗。" + "鱻" * 1500},
           {"role": "assistant", "content": "好"}, {"role": "user", "content": "第一首"}]
    write_part(tmp_path / "2needle" / "2needle_0.parquet", [(cjk, "p好", "p")])
    data = mrcr.Data(str(tmp_path))
    (rec,) = data.records(2, 8192, 1)  # ~1,500 characters, over 4,096 tokens: the 8K bin
    assert len(json.dumps(cjk, ensure_ascii=False)) < 4096 < rec.tokens <= 8192
    with pytest.raises(mrcr.MRCRError, match="6,000 is not one"):
        data.records(2, 6000, 1)
    write_part(tmp_path / "2needle" / "2needle_1.parquet",
               [(conversation(1500, "owls", "q")[:-1], "qa", "q")])
    with pytest.raises(mrcr.MRCRError, match="2needle_1.parquet: row 1: its conversation"):
        mrcr.Data(str(tmp_path)).records(2, 8192, 2)


def test_rulers_seed_range_is_named():
    with pytest.raises(ruler.RulerError, match="42 \\+ --seed"):
        ruler.make("vt", 1024, ruler.SEED - 43, len)
