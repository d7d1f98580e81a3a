"""BABILong from its published files (issue 30, item 4): the files in each layout the authors
publish, their prompt to the character as one user message, their scoring rule, a run through
`scoutlens eval run` against a stand-in server (its requests seen), an exact-count dry run, and
the mistakes a user makes with a local copy, each one line."""

from __future__ import annotations

import json

import pytest
from fakes import FakeOpenAI, Reply
from helpers import one_line_error
from helpers import wide_cli as cli

from app.services import eval_runs
from evals import babilong
from evals.tasks import Generator, expand_tasks, score_text

HAY = "The river ran past the mill. " * 40


def record(fact: str, question: str, target: str) -> dict:
    return {"input": f"  {HAY}{fact} {HAY}\n", "question": question, "target": target}


QA1 = [record("Mary went to the kitchen.", "Where is Mary?", "kitchen"),
       record("John travelled to the office.", "Where is John?", "office")]
QA5 = [record("Fred gave the milk to Bill.", "Who received the milk?", "Bill")]


def published(root, layout: str = "json"):
    """A local copy laid out as RMT-team/babilong publishes it."""
    if layout == "json":  # data/<task>/<length>.json: a JSON array, or JSON Lines
        (root / "data" / "qa1").mkdir(parents=True)
        (root / "data" / "qa1" / "1k.json").write_text(json.dumps(QA1))
        (root / "data" / "qa5").mkdir(parents=True)
        (root / "data" / "qa5" / "1k.json").write_text("\n".join(json.dumps(r) for r in QA5))
    else:  # <length>/<task>-00000-of-00001.parquet
        import pyarrow as pa
        import pyarrow.parquet as pq

        (root / "1k").mkdir(parents=True)
        for name, rows in (("qa1", QA1), ("qa5", QA5)):
            table = pa.Table.from_pylist([{"target": r["target"], "question": r["question"],
                                           "input": r["input"]} for r in rows])
            pq.write_table(table, root / "1k" / f"{name}-00000-of-00001.parquet")
    return root


def authors_input(task: str, rec: dict) -> str:
    """The authors' formatted input, written out as their template and scripts give it."""
    p = babilong.PROMPTS[task]
    return (f"{p['instruction']}\n\n{p['examples']}\n\n{p['post_prompt']}\n\n<context>\n"
            f"{rec['input'].strip()}\n</context>\n\nQuestion: {rec['question']}").strip()


@pytest.mark.parametrize("layout", ["json", "parquet"])
def test_every_published_layout_reads_the_same_records(tmp_path, layout):
    data = babilong.Data(published(tmp_path, layout))
    got = [data.record("qa1", 1024, i) for i in range(2)] + [data.record("qa5", 1024, 0)]
    assert [(r.question, r.target) for r in got] == [
        ("Where is Mary?", "kitchen"), ("Where is John?", "office"), ("Who received the milk?",
                                                                      "Bill")]


def test_the_prompt_is_the_authors_formatted_input_split_before_the_question(tmp_path):
    gen = Generator(lambda s: s.split(), lambda ids: " ".join(ids),
                    data=str(published(tmp_path)))
    for task, rec in (("qa1", QA1[0]), ("qa5", QA5[0])):
        s = gen.sample(f"babilong-{task}", 1024, index=0)
        assert s.prompt == authors_input(task, rec)
        assert s.question == f"Question: {rec['question']}" and s.sep == ""
        assert s.context.endswith("</context>\n\n") and s.depth == -1.0
        assert s.meta["tokens"] == len(authors_input(task, rec).split())
    bare = babilong.prompt_parts("qa1", babilong.Record(**QA1[0]), "bare")
    assert "".join(bare) == (f"<context>\n{QA1[0]['input'].strip()}\n</context>\n\n"
                             "Question: Where is Mary?")


@pytest.mark.parametrize(("task", "question", "target", "answer", "expected"), [
    ("qa1", "Where is Mary?", "kitchen", "The most recent location of Mary is kitchen.", 1.0),
    ("qa1", "Where is Mary?", "kitchen", "KITCHEN", 1.0),
    ("qa1", "Where is Mary?", "kitchen", "kitchen or office", 0.0),  # two labels: not it
    ("qa1", "Where is Mary?", "kitchen", "office. Then the kitchen.", 0.0),  # first sentence
    ("qa1", "Where is Mary?", "kitchen", "Mary is in the <context> kitchen", 0.0),
    ("qa1", "Where is Mary?", "kitchen", "I do not know", 0.0),
    # a label the question names is never the answer, so naming it again costs nothing
    ("qa3", "Where was the apple before the kitchen?", "bathroom",
     "Before the kitchen the apple was in the bathroom.", 1.0),
    ("qa5", "Who received the milk?", "Bill", "Bill", 1.0),
    ("qa5", "Who received the milk?", "Bill", "Fred gave it to Bill", 0.0),
    ("qa5", "What did Fred give?", "apple,milk", "milk and apple", 1.0),  # every part, only
    ("qa5", "What did Fred give?", "apple,milk", "milk", 0.0),
])
def test_scoring_follows_the_authors_rule(task, question, target, answer, expected):
    stored = babilong.metric(task, question)
    assert score_text([target], stored, answer) == expected
    assert babilong.score(target, answer, stored) == expected


