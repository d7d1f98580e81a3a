"""Hostile OpenAI-compatible servers: endless streams, keep-alive-only streams, servers that
accept and never answer, garbage or wrongly typed JSON anywhere, invalid endpoint URLs.

Each case was seen against a real deployment (issue 13): an endless stream stored a 3.3 MB answer
far past --max-tokens, `: ping` keep-alives held `ask` for 1,200 s, a silent server took 318 s to
fail, garbage raised tracebacks. The servers are real sockets on loopback: FakeOpenAI (from
test_openai_backend) with hostile `Reply`s, or a bare listening socket that never answers. Every
failure must be an EngineError with a one-line message; the time limits are set small through
the constructor so each case takes about a second. Hypothesis checks the SSE and chunk parsers
on arbitrary input: a correct result or an EngineError, never another exception.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import MODEL, FakeOpenAI, Reply
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.openai_backend import OpenAIBackend
from engine.types import CompletionRequest, EngineError, Usage
from engine.wire import SSEParser, api_base, parse_chunk

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server():
    fake = FakeOpenAI().start()
    yield fake
    fake.close()


def _backend(url: str, **kw) -> OpenAIBackend:
    kw.setdefault("max_retries", 0)
    return OpenAIBackend(url, **kw)


def _one_line_error(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert isinstance(info.value, EngineError)
    assert message and "\n" not in message and "Traceback" not in message
    return message


def _chat_chunk(choices: object = None, **extra: object) -> bytes:
    body = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
            "choices": [] if choices is None else choices, **extra}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


# --- item 5: streams that never end ---------------------------------------------------------------


def test_an_endless_stream_stops_past_max_tokens_with_finish_length(server):
    server.script(Reply(deltas=(), endless=True, gap_s=0))
    t0 = time.monotonic()
    stream = _backend(server.url).stream(CompletionRequest(prompt="Q", max_tokens=50))
    deltas = list(stream)
    elapsed = time.monotonic() - t0
    result = stream.result
    assert result is not None
    most = 50 * 2 + 16  # max_tokens x slack + 16
    assert len(deltas) == most
    assert result.text == "tok " * most
    assert result.finish_reason == "length" and not result.incomplete
    assert "over 116 tokens" in result.error and "max_tokens 50" in result.error
    assert elapsed < 5
    time.sleep(0.2)
    sent = server.events_sent
    time.sleep(0.3)
    assert server.events_sent - sent < 50  # the client hung up: the server could not go on


def test_one_huge_chunk_counts_as_many_tokens(server):
    server.script(Reply(deltas=("word " * 10_000,)))
    result = _backend(server.url).stream(CompletionRequest(prompt="Q", max_tokens=20)).collect()
    assert result.text == "" and result.finish_reason == "length"


def test_usage_past_max_tokens_stops_reading(server):
    server.script(Reply(deltas=("a",), raw=(
        _chat_chunk(usage={"prompt_tokens": 1, "completion_tokens": 10_000}),
        _chat_chunk([{"index": 0, "delta": {"content": "more"}}]))))
    result = _backend(server.url).stream(CompletionRequest(prompt="Q", max_tokens=8)).collect()
    assert result.text == "a" and result.finish_reason == "length"


def test_a_server_sending_only_keep_alives_fails_after_the_first_chunk_wait(server):
    server.script(Reply(deltas=(), pings_after=0, ping_s=0.05))
    backend = _backend(server.url, base_timeout=0.6, idle_timeout=0.2)
    backend.model  # noqa: B018 (time only the completion)
    t0 = time.monotonic()
    with pytest.raises(EngineError) as info:
        backend.stream(CompletionRequest(prompt="Q")).collect()
    elapsed = time.monotonic() - t0
    message = _one_line_error(info)
    assert "did not answer in time" in message and "keep-alive" in message
    assert server.url in message
    assert 0.55 < elapsed < 2


def test_keep_alives_mid_answer_are_not_progress(server):
    server.script(Reply(pings_after=2, ping_s=0.05))
    backend = _backend(server.url, base_timeout=30, idle_timeout=0.5)
    t0 = time.monotonic()
    result = backend.stream(CompletionRequest(prompt="Q")).collect()
    assert 0.45 < time.monotonic() - t0 < 2.5
    assert result.text == "The answer is" and result.incomplete
    assert "went silent for 0.5 s" in result.error and "\n" not in result.error


def test_silence_mid_answer_ends_at_the_idle_timeout_not_the_read_timeout(server):
    """The socket's read timeout is the first-chunk wait (30 s here): the watchdog ends it."""
    server.script(Reply(stall_after=1, stall_s=30))
    backend = _backend(server.url, base_timeout=30, idle_timeout=0.4)
    t0 = time.monotonic()
    result = backend.stream(CompletionRequest(prompt="Q")).collect()
    assert time.monotonic() - t0 < 2
    assert result.text == "The answer" and result.incomplete
    assert "went silent" in result.error


