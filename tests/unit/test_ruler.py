"""RULER's own 13 tasks (issue 30, item 1): the port's pieces against RULER's own code (its
string match, pandas' summary.csv, the keys' word list), a run through `scoutlens eval run`
against a stand-in server that records the exact raw-completion request, RULER's report files,
and the mistakes a user makes with RULER's downloaded files, each one line with nothing sent
or stored. tests/integration/test_ruler_parity.py runs RULER's generators beside the port."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest
from fakes import FakeOpenAI, Reply
from helpers import last_line_error
from helpers import wide_cli as cli

from app.services import eval_runs
from evals import ruler, ruler_report
from evals.corpus import CorpusText
from evals.tasks import RULER, RULER_STYLE, Generator, expand_tasks, score_text

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ruler"




def _rulers_eval_constants():
    path = FIXTURE / "scripts" / "eval" / "synthetic" / "constants.py"
    spec = importlib.util.spec_from_file_location("ruler_eval_constants", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_task_names_and_aliases():
    assert len(ruler.TASKS) == 13 and ruler.TASKS[0] == "niah_single_1"
    assert ruler.TASKS[-1] == "qa_2"
    assert expand_tasks(["ruler"]) == RULER == tuple(f"ruler-{t}" for t in ruler.TASKS)
    assert expand_tasks(["ruler-style"]) == RULER_STYLE and "vt" in RULER_STYLE
    offline = [t for t in ruler.TASKS if ruler.needs(t) is None]
    assert offline == ["niah_single_1", "niah_multikey_2", "niah_multikey_3", "vt", "cwe", "fwe"]
    assert ruler.needs("qa_1") == "squad.json" and ruler.needs("qa_2") == "hotpotqa.json"
    assert ruler.needs("niah_multiquery") == ruler.ESSAY


def test_scoring_is_rulers_string_match_on_its_postprocessed_prediction():
    theirs = _rulers_eval_constants()
    rng = random.Random(3)
    words = ["Paris", "paris", "1234567", "blue-eyed-dog", "\x07", "\n", " ", "ß", "SS", "x"]
    for _ in range(400):
        refs = [rng.choice(words[:4] + words[7:]) for _ in range(rng.randint(1, 4))]
        pred = "".join(rng.choice(words) for _ in range(rng.randint(0, 8)))
        # evaluate.py postprocesses each prediction, then the metric scores it x 100
        post = ruler.postprocess(pred)
        for metric, fn in (("all", theirs.string_match_all), ("part", theirs.string_match_part)):
            assert round(ruler.score(refs, metric, pred) * 100, 2) == fn([post], [refs])
            assert score_text(tuple(refs), f"ruler:{metric}", pred) == ruler.score(
                refs, metric, pred)
    assert ruler.postprocess("  a\x00b\tc \n") == "a\nb\nc"


def test_the_keys_word_list_indexes_as_the_sorted_set_would():
    adjs = ["blue", "blue-eyed", "ad hoc", "ad", "old", "old-fashioned", "old", "x-rated", "x",
            "teeny", "teeny-tiny", "a'b", "a"]
    nouns = ["dog", "eyed-cat", "cat", "apple", "tiny-house", "zebra", "dog"]
    pairs = ruler._Pairs(adjs, nouns)
    expected = sorted({f"{a}-{n}" for a in adjs for n in nouns})
    assert len(pairs) == len(expected)
    assert [pairs[i] for i in range(len(pairs))] == expected
    rng = random.Random(5)
    assert [random.Random(1).choice(pairs) for _ in range(3)] == [
        random.Random(1).choice(expected) for _ in range(3)]
    assert rng.sample(range(len(pairs)), 5)  # a sequence random draws from
    with pytest.raises(IndexError):
        pairs[len(pairs)]


def test_the_summary_csv_is_what_rulers_evaluate_writes():
    import pandas as pd

    rows = [ruler_report.TaskScore("niah_single_1", 100.0, "0/2"),
            ruler_report.TaskScore("vt", 66.67, "1/2"), ruler_report.TaskScore("fwe", 0.0, "2/2")]
    # scripts/eval/evaluate.py's write_evaluation
    dfs = [["Tasks", *[r.task for r in rows]], ["Score", *[r.score for r in rows]],
           ["Nulls", *[r.nulls for r in rows]]]
    assert ruler_report.summary_csv(rows) == pd.DataFrame(dfs).to_csv(index=False)


def test_the_table_row_follows_rulers_effective_length_rule():
    def at(*scores):
        return [ruler_report.TaskScore("vt", s, "0/1") for s in scores]

    by_length = {4096: at(100, 90), 8192: at(90, 82), 16384: at(70, 60), 32768: at(100, 100)}
    row = ruler_report.table(by_length)
    assert row.averages == {4096: 95.0, 8192: 86.0, 16384: 65.0, 32768: 100.0}
    assert row.effective == "8K"  # 32K passes again, but every shorter length must pass too
    assert row.average == 86.5
    assert row.wavg_inc == round((95 + 2 * 86 + 3 * 65 + 4 * 100) / 10, 2)
    assert row.wavg_dec == round((4 * 95 + 3 * 86 + 2 * 65 + 100) / 10, 2)
    assert ruler_report.table({4096: at(100), 8192: at(90)}).effective == ">8K"
    assert ruler_report.table({4096: at(10)}).effective == "<4K"
    md = ruler_report.table_markdown(row, "m")
    assert "|m|8K|<ins>95.0</ins>|<ins>86.0</ins>|65.0|<ins>100.0</ins>|86.5|" in md


def _count():
    from app.services.tokencache import tokenizer

    tok = tokenizer("cl100k")
    return lambda text: len(tok.encode(text))


def test_a_run_end_to_end_sends_rulers_prompt_as_a_raw_completion(tmp_path, scoutlens_home):
    count = _count()
    expected = {t: ruler.make(t, 4096, ruler.SEED, count) for t in ("niah_single_1", "vt")}
    answers = [expected["niah_single_1"].record(i).outputs for i in range(2)]
    vt = expected["vt"].record(0).outputs
    server = FakeOpenAI(max_model_len=4096).start()
    server.script(Reply(deltas=(f" {answers[0][0]}.",)), Reply(deltas=("\x00 nothing",)),
                  Reply(deltas=(" ".join(vt[:3]),)), Reply(deltas=("",)))
    try:
        done = cli("eval", "run", "--endpoint", server.url, "--task",
                   "ruler-niah_single_1,ruler-vt", "--lengths", "4k", "--samples", "2",
                   "--run-id", "rl", "--concurrency", "1", "--tokenizer", "cl100k")
        sent = server.completions
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert [s.path for s in sent] == ["/v1/completions"] * 4  # RULER's base template: raw text
    want = [expected[t].record(i) for t in ("niah_single_1", "vt") for i in range(2)]
    assert [s.body["prompt"] for s in sent] == [r.input + r.answer_prefix for r in want]
    assert [s.body["max_tokens"] for s in sent] == [128, 128, 30, 30]  # RULER's answer lengths
    assert all(s.body.get("temperature", 0) == 0 for s in sent)
    assert want[0].input.startswith("A special magic number is hidden")
    assert want[0].answer_prefix.startswith(" The special magic number for ")
    cells = {(c.task, c.sample): c.score for c in eval_runs.cells_of("rl")}
    assert cells == {("ruler-niah_single_1", 0): 1.0, ("ruler-niah_single_1", 1): 0.0,
                     ("ruler-vt", 0): 0.6, ("ruler-vt", 1): 0.0}
    assert eval_runs.rescore("rl", metric="part").changed == 0  # RULER's rule is kept
    # RULER's own files beside ours
    report = cli("eval", "report", "rl", "--out", str(tmp_path / "rep"))
    assert report.returncode == 0, report.stderr
    summary = (tmp_path / "rep" / "ruler" / "4096" / "summary.csv").read_text()
    assert summary.splitlines() == ["0,1,2", "Tasks,niah_single_1,vt", "Score,50.0,30.0",
                                    "Nulls,0/2,1/2"]
    assert "|<4K|40.0|40.0|40.0|40.0|" in (tmp_path / "rep" / "ruler" / "table.md").read_text()
    assert "RULER" in report.stdout and "40.00" in report.stdout
    data = json.loads(cli("eval", "report", "rl", "--json").stdout)
    assert data["ruler"]["table"]["averages"] == {"4096": 40.0}
    # a later run of the same grid that answers nothing: compare pairs the suite's cells
    server = FakeOpenAI(max_model_len=4096).start()
    server.script(*[Reply(deltas=("no",)) for _ in range(4)])
    try:
        again = cli("eval", "run", "--endpoint", server.url, "--task",
                    "ruler-niah_single_1,ruler-vt", "--lengths", "4k", "--samples", "2",
                    "--run-id", "rl2", "--concurrency", "1", "--tokenizer", "cl100k")
    finally:
        server.close()
    assert again.returncode == 0, again.stderr
    diff = json.loads(cli("eval", "compare", "rl", "rl2", "--json").stdout)
    assert diff["cells"] == 2 and diff["worse"] == 2 and diff["mean_delta"] < 0


def test_rulers_files_are_read_from_data_and_mistakes_are_one_line(tmp_path, scoutlens_home):
    server = FakeOpenAI(max_model_len=8192).start()
    base = ("eval", "run", "--endpoint", server.url, "--lengths", "4k", "--tokenizer", "cl100k",
            "--run-id", "bad")
    data = tmp_path / "ruler-data"
    data.mkdir()
    try:
        last_line_error(cli(*base, "--task", "ruler-qa_1"), "ruler-qa_1 reads squad.json",
                       "--data DIR")
        last_line_error(cli(*base, "--task", "ruler-niah_single_2"),
                       "reads PaulGrahamEssays.json", "--haystack CORPUS")
        last_line_error(cli(*base, "--task", "ruler-qa_2", "--data", str(data)),
                       "hotpotqa.json: no such file")
        (data / "squad.json").write_text('{"data": [')
        last_line_error(cli(*base, "--task", "ruler-qa_1", "--data", str(data)),
                       "squad.json: not the JSON RULER reads")
        (data / "squad.json").write_text('{"data": [{"title": "x"}]}')
        last_line_error(cli(*base, "--task", "ruler-qa_1", "--data", str(data)),
                       "squad.json: not the squad layout RULER reads")
        (data / "squad.json").write_text(json.dumps({"data": [{"title": "t", "paragraphs": [
            {"context": "c " * 50, "qas": [{"question": "q", "answers": [{"text": "c"}],
                                            "is_impossible": False}]}]}]}))
        last_line_error(cli(*base, "--task", "ruler-qa_1", "--data", str(data), "--samples",
                           "2"), "ruler-qa_1: its file has 1 questions; 2 samples were asked")
        (data / "PaulGrahamEssays.json").write_text('{"text": 3}')
        last_line_error(cli(*base, "--task", "ruler-niah_single_2", "--data", str(data)),
                       'no "text" string')
        last_line_error(cli(*base, "--task", "ruler-vt", "--lengths", "16k"),
                       "16,384 do not fit the model's window of 8,192",
                       "RULER's answer tokens inside each length")
        sent = server.completions
    finally:
        server.close()
    assert not sent
    assert eval_runs.list_runs() == []  # refused before a run was stored


def test_a_corpus_stands_in_for_the_essays_and_says_so():
    count = _count()
    text = "Alpha beta gamma. Delta epsilon! Zeta eta theta? " * 40
    corpus = CorpusText("notes", text, ())
    gen = Generator(lambda t: list(range(count(t))), lambda ids: "", corpus)
    s = gen.sample("ruler-niah_single_2", 2048, -1.0, seed=0, index=0)
    assert s.meta["haystack"] == "corpus notes in place of RULER's essays"
    assert "Delta epsilon!" in s.context and s.chat is False and s.max_tokens == 128
    assert s.meta["tokens"] + 128 <= 2048
    assert s.answers[0] in s.context and s.metric == "ruler:all"
    # the same record again, and record 1 continues RULER's one stream of draws
    assert gen.sample("ruler-niah_single_2", 2048, -1.0, seed=0, index=0) == s
    made = ruler.make("niah_single_2", 2048, ruler.SEED, count,
                      ruler.Sources(essay=corpus.source))
    assert made.record(1).input == gen.sample("ruler-niah_single_2", 2048, -1.0, seed=0,
                                              index=1).context


def test_a_length_too_short_for_the_template_is_an_error_not_a_hang():
    with pytest.raises(ruler.RulerError, match="too short"):
        ruler.make("niah_multikey_3", 64, ruler.SEED, _count()).record(0)


def test_the_chat_template_sends_rulers_text_as_one_user_message(scoutlens_home):
    record = ruler.make("fwe", 4096, ruler.SEED + 1, _count()).record(0)
    server = FakeOpenAI(max_model_len=4096).start()
    server.script(Reply(deltas=(" ".join(record.outputs),)))
    try:
        done = cli("eval", "run", "--endpoint", server.url, "--task", "ruler-fwe", "--lengths",
                   "4k", "--seed", "1", "--ruler-template", "chat", "--run-id", "chat",
                   "--tokenizer", "cl100k", "--suite-max-tokens", "999")
        sent = server.completions
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert [s.path for s in sent] == ["/v1/chat/completions"]
    assert sent[0].body["messages"] == [{"role": "user",
                                         "content": record.input + record.answer_prefix}]
    assert sent[0].body["max_tokens"] == 50  # RULER's own: its lengths hold it
    assert [c.score for c in eval_runs.cells_of("chat")] == [1.0]
    assert eval_runs.summary("chat").config["ruler_template"] == "chat"  # a resume keeps it


def test_a_task_keeps_its_last_records_and_makes_an_earlier_one_again():
    made = ruler.make("vt", 1024, ruler.SEED, _count())
    first = [made.record(i) for i in range(ruler.KEEP + 4)]
    assert len(made.kept) == ruler.KEEP  # memory bounded however many samples a run asks
    assert made.record(0) == first[0]  # made again from the start: the same draws
    assert made.record(ruler.KEEP + 3) == first[-1]
    assert len({r.input for r in first}) == len(first)