def test_the_stored_metric_carries_what_rescoring_needs():
    assert babilong.metric("qa3", "Where was the apple before the kitchen?") == \
        "babilong:qa3:kitchen"
    assert babilong.metric("qa5", "Who gave Fred the milk?") == "babilong:qa5:Fred,milk"
    assert expand_tasks(["babilong"]) == tuple(f"babilong-qa{i}" for i in range(1, 6))
    assert [babilong.label(n) for n in (0, 1024, 131072, 1 << 20, 10 << 20)] == [
        "0k", "1k", "128k", "1M", "10M"]


def test_a_run_end_to_end(tmp_path, scoutlens_home):
    data = published(tmp_path / "babilong")
    server = FakeOpenAI(max_model_len=32768).start()
    server.script(Reply(deltas=("The most recent location of Mary is kitchen.",)),
                  Reply(deltas=("The most recent location of John is kitchen.",)),
                  Reply(deltas=("Bill",)))
    try:
        done = cli("eval", "run", "--endpoint", server.url, "--task", "babilong",
                   "--data", str(data), "--lengths", "1k", "--samples", "2", "--run-id", "bl",
                   "--concurrency", "1", "--max-tokens", "20")
    finally:
        server.close()
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]  # qa2-qa4 have no file here: refused first
    assert last.startswith("error: no BABILong file for qa2 at 1k") and "data/qa2/1k.json" in last
    assert not server.completions
    # the tasks that have files, run alone
    server = FakeOpenAI(max_model_len=32768).start()
    server.script(Reply(deltas=("The most recent location of Mary is kitchen.",)),
                  Reply(deltas=("The most recent location of John is kitchen.",)))
    try:
        done = cli("eval", "run", "--endpoint", server.url, "--task", "babilong-qa1",
                   "--data", str(data), "--lengths", "1k", "--samples", "2", "--run-id", "bl",
                   "--concurrency", "1")  # the authors' 20 answer tokens, not --max-tokens
        sent = [s.body for s in server.completions]
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    contents = [b["messages"][-1]["content"] for b in sent]
    assert contents == [authors_input("qa1", QA1[0]), authors_input("qa1", QA1[1])]
    assert all(b["max_tokens"] == 20 and b.get("temperature", 0) == 0 for b in sent)
    cells = sorted(eval_runs.cells_of("bl"), key=lambda c: c.sample)
    assert [c.score for c in cells] == [1.0, 0.0]
    assert eval_runs.rescore("bl").changed == 0  # from the stored fields alone


def test_a_dry_run_counts_the_files_prompts_exactly(tmp_path, scoutlens_home):
    from app.services.tokencache import tokenizer

    data = published(tmp_path / "babilong")
    done = cli("eval", "run", "--task", "babilong-qa1,babilong-qa5", "--data", str(data),
               "--lengths", "1k", "--samples", "1", "--dry-run", "--tokenizer", "cl100k")
    assert done.returncode == 0, done.stderr
    tok = tokenizer("cl100k")
    exact = len(tok.encode(authors_input("qa1", QA1[0]))) + len(
        tok.encode(authors_input("qa5", QA5[0])))
    assert f"2 requests, {exact:,} prompt tokens" in done.stdout