def test_a_slow_endless_dribble_hits_the_total_deadline(server):
    server.script(Reply(deltas=(), endless=True, gap_s=0.05))
    backend = _backend(server.url, base_timeout=0.5, idle_timeout=0.5,
                       min_decode_tokens_per_s=1000)
    first, total, most = backend.limits(1, 1000)
    assert (first, most) == (pytest.approx(0.5, abs=0.01), 2016)
    assert total == pytest.approx(0.5 + 0.5 + 1.0, abs=0.01)
    t0 = time.monotonic()
    result = backend.stream(CompletionRequest(prompt="Q", max_tokens=1000)).collect()
    assert total - 0.1 < time.monotonic() - t0 < total + 1.5
    assert result.incomplete and "total deadline" in result.error
    assert 10 < len(result.text) // 4 < most


def test_a_server_that_accepts_and_never_answers_fails_fast():
    """A listening socket nobody serves: the kernel accepts, nothing ever answers. The model
    list is asked first; with retries left, a timeout is still not retried."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        backend = OpenAIBackend(url, max_retries=4, info_timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(EngineError) as info:
            backend.stream(CompletionRequest(prompt="Q")).collect()
        assert time.monotonic() - t0 < 1.5  # one wait, not five
        assert "did not answer in time" in _one_line_error(info)
        # the model named: the completion itself waits its first-chunk time, once
        backend = OpenAIBackend(url, model="m", max_retries=4, info_timeout=0.3,
                                base_timeout=0.5)
        backend._models = [{"id": "m", "max_model_len": None}]
        t0 = time.monotonic()
        with pytest.raises(EngineError, match="did not answer in time"):
            backend.stream(CompletionRequest(prompt="Q")).collect()
        assert time.monotonic() - t0 < 1.5


def test_the_default_waits_are_bounded():
    """What a never-answering server costs with the defaults: 20 s for the model list, then a
    first-chunk wait of 60 s + the prompt at 200 tokens/s, never multiplied by retries."""
    backend = OpenAIBackend("http://127.0.0.1:1/v1")
    assert backend.info_timeout == 20
    first, total, most = backend.limits(4_000, 256)
    assert first == 65 and total == 65 + 60 + 128 and most == 528


# --- item 11: garbage anywhere --------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"data: this is not json\n\n",
    b"data: {\"choices\": [\n\n",
    b"data: [1, 2, 3]\n\n",
    b"data: " + b"[" * 100_000 + b"\n\n",
    _chat_chunk(5),
    _chat_chunk("abc"),
    _chat_chunk([5]),
    _chat_chunk([{"index": "zero", "delta": {"content": "x"}}]),
    _chat_chunk([{"index": 0, "delta": "x"}]),
    _chat_chunk([{"index": 0, "delta": {"content": 5}}]),
    _chat_chunk([{"index": 0, "delta": {"content": ["x"]}}]),
    _chat_chunk([{"index": 0, "delta": {"content": "x"}, "finish_reason": 7}]),
    _chat_chunk(usage={"prompt_tokens": "many", "completion_tokens": 1}),
    _chat_chunk(usage={"prompt_tokens": 1, "completion_tokens": -3}),
    _chat_chunk(usage={"prompt_tokens": 1, "prompt_tokens_details": {"cached_tokens": "x"}}),
    _chat_chunk(usage={"prompt_tokens": 10**30}),
    _chat_chunk(usage="lots"),
    _chat_chunk(error="the engine\nexploded"),
    b"data: " + b"x" * (2 << 20) + b"\n\n",
], ids=lambda raw: raw[:40].decode(errors="replace"))
def test_a_garbage_first_chunk_is_a_one_line_engine_error(server, raw):
    server.script(Reply(deltas=(), raw=(raw,)))
    with pytest.raises(EngineError) as info:
        _backend(server.url).stream(CompletionRequest(prompt="Q")).collect()
    assert server.url in _one_line_error(info)


def test_garbage_after_some_text_keeps_the_text_as_incomplete(server):
    server.script(Reply(deltas=("Partial",), raw=(_chat_chunk("nope"),)))
    result = _backend(server.url).stream(CompletionRequest(prompt="Q")).collect()
    assert result.text == "Partial" and result.incomplete
    assert "choices is not a list" in result.error and "\n" not in result.error


def test_odd_but_valid_sse_framing_still_reads(server):
    """CR and CRLF line ends, comments, `event:` and `id:` fields, a data line split in two."""
    first = json.dumps({"choices": [{"index": 0, "delta": {"content": "Hello"}}]}).encode()
    server.script(Reply(deltas=(), raw=(
        b": hello\r\nevent: message\r\nid: 1\r\ndata: " + first[:10], first[10:] + b"\r\n\r\n",
        b"data:" + json.dumps({"choices": [{"delta": {"content": " world"},
                                            "finish_reason": "stop"}]}).encode() + b"\r\r",
        b"data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 3, \"completion_tokens\": 2}}\n\n",
        b"data: [DONE]\n\n")))
    result = _backend(server.url).stream(CompletionRequest(prompt="Q")).collect()
    assert result.text == "Hello world" and result.finish_reason == "stop"
    assert result.usage == Usage(prompt_tokens=3, completion_tokens=2)


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '{"count": "seven"}', '{"count": -1}',
                                  '{"tokens": [1, "two"]}', '{"count": true}',
                                  '{"tokens": [1, 2, null]}'])
def test_garbage_from_tokenize_is_refused_and_counts_say_they_are_estimates(body):
    """A `/tokenize` that answers garbage is not believed: the probe turns it down, and
    counts come from the local estimate, marked inexact (so ask keeps a margin)."""
    fake = FakeOpenAI(tokenize_body=body).start()
    try:
        tok = _backend(fake.url).tokenizer()
        assert not tok.exact
        assert tok.count("a b c") == 3 and tok.chat_ids("x y") is None
    finally:
        fake.close()


@pytest.mark.parametrize("body", ["{not json", '{"tokens": [1, "two"]}', '{"count": -1}'])
def test_garbage_from_a_tokenize_that_probed_well_is_a_one_line_error(body):
    from engine.server_tokenizer import ServerTokenizer

    fake = FakeOpenAI(tokenize_body=body).start()
    try:
        tok = ServerTokenizer(fake.url.removesuffix("/v1"), "m")
        with pytest.raises(EngineError) as info:
            tok.count_request(CompletionRequest(prompt="a b c"))
        assert "/tokenize" in _one_line_error(info)
    finally:
        fake.close()


@pytest.mark.parametrize("body, words", [
    ("{garbage", "not JSON"),
    ('{"data": 5}', "model list"),
    ('{"data": [{"id": 7}]}', "model id"),
    ('{"data": [{"id": "m", "max_model_len": "4096"}]}', "max_model_len"),
    ('"just a string"', "not a JSON object"),
])
def test_a_garbage_model_list_is_a_one_line_engine_error(body, words):
    fake = FakeOpenAI(models_body=body).start()
    try:
        with pytest.raises(EngineError) as info:
            _backend(fake.url).stream(CompletionRequest(prompt="Q")).collect()
        assert words in _one_line_error(info)
    finally:
        fake.close()


def test_a_non_streamed_answer_with_wrong_usage_types_is_an_engine_error(server):
    backend = _backend(server.url)
    server.script(Reply(body={"choices": [], "usage": {"prompt_tokens": "thirty"}}))
    with pytest.raises(EngineError) as info:
        backend.prefill_ids([1, 2, 3])
    assert "usage.prompt_tokens" in _one_line_error(info)
    assert backend.prefill_ids([1, 2, 3]).prompt_tokens == 30  # a sane answer still reads


@pytest.mark.parametrize("endpoint", ["http://[::1", "http://h:99999/v1", "http://h:abc/v1",
                                      "http://exa mple.com/v1", "http://h:1/v\x001", "http://:80"])
def test_an_invalid_endpoint_url_is_refused_when_the_backend_is_built(endpoint):
    with pytest.raises(EngineError) as info:
        api_base(endpoint)
    assert "not an http(s) endpoint URL" in _one_line_error(info)
    with pytest.raises(EngineError):
        OpenAIBackend(endpoint)


def test_the_cli_prints_an_invalid_endpoint_as_one_line(tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Q", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOUTLENS_")}
    env.update(SCOUTLENS_HOME=str(tmp_path / "home"), COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "app.cli", "complete", "--endpoint",
                           "http://[::1", "-p", str(prompt)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not an http(s) endpoint URL: 'http://[::1'" in lines[0]


# --- property tests: the parsers on arbitrary input -----------------------------------------------

_payload = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                   max_size=40)
_event = st.lists(_payload, min_size=1, max_size=3)  # data lines of one event
_eol = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def _sse_stream(draw) -> tuple[bytes, list[str]]:
    """A stream of events with comments and other fields mixed in, and what it carries."""
    out, expected = b"", []
    for lines in draw(st.lists(_event, max_size=6)):
        eol, values = draw(_eol), []
        for line in lines:
            if draw(st.booleans()):
                out += b": ping" + eol
            if draw(st.booleans()):
                out += b"event: delta" + eol
            value = draw(st.sampled_from(["", " "])) + line
            out += b"data:" + value.encode() + eol
            values.append(value[1:] if value.startswith(" ") else value)  # one space is framing
        out += eol
        expected.append("\n".join(values))
    return out, expected


def _feed_in_pieces(parser: SSEParser, data: bytes, cuts: list[int]) -> list[str]:
    got, last = [], 0
    for cut in sorted({min(c, len(data)) for c in cuts}) + [len(data)]:
        got += parser.feed(data[last:cut])
        last = cut
    return got + parser.close()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_sse_stream(), st.lists(st.integers(0, 2000), max_size=8))
def test_sse_parser_reads_any_framing_split_anywhere(stream, cuts):
    data, expected = stream
    assert _feed_in_pieces(SSEParser(), data, cuts) == expected


@settings(max_examples=300)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=5))
def test_sse_parser_on_arbitrary_bytes_returns_text_or_an_engine_error(data, cuts):
    try:
        events = _feed_in_pieces(SSEParser(max_bytes=64), data, cuts)
    except EngineError as exc:
        assert "\n" not in str(exc)
        return
    assert all(isinstance(e, str) for e in events)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["choices", "delta", "content", "text", "index", "finish_reason",
                         "usage", "prompt_tokens", "completion_tokens", "cached_tokens",
                         "prompt_tokens_details", "error", "message", "x"]), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=500)
@given(st.one_of(_json.map(json.dumps), st.text(max_size=60)), st.booleans())
def test_parse_chunk_returns_a_typed_piece_or_a_one_line_engine_error(payload, chat):
    try:
        piece = parse_chunk(payload, chat)
    except EngineError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(piece.text, str)
    assert piece.finish is None or (isinstance(piece.finish, str) and len(piece.finish) <= 20)
    if piece.usage is not None:
        assert all(type(v) is int and v >= 0 for v in (
            piece.usage.prompt_tokens, piece.usage.cached_tokens, piece.usage.completion_tokens))
