"""`scoutlens serve vllm` without vLLM: dry runs, the managed process against a stand-in server
(a real HTTP server process), and the one-time GGUF -> safetensors conversion (on a stand-in
converter; the real one: tests/integration/test_convert.py)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import convert
from engine.types import EngineError
from engine.vllm_server import ManagedServer, find_vllm_python, free_port, port_open

# A stand-in for `python -m vllm.entrypoints.openai.api_server`: answers /health and /v1/models
# only after --delay seconds, with --child forks a child that ignores SIGTERM into its process
# group (as vLLM forks its engine core; stopping it then costs the wait for leftovers), and can
# ignore SIGTERM or exit at once.
FAKE_SERVER = '''
import argparse, http.server, json, os, signal, subprocess, sys, time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int)
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--delay", type=float, default=0.0)
p.add_argument("--ignore-term", action="store_true")
p.add_argument("--exit-now", action="store_true")
p.add_argument("--pids")
p.add_argument("--chatty", action="store_true")
p.add_argument("--child", action="store_true")
a = p.parse_args()
if a.exit_now:
    for i in range(40):
        print(f"loading line {i}", flush=True)
    print("RuntimeError: no usable device found", flush=True)
    sys.exit(3)
child = subprocess.Popen([sys.executable, "-c",
                          "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                          "time.sleep(600)"]) if a.child else None
with open(a.pids, "w") as f:
    json.dump({"server": os.getpid(), "child": child and child.pid}, f)
if a.ignore_term:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
t0 = time.monotonic()
if a.chatty:  # a start that makes progress: a log line every 0.2 s until ready
    import threading
    def talk():
        i = 0
        while time.monotonic() - t0 < a.delay:
            print(f"warming up {i}", flush=True)
            i += 1
            time.sleep(0.2)
    threading.Thread(target=talk, daemon=True).start()

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ready = time.monotonic() - t0 >= a.delay
        if not ready or self.path not in ("/health", "/v1/models"):
            self.send_response(503 if not ready else 404)
            self.end_headers()
            return
        body = b"" if self.path == "/health" else json.dumps(
            {"object": "list", "data": [{"id": "fake-model", "max_model_len": 8192}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)

print("fake vLLM listening", flush=True)
http.server.HTTPServer((a.host, a.port), H).serve_forever()
'''


@pytest.fixture
def fake_vllm(tmp_path):
    """A `vllm` package on PYTHONPATH whose api_server module is the stand-in above."""
    root = tmp_path / "fakevllm"
    pkg = root / "vllm" / "entrypoints" / "openai"
    pkg.mkdir(parents=True)
    for d in (root / "vllm", root / "vllm" / "entrypoints", pkg):
        (d / "__init__.py").write_text("")
    (pkg / "api_server.py").write_text(FAKE_SERVER)
    return root


def _server(fake_vllm: Path, tmp_path: Path, *extra: str) -> ManagedServer:
    port = free_port()
    return ManagedServer(["--port", str(port), "--pids", str(tmp_path / "pids.json"), *extra],
                         env={"PYTHONPATH": str(fake_vllm)}, port=port,
                         python=Path(sys.executable), log_path=tmp_path / "logs" / "vllm.log")


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_wait_healthy_waits_then_stop_ends_the_process_group(fake_vllm, tmp_path):
    server = _server(fake_vllm, tmp_path, "--delay", "1.5", "--child")
    ticks: list[float] = []
    with server:
        t0 = time.monotonic()
        info = server.wait_healthy(timeout=30, interval=0.1, tick=ticks.append)
        waited = time.monotonic() - t0
        assert info["id"] == "fake-model"
        assert waited >= 1.4, "ready before /health answered 200"
        assert len(ticks) > 3 and ticks == sorted(ticks)
        assert server.endpoint == f"http://127.0.0.1:{server.port}/v1"
        pids = json.loads((tmp_path / "pids.json").read_text())
        assert alive(pids["server"]) and alive(pids["child"])
        assert os.getpgid(pids["child"]) == server.process.pid  # its own group
        assert os.getpgid(0) != server.process.pid
    assert server.process.returncode == 0  # SIGTERM was enough for the server itself
    # the child ignored SIGTERM and outlived its parent: the group's SIGKILL ended it
    assert wait_gone(pids["server"]) and wait_gone(pids["child"])
    assert not port_open(server.port)
    log = (tmp_path / "logs" / "vllm.log").read_text()
    assert "=== scoutlens:" in log and "fake vLLM listening" in log
    assert "/health" in log  # the polls reached it


def test_stop_kills_a_server_that_ignores_sigterm(fake_vllm, tmp_path):
    server = _server(fake_vllm, tmp_path, "--ignore-term", "--child")
    server.start()
    try:
        server.wait_healthy(timeout=30, interval=0.1)
        pids = json.loads((tmp_path / "pids.json").read_text())
    finally:
        t0 = time.monotonic()
        code = server.stop(grace=1.0)
    assert code == -signal.SIGKILL
    assert time.monotonic() - t0 < 10
    assert wait_gone(pids["server"]) and wait_gone(pids["child"])


def test_a_server_that_exits_fails_with_its_log_tail(fake_vllm, tmp_path):
    server = _server(fake_vllm, tmp_path, "--exit-now")
    with server, pytest.raises(EngineError) as err:
        server.wait_healthy(timeout=30, interval=0.1)
    msg = str(err.value)
    assert "exited with code 3" in msg
    assert str(server.log_path) in msg
    assert "RuntimeError: no usable device found" in msg
    assert "loading line 39" in msg and "loading line 5\n" not in msg  # the last 30 lines only


def test_a_server_never_ready_times_out(fake_vllm, tmp_path):
    server = _server(fake_vllm, tmp_path, "--delay", "60")
    with server, pytest.raises(EngineError, match=r"not ready after 1 s \(its log was silent"):
        server.wait_healthy(timeout=1, interval=0.1)
    assert not server.running()


def test_a_slow_start_that_makes_progress_is_waited_for(fake_vllm, tmp_path):
    """The wait follows the log: 3 s of warm-up lines outlast a 1 s stall limit; the 503
    answers to our own polls are logged too but are not progress (the test above)."""
    server = _server(fake_vllm, tmp_path, "--delay", "3", "--chatty")
    with server:
        t0 = time.monotonic()
        assert server.wait_healthy(timeout=1, interval=0.1)["id"] == "fake-model"
        assert time.monotonic() - t0 >= 2.9


def test_port_in_use_is_a_clear_error(fake_vllm, tmp_path):
    first = _server(fake_vllm, tmp_path)
    with first:
        first.wait_healthy(timeout=30, interval=0.1)
        second = ManagedServer(["--port", str(first.port)], port=first.port,
                               python=Path(sys.executable), log_path=tmp_path / "second.log")
        with pytest.raises(EngineError, match="already in use"):
            second.start()


def test_default_log_lives_under_home(scoutlens_home):
    from app.commands.serve import log_path

    assert log_path(8123) == scoutlens_home / "logs" / "vllm-8123.log"


def test_find_vllm_python_prefers_the_environment_variable(monkeypatch, tmp_path):
    from app.settings import Settings  # the variable is a setting, passed down to the engine

    monkeypatch.setenv("SCOUTLENS_VLLM_PYTHON", sys.executable)
    assert find_vllm_python(Settings().vllm_python) == Path(sys.executable)
    monkeypatch.setenv("SCOUTLENS_VLLM_PYTHON", str(tmp_path / "nope"))
    with pytest.raises(EngineError, match="SCOUTLENS_VLLM_PYTHON"):
        find_vllm_python(Settings().vllm_python)


# --- the command line --------------------------------------------------------------------------

def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_dry_run_cpu_prints_the_command_and_starts_nothing(scoutlens_home):
    proc = run("serve", "vllm", "--gpus", "cpu", "--port", "8123", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    words = shlex.split(proc.stdout)
    env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    assert int(env["VLLM_CPU_KVCACHE_SPACE"]) >= 1
    i = words.index("-m")
    assert words[i + 1] == "vllm.entrypoints.openai.api_server"
    line = " ".join(words)
    model_dir = scoutlens_home / "models" / "smollm2-135m-instruct"
    assert f"--model {model_dir}" in line
    assert "--port 8123" in line and "--host 127.0.0.1" in line
    for flag in ("--enable-prefix-caching", "--enable-prompt-tokens-details"):
        assert flag in words
    assert "--max-model-len 8192" in line
    assert not model_dir.exists()  # a dry run converts nothing
    assert not (scoutlens_home / "logs").exists()


def test_dry_run_8xh100_has_the_planner_flags():
    proc = run("serve", "vllm", "--gpus", "8xH100", "--kv-dtype", "fp8", "--context", "1M",
               "--dry-run")
    assert proc.returncode == 0, proc.stderr
    words = shlex.split(proc.stdout)
    line = " ".join(words)
    assert "vllm.entrypoints.openai.api_server" in words
    assert any(f in line for f in ("--tensor-parallel-size 8", "-tp 8"))
    assert "--kv-cache-dtype fp8" in line
    assert f"--max-model-len {1024 * 1024}" in line or "--max-model-len 1000000" in line
    for flag in ("--enable-prefix-caching", "--enable-prompt-tokens-details",
                 "--max-num-batched-tokens"):
        assert flag in words
    assert "VLLM_CPU_KVCACHE_SPACE" not in line


def test_bad_choices_are_user_errors():
    proc = run("serve", "vllm", "--gpus", "4xA100", "--dry-run")
    assert proc.returncode == 1
    assert "--gpus" in proc.stderr and "A100" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("serve", "vllm", "--gpus", "cpu", "--context", "lots", "--dry-run")
    assert proc.returncode == 1 and "--context" in proc.stderr


# --- GGUF -> safetensors -----------------------------------------------------------------------

@pytest.fixture
def fake_convert(monkeypatch):
    """Replace the real (20 s) conversion with one that writes a minimal folder, and count."""
    calls: list[Path] = []

    def fake(gguf: Path, out: Path, dtype: str) -> None:
        calls.append(gguf)
        (out / "config.json").write_text(json.dumps({"from": gguf.read_text()}))
        (out / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setattr(convert, "_convert", fake)
    return calls


def test_conversion_runs_once_and_again_when_the_gguf_changes(tmp_path, fake_convert):
    gguf = tmp_path / "m.gguf"
    gguf.write_text("v1")
    dest = tmp_path / "models" / "m"
    assert convert.ensure_safetensors_model(dest, gguf) == dest
    assert convert.ensure_safetensors_model(dest, gguf) == dest
    assert len(fake_convert) == 1
    marker = json.loads((dest / convert.MARKER).read_text())
    assert marker["sha256"] == convert.file_sha256(gguf) and marker["dtype"] == "bfloat16"
    gguf.write_text("v2")
    convert.ensure_safetensors_model(dest, gguf)
    assert len(fake_convert) == 2
    assert json.loads((dest / "config.json").read_text()) == {"from": "v2"}
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m"]  # no temp or old folders


def test_a_half_written_folder_is_replaced(tmp_path, fake_convert):
    gguf = tmp_path / "m.gguf"
    gguf.write_text("v1")
    dest = tmp_path / "models" / "m"
    dest.mkdir(parents=True)
    (dest / "config.json").write_text("{}")
    (dest / "model.safetensors").write_bytes(b"trunc")  # no marker: an interrupted copy
    (dest.parent / ".m.tmp-abc123").mkdir()  # a crashed conversion's temp folder
    convert.ensure_safetensors_model(dest, gguf)
    assert len(fake_convert) == 1
    assert (dest / convert.MARKER).is_file()
    assert (dest / "model.safetensors").read_bytes() == b"weights"


def test_a_failed_conversion_leaves_nothing(tmp_path, monkeypatch):
    gguf = tmp_path / "m.gguf"
    gguf.write_text("v1")

    def broken(gguf: Path, out: Path, dtype: str) -> None:
        (out / "config.json").write_text("{}")
        raise EngineError("out of disk")

    monkeypatch.setattr(convert, "_convert", broken)
    dest = tmp_path / "models" / "m"
    with pytest.raises(EngineError, match="out of disk"):
        convert.ensure_safetensors_model(dest, gguf)
    assert list(dest.parent.iterdir()) == []


def test_missing_gguf_is_a_clear_error(tmp_path):
    with pytest.raises(EngineError, match="not found"):
        convert.ensure_safetensors_model(tmp_path / "m", tmp_path / "missing.gguf")


def test_progress_bars_redrawn_with_cr_are_progress(tmp_path):
    """tqdm bars (weight shards, CUDA graphs) write `\\r` and no newline until they end."""
    log = tmp_path / "vllm.log"
    log.write_bytes(b"")
    server = ManagedServer([], log)
    offset, moved = server._log_progress(0)
    assert (offset, moved) == (0, False)
    log.write_bytes(b"Loading safetensors shards:  10%|#   | 1/10\r")
    offset, moved = server._log_progress(offset)
    assert moved and offset == log.stat().st_size
    with log.open("ab") as fh:
        fh.write(b'INFO:     127.0.0.1:5000 - "GET /health HTTP/1.1" 503\n')
    offset, moved = server._log_progress(offset)
    assert not moved  # our own polls are not progress