def test_mistakes_with_a_local_copy_are_one_line(tmp_path, scoutlens_home):
    data = published(tmp_path / "babilong")
    base = ("eval", "run", "--dry-run", "--lengths", "1k", "--tokenizer", "cl100k")
    one_line_error(cli(*base, "--task", "babilong-qa1"), "reads BABILong's published files",
                   "--data DIR")
    one_line_error(cli(*base, "--task", "babilong-qa1", "--data", str(tmp_path / "nope")),
                   "BABILong data folder not found")
    one_line_error(cli(*base, "--task", "babilong-qa1", "--data", str(data), "--samples", "3"),
                   "holds 2 records; sample 3 was asked for")
    (data / "data" / "qa1" / "1k.json").write_text('[{"input": "x", "question": 3}]')
    one_line_error(cli(*base, "--task", "babilong-qa1", "--data", str(data)),
                   "record 1 lacks the string fields input, question and target")
    (data / "data" / "qa1" / "1k.json").write_text('{"input": "x"\nnot json')
    one_line_error(cli(*base, "--task", "babilong-qa1", "--data", str(data)),
                   "1k.json: record 1 is not JSON")
    (data / "data" / "qa1" / "1k.json").write_text("")
    one_line_error(cli(*base, "--task", "babilong-qa1", "--data", str(data)), "holds no records")


def test_a_parquet_file_without_the_fields_is_one_line(tmp_path, scoutlens_home):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "1k").mkdir()
    pq.write_table(pa.Table.from_pylist([{"text": "x"}]), tmp_path / "1k" / "qa1-0.parquet")
    (tmp_path / "1k" / "qa5-0.parquet").write_bytes(b"PAR1 not really")
    base = ("eval", "run", "--dry-run", "--lengths", "1k", "--tokenizer", "cl100k", "--data",
            str(tmp_path), "--task")
    one_line_error(cli(*base, "babilong-qa1"), "qa1-0.parquet: record 1 lacks the string fields")
    one_line_error(cli(*base, "babilong-qa5"), "qa5-0.parquet: not a BABILong parquet file")


def test_a_reasoning_models_thinking_is_left_out_of_the_score_unless_kept():
    think = "<think>Mary went to the kitchen, then? 7291</think> The code is 1234. office"
    assert score_text(["7291"], "all", think) == 0.0
    assert score_text(["7291"], "raw:all", think) == 1.0
    assert score_text(["7291"], "all", "<think>the answer tokens ran out: 7291") == 0.0
    assert score_text(["7291"], "all", "The code is 7291") == 1.0
    qa1 = babilong.metric("qa1", "Where is Mary?")
    assert score_text(["office"], qa1, think.replace("1234. ", "")) == 1.0
    assert score_text(["office"], "raw:" + qa1, think.replace("1234. ", "")) == 0.0


def test_keep_thinking_is_stored_with_each_cell_and_kept_by_a_rescore(tmp_path,
                                                                     scoutlens_home):
    data = published(tmp_path / "babilong")
    server = FakeOpenAI(max_model_len=32768).start()
    answer = "<think>the office? no</think> The most recent location of Mary is kitchen."
    server.script(Reply(deltas=(answer,)), Reply(deltas=(answer,)))
    try:
        done = cli("eval", "run", "--endpoint", server.url, "--task", "babilong-qa1", "--data",
                   str(data), "--lengths", "1k", "--samples", "1", "--run-id", "kept",
                   "--concurrency", "1", "--keep-thinking", "--tokenizer", "cl100k")
        plain = cli("eval", "run", "--endpoint", server.url, "--task", "babilong-qa1",
                    "--data", str(data), "--lengths", "1k", "--samples", "1", "--run-id",
                    "plain", "--concurrency", "1", "--tokenizer", "cl100k")
    finally:
        server.close()
    assert done.returncode == 0 and plain.returncode == 0, done.stderr + plain.stderr
    assert [c.score for c in eval_runs.cells_of("kept")] == [0.0]  # office and kitchen
    assert [c.score for c in eval_runs.cells_of("plain")] == [1.0]  # the answer alone
    assert eval_runs.rescore("kept").changed == 0 and eval_runs.rescore("plain").changed == 0
    # an all|part override never replaces the authors' rule (their numbers stay comparable)
    assert eval_runs.rescore("kept", metric="part").changed == 0
    assert [c.score for c in eval_runs.cells_of("kept")] == [0.0]



