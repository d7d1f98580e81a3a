"""The OpenAI-compatible backend against a small real HTTP server (tests/fakes.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import ANSWER, MODEL, REPO, FakeOpenAI, Reply

from engine.openai_backend import OpenAIBackend, api_base
from engine.types import CompletionRequest, EngineError, PromptTooLong, Usage


@pytest.fixture
def server():
    fake = FakeOpenAI().start()
    yield fake
    fake.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backend(server: FakeOpenAI, **kw) -> OpenAIBackend:
    kw.setdefault("max_retries", 0)
    return OpenAIBackend(server.url, **kw)


# --- a normal answer ------------------------------------------------------------------------------


def test_a_streamed_answer_is_assembled_with_usage_and_timings(server):
    stream = _backend(server).stream(CompletionRequest(prompt="What is it?", prefix="corpus\n"))
    deltas = list(stream)
    result = stream.result
    assert result is not None
    assert deltas == list(ANSWER)
    assert result.text == "".join(deltas) == "The answer is 42."
    assert result.usage == Usage(prompt_tokens=30, cached_tokens=16, completion_tokens=3)
    assert result.finish_reason == "stop"
    assert not result.incomplete and result.error is None
    assert (result.model, result.backend) == (MODEL, "openai")
    t = result.timings
    assert 0 < t.ttft_s <= t.total_s
    assert t.decode_s > 0 and t.prefill_s == t.ttft_s
    assert t.total_s == pytest.approx(t.ttft_s + t.decode_s, abs=1e-6)
    as_json = result.to_json()
    assert set(as_json["usage"]) == {"prompt_tokens", "cached_tokens", "completion_tokens"}
    assert set(as_json["timings"]) == {"ttft_s", "prefill_s", "decode_s", "total_s"}


def test_the_request_body_puts_the_prefix_first_and_byte_identical(server):
    backend = _backend(server, api_key="sk-test")
    prefix = "Corpus: café ☕ — naïve\n\n" + "line of text\n" * 50
    for question in ("First question?", "Second, different question?"):
        backend.stream(CompletionRequest(prompt=question, prefix=prefix, system="Be brief.",
                                         max_tokens=77, temperature=0.3,
                                         stop=("END",))).collect()
    assert server.seen[0].method == "GET" and server.seen[0].path == "/v1/models"
    first, second = server.posts("/v1/chat/completions")
    body = first.body
    assert body["model"] == MODEL  # resolved from /v1/models: none was given
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": prefix + "First question?"}]
    assert body["max_tokens"] == 77
    assert body["temperature"] == 0.3
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["stop"] == ["END"]
    assert first.headers["authorization"] == "Bearer sk-test"
    # the reusable part goes first and byte for byte the same, so the server's cache can hit
    users = [s.body["messages"][-1]["content"].encode() for s in (first, second)]
    assert all(u.startswith(prefix.encode()) for u in users)
    assert users[0][: len(prefix.encode())] == users[1][: len(prefix.encode())]


def test_no_system_message_and_a_given_model_name(server):
    backend = _backend(server, model="my-served-name")
    backend.stream(CompletionRequest(prompt="Q", prefix="P ")).collect()
    (post,) = server.posts("/v1/chat/completions")
    assert post.body["model"] == "my-served-name"
    assert post.body["messages"] == [{"role": "user", "content": "P Q"}]
    assert "stop" not in post.body


def test_raw_completions_go_to_v1_completions(server):
    result = _backend(server).stream(
        CompletionRequest(prompt="continue:", prefix="Once upon a time ", chat=False,
                          max_tokens=5)).collect()
    assert result.text == "The answer is 42."
    assert result.usage.cached_tokens == 16
    assert server.posts("/v1/chat/completions") == []
    (post,) = server.posts("/v1/completions")
    assert post.body["prompt"] == "Once upon a time continue:"
    assert "messages" not in post.body
    assert post.body["max_tokens"] == 5
    assert post.body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("reply, finish", [
    (Reply(usage=False), "stop"),  # a server that never sends the usage chunk
    (Reply(usage=False, finish_reason="length"), "length"),
])
def test_no_usage_chunk_still_completes_with_zero_usage(server, reply, finish):
    server.script(reply)
    result = _backend(server).stream(CompletionRequest(prompt="Q")).collect()
    assert result.text == "The answer is 42."
    assert result.finish_reason == finish
    assert not result.incomplete and result.error is None
    assert result.usage == Usage()


# --- retries and faults ---------------------------------------------------------------------------


def test_429_with_retry_after_is_waited_out_then_succeeds(server):
    server.script(Reply(status=429, headers={"Retry-After": "1"},
                        body={"error": {"message": "slow down", "type": "rate_limit"}}))
    backend = _backend(server, max_retries=2)
    backend.model  # noqa: B018 (resolve the model first: time only the completion)
    t0 = time.monotonic()
    result = backend.stream(CompletionRequest(prompt="Q")).collect()
    elapsed = time.monotonic() - t0
    assert result.text == "The answer is 42." and result.finish_reason == "stop"
    posts = server.posts("/v1/chat/completions")
    assert len(posts) == 2
    assert posts[1].t - posts[0].t >= 0.95  # Retry-After, not the 0.5 s default backoff
    assert elapsed >= 0.95


def test_500_every_time_fails_after_the_retry_policy(server):
    server.script(*[Reply(status=500, body="upstream exploded")] * 10)
    backend = _backend(server, max_retries=2)
    with pytest.raises(EngineError) as info:
        backend.stream(CompletionRequest(prompt="Q")).collect()
    assert not isinstance(info.value, PromptTooLong)
    message = str(info.value)
    assert server.url in message
    assert "500" in message and "upstream exploded" in message
    assert len(server.posts("/v1/chat/completions")) == 2 + 1


def test_an_endpoint_that_is_down_fails_quickly_with_cannot_reach():
    backend = OpenAIBackend(f"http://127.0.0.1:{_closed_port()}/v1", max_retries=1)
    t0 = time.monotonic()
    with pytest.raises(EngineError, match="cannot reach"):
        backend.stream(CompletionRequest(prompt="Q")).collect()
    assert time.monotonic() - t0 < 5


def test_a_server_slower_than_the_read_timeout_is_a_clear_error(server):
    server.script(Reply(delay_s=3))
    backend = _backend(server, base_timeout=0.3, max_retries=0)
    t0 = time.monotonic()
    with pytest.raises(EngineError) as info:
        backend.stream(CompletionRequest(prompt="Q")).collect()
    assert time.monotonic() - t0 < 2.5
    assert "time" in str(info.value)
    assert len(server.posts("/v1/chat/completions")) == 1


def test_a_longer_prompt_gets_a_longer_read_timeout():
    backend = OpenAIBackend("http://127.0.0.1:1", base_timeout=60, max_retries=0)
    reads = [backend._timeout(chars).read for chars in (0, 1_000, 100_000, 4_000_000)]
    assert reads[0] == 60
    assert reads == sorted(reads) and len(set(reads)) == len(reads)
    assert reads[-1] > 60 + 3600  # 1M tokens at >= 200 tokens/s: over an hour of prefill
    assert backend._timeout(4_000_000).connect == backend._timeout(0).connect == 10.0


def test_the_grown_timeout_is_the_one_the_request_uses(server):
    """0.8 s of silence: too long for a short prompt's 0.3 s, fine for a long prompt's ~1.5 s."""
    backend = _backend(server, base_timeout=0.3, min_prefill_tokens_per_s=1000)
    long_prompt = "word " * 1000  # 5,000 chars ~ 1,250 tokens: +1.25 s
    server.script(Reply(delay_s=0.8), Reply(delay_s=0.8))
    assert backend.stream(CompletionRequest(prompt=long_prompt)).collect().text == \
        "The answer is 42."
    with pytest.raises(EngineError, match="time"):
        backend.stream(CompletionRequest(prompt="short")).collect()


@pytest.mark.parametrize("reply", [
    Reply(deltas=("Partial", " answer", " never", " finished"), die_after=2),
    Reply(deltas=("Partial", " answer", " never", " finished"), end_after=2),
], ids=["connection-dropped", "body-ended-without-done"])
def test_a_server_dying_mid_stream_leaves_a_partial_incomplete_answer(server, reply):
    server.script(reply)
    stream = _backend(server, max_retries=3).stream(CompletionRequest(prompt="Q"))
    deltas = list(stream)
    result = stream.result
    assert result is not None
    assert deltas == ["Partial", " answer"]
    assert result.text == "Partial answer"
    assert result.finish_reason == "incomplete" and result.incomplete
    assert result.error
    assert result.to_json()["incomplete"] is True
    assert len(server.posts("/v1/chat/completions")) == 1  # a half-sent answer is not re-asked


def test_a_stall_mid_stream_past_the_read_timeout_keeps_the_partial_text(server):
    server.script(Reply(stall_after=1, stall_s=3))
    backend = _backend(server, base_timeout=0.4)
    t0 = time.monotonic()
    result = backend.stream(CompletionRequest(prompt="Q")).collect()
    assert time.monotonic() - t0 < 2.5
    assert result.text == "The answer"
    assert result.incomplete and result.error


def test_an_error_event_mid_stream_marks_the_answer_incomplete(server):
    server.script(Reply(error_event="the engine died"))
    result = _backend(server).stream(CompletionRequest(prompt="Q")).collect()
    assert result.text == "The answer is 42."
    assert result.incomplete
    assert "the engine died" in result.error


# --- prompts too long -----------------------------------------------------------------------------

CONTEXT_400 = {"object": "error", "type": "BadRequestError", "param": None, "code": 400,
               "message": "This model's maximum context length is 4096 tokens. However, you "
                          "requested 5000 tokens (4744 in the messages, 256 in the completion). "
                          "Please reduce the length of the messages or completion."}


def test_400_maximum_context_length_says_the_prompt_is_too_long(server):
    server.script(Reply(status=400, body=CONTEXT_400))
    prompt = "word " * 300
    with pytest.raises(EngineError) as info:
        _backend(server).stream(CompletionRequest(prompt=prompt)).collect()
    message = str(info.value).lower()
    assert "prompt" in message and ("too long" in message or "does not fit" in message)
    if isinstance(info.value, PromptTooLong):
        assert info.value.window == 4096
        assert info.value.prompt_tokens == 300  # the exact count, from /tokenize
        assert "4,096" in message


def test_400_context_length_without_a_known_window(server):
    server.max_model_len = None
    server.script(Reply(status=400, body=CONTEXT_400))
    with pytest.raises(EngineError) as info:
        _backend(server).stream(CompletionRequest(prompt="Q")).collect()
    message = str(info.value)
    assert "too long" in message
    assert "maximum context length is 4096" in message  # the server's own words


def test_another_400_is_not_reported_as_a_prompt_too_long(server):
    server.script(Reply(status=400, body={"object": "error", "type": "BadRequestError",
                                          "message": "temperature must be at most 2, got 7",
                                          "param": None, "code": 400}))
    with pytest.raises(EngineError) as info:
        _backend(server).stream(CompletionRequest(prompt="Q", temperature=7.0)).collect()
    assert not isinstance(info.value, PromptTooLong), str(info.value)
    assert "400" in str(info.value)
    assert "temperature must be at most 2" in str(info.value)


def test_a_prompt_far_over_the_window_is_refused_before_sending(server):
    server.max_model_len = 100
    with pytest.raises(PromptTooLong) as info:
        _backend(server).stream(CompletionRequest(prompt="word " * 400, max_tokens=10))
    assert (info.value.prompt_tokens, info.value.window) == (400, 100)
    assert "400 prompt tokens + 10 to generate > 100 tokens" in str(info.value)
    assert server.completions == []


# --- server facts ---------------------------------------------------------------------------------


def test_count_uses_the_servers_tokenize(server):
    backend = _backend(server)
    tok = backend.tokenizer()
    text = "a b c d e f g h"  # 8 words; the local estimate would say 15 // 4 = 3
    assert tok.exact and tok.count(text) == 8
    post = server.posts("/tokenize")[-1]
    assert post.body == {"model": MODEL, "prompt": text, "add_special_tokens": False}
    assert backend.window == 4096
    assert tok.chat_ids("x y z", system="s") == [100, 101, 102, 103]
    assert server.posts("/tokenize")[-1].body["messages"] == [
        {"role": "system", "content": "s"}, {"role": "user", "content": "x y z"}]
    # a whole request: the chat template applied by the server, with the generation prompt
    cost = tok.count_request(CompletionRequest(prompt="Question: why", prefix="a b c\n\n",
                                               system="s"))
    assert (cost.tokens, cost.images, cost.exact) == (6, 0, True)
    assert server.posts("/tokenize")[-1].body["add_generation_prompt"] is True


def test_without_tokenize_counts_are_an_estimate_that_says_so(server):
    from ingest.tokenizers import load_tokenizer

    server.tokenize = False
    tok = _backend(server).tokenizer()
    assert not tok.exact
    assert tok.count("a b c d e f g h") == load_tokenizer("cl100k").count("a b c d e f g h")
    assert tok.count("") == 0
    assert tok.chat_ids("x y z") is None
    cost = tok.count_request(CompletionRequest(prompt="q", system="be brief"))
    assert not cost.exact and cost.tokens > 1  # the template's turns are estimated too


@pytest.mark.parametrize("endpoint, base", [
    ("http://h:1", "http://h:1/v1"),
    ("http://h:1/", "http://h:1/v1"),
    ("http://h:1/v1", "http://h:1/v1"),
    ("http://h:1/v1/", "http://h:1/v1"),
    ("  https://h:1/v1/  ", "https://h:1/v1"),
    ("http://h:1/proxy", "http://h:1/proxy/v1"),
])
def test_api_base_normalisation(endpoint, base):
    assert api_base(endpoint) == base
    backend = OpenAIBackend(endpoint, max_retries=0)
    assert backend.base_url == base
    assert backend.server_root == base[: -len("/v1")]


@pytest.mark.parametrize("endpoint", ["ftp://h:1/v1", "h:1", "localhost:8000", "", "http://"])
def test_api_base_refuses_what_is_not_an_http_url(endpoint):
    with pytest.raises(EngineError, match="not an http"):
        api_base(endpoint)
    with pytest.raises(EngineError):
        OpenAIBackend(endpoint)


# --- the CLI --------------------------------------------------------------------------------------


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOUTLENS_")}
    env.update(SCOUTLENS_HOME=str(tmp_path / "cli-home"), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "app.cli", "complete", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60)


def test_cli_complete_json_against_the_server(server, tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("What is the answer?\n", encoding="utf-8")
    proc = _cli(tmp_path, "--endpoint", server.url, "-p", str(prompt), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"text", "usage", "timings"} <= set(out)
    assert out["text"] == "The answer is 42."
    assert out["usage"] == {"prompt_tokens": 30, "cached_tokens": 16, "completion_tokens": 3}
    assert set(out["timings"]) == {"ttft_s", "prefill_s", "decode_s", "total_s"}
    assert out["incomplete"] is False
    (post,) = server.posts("/v1/chat/completions")
    assert post.body["messages"] == [{"role": "user", "content": "What is the answer?\n"}]
    assert post.body["model"] == MODEL


def test_cli_complete_mid_stream_death_exits_2_with_the_partial_json(server, tmp_path):
    server.script(Reply(die_after=1))
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Q", encoding="utf-8")
    proc = _cli(tmp_path, "--endpoint", server.url, "-p", str(prompt), "--json")
    assert proc.returncode == 2, proc.stderr
    out = json.loads(proc.stdout)
    assert out["text"] == "The answer" and out["incomplete"] is True
    assert "incomplete" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_complete_against_a_closed_port_is_a_clear_error(tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Q", encoding="utf-8")
    proc = _cli(tmp_path, "--endpoint", f"http://127.0.0.1:{_closed_port()}/v1",
                "-p", str(prompt), "--json")
    assert proc.returncode == 1
    assert "cannot reach" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