def test_hostile_files_are_refused_before_anything_is_sent(tmp_path, scoutlens_home):
    """Found by a hostile tester: nesting deep enough to overflow the parser, a lone
    surrogate, a bad record in the middle of the file: each one line, exit 1, no request
    sent and no run stored."""
    cases = {
        "deep": "[" * 100_000 + "]" * 100_000,
        "surrogate": json.dumps([{"input": "\ud800 Mary", "question": "Where is Mary?",
                                  "target": "kitchen"}]),
        "middle": "\n".join([json.dumps(QA1[0]), json.dumps(QA1[1]), '{"input": "x"}',
                             json.dumps(QA1[0])]),
        "bom": "\ufeff" + json.dumps(QA1),
    }
    expected = {"deep": "the file is not JSON", "surrogate": "record 1's input holds a lone "
                "surrogate", "middle": "record 3 lacks the string fields", "bom": None}
    samples = {"deep": "1", "surrogate": "1", "middle": "4", "bom": "2"}
    for name, text in cases.items():
        root = tmp_path / name
        (root / "data" / "qa1").mkdir(parents=True)
        (root / "data" / "qa1" / "1k.json").write_text(text, encoding="utf-8",
                                                       errors="surrogatepass")
        server = FakeOpenAI(max_model_len=32768).start()
        try:
            done = cli("eval", "run", "--endpoint", server.url, "--task", "babilong-qa1",
                       "--data", str(root), "--lengths", "1k", "--samples", samples[name],
                       "--run-id", name, "--tokenizer", "cl100k", "--concurrency", "1")
            sent = len(server.completions)
        finally:
            server.close()
        if expected[name] is None:  # a BOM before the array is read past
            assert done.returncode == 0 and sent == 2, done.stderr
            continue
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and expected[name] in last, last
        assert sent == 0 and name not in [r.run_id for r in eval_runs.list_runs()]


def test_a_file_whose_prompts_exceed_the_window_is_refused_by_its_counted_length(
        tmp_path, scoutlens_home):
    data = tmp_path / "babilong"
    (data / "data" / "qa1").mkdir(parents=True)  # a "1k" file whose prompts are ~3,000 tokens
    (data / "data" / "qa1" / "1k.json").write_text(json.dumps([record(
        "Mary went to the kitchen. " + "The mill wheel turned slowly. " * 300, "Where is Mary?",
        "kitchen")]))
    server = FakeOpenAI(max_model_len=1200).start()
    try:
        done = cli("eval", "run", "--endpoint", server.url, "--task", "babilong-qa1",
                   "--data", str(data), "--lengths", "1k", "--samples", "1", "--tokenizer",
                   "cl100k")
        sent = len(server.completions)
        dry = cli("eval", "run", "--endpoint", server.url, "--task", "babilong-qa1",
                  "--data", str(data), "--lengths", "1k", "--samples", "1", "--tokenizer",
                  "cl100k", "--dry-run")
    finally:
        server.close()
    assert done.returncode == 1 and sent == 0
    assert "over the model's window of 1,200" in done.stderr.strip().splitlines()[-1]
    assert dry.returncode == 0 and "does not fit the model's window of 1,200" in dry.stderr


def test_a_resumed_run_reads_its_files_where_they_are_now(tmp_path, scoutlens_home):
    first = published(tmp_path / "before")
    server = FakeOpenAI(max_model_len=32768).start()
    server.script(Reply(deltas=("kitchen",)), Reply(deltas=("office",)))
    try:
        base = ("eval", "run", "--endpoint", server.url, "--task", "babilong-qa1", "--lengths",
                "1k", "--run-id", "moved", "--tokenizer", "cl100k", "--concurrency", "1")
        done = cli(*base, "--data", str(first), "--samples", "1")
        assert done.returncode == 0, done.stderr
        first.rename(tmp_path / "after")
        again = cli(*base, "--data", str(tmp_path / "after"))
    finally:
        server.close()
    assert again.returncode == 0 and "resuming run moved" in again.stderr, again.stderr


def test_a_questions_trailing_space_is_stripped_as_the_authors_strip_it():
    rec = babilong.Record("Mary went to the kitchen.", "Where is Mary?  \n", "kitchen")
    head, question = babilong.prompt_parts("qa1", rec)
    assert question == "Question: Where is Mary?"
    assert head + question == authors_input("qa1", {"input": rec.input,
                                                    "question": "Where is Mary?"})
    assert babilong.prompt_parts("qa1", babilong.Record("x", "", "kitchen"))[1] == "Question:"


def test_a_reasoning_model_gets_the_answer_tokens_the_run_gives(tmp_path, scoutlens_home):
    data = published(tmp_path / "babilong")
    server = FakeOpenAI(max_model_len=32768).start()
    server.script(Reply(deltas=("<think>Mary moved.</think>The most recent location of Mary "
                                "is kitchen.",)))
    try:
        done = cli("eval", "run", "--endpoint", server.url, "--task", "babilong-qa1",
                   "--data", str(data), "--lengths", "1k", "--run-id", "think",
                   "--suite-max-tokens", "600")
        sent = [s.body for s in server.completions]
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert [b["max_tokens"] for b in sent] == [600]
    assert [c.score for c in eval_runs.cells_of("think")] == [1.0]
