"""Issue 23, items 1, 3 and 7 (a lone surrogate), against the real servers as an operator starts
them (`scoutlens serve api`, `scoutlens mcp --transport http`: their own processes, uvicorn,
signals and sockets), with real clients, and a stand-in model (tests/fakes.py):
- a process on this machine connecting over loopback with `X-Forwarded-For: <the proxy>` and the
  user headers is nobody, on the API (http.client) and on MCP (the SDK's client); a proxy
  configured as ::1 is matched over 127.0.0.1; two different user lines are nobody;
- 60 slow streamed questions in flight (the model not yet at its first token) and /v1/models
  still answers, before any of them got a token; SIGTERM then ends the server, every stream
  closed with an error event and [DONE], a whole (unstreamed) answer a 503, nothing stored;
- a lone surrogate escape in a question is a 400 with one line (API), a JSON-RPC parse error
  (MCP), never a 500."""

from __future__ import annotations

import http.client
import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from fakes import FakeOpenAI, Reply
from helpers import make_facts_repo
from loadgen import ApiServer, free_port, open_streams, sigterm_seconds, timed_get
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

PROXY = "10.9.9.9"
SPOOF = {"X-Forwarded-For": PROXY, "X-Real-IP": PROXY, "Forwarded": f"for={PROXY}",
         "X-Forwarded-User": "bob", "X-Forwarded-Groups": "admins"}
SURROGATE = (b'{"model": "corpus:facts", "messages": [{"role": "user", "content": '
             b'"What is \\ud800 the vault code?"}]}')


def _header_env(ips: str) -> dict[str, str]:
    return {"SCOUTLENS_AUTH": "header", "SCOUTLENS_AUTH_PROXY_IPS": ips}


def _request(port: int, method: str, path: str, headers: list[tuple[str, str]],
             body: bytes | None = None) -> tuple[int, dict]:
    """(status, JSON body) of one request; headers as lines, so a name may come twice."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest(method, path)
    for k, v in headers + ([("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))] if body is not None else []):
        conn.putheader(k, v)
    conn.endheaders(body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data or b"null")


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def model(monkeypatch):
    import fakes

    # 60 questions connect at once: a listen backlog of 5 drops their SYNs (retried after 1,
    # 3, 7, ... s), timing the stand-in's socket, not the app
    monkeypatch.setattr(fakes._Server, "request_queue_size", 256)
    fake = FakeOpenAI(max_model_len=8192).start()
    yield fake
    fake.close()


@contextmanager
def api(home: Path, endpoint: str, **env: str):
    server = ApiServer(home, endpoint, env=env, log=home.parent / f"api-{time.time_ns()}.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def test_serve_api_believes_no_forwarded_address(tmp_path, model):
    chat = json.dumps({"model": "corpus:facts", "messages": [
        {"role": "user", "content": "What is the vault code?"}]}).encode()
    with api(tmp_path / "home", model.url, **_header_env(f'["{PROXY}"]')) as server:
        for method, path, body in (("GET", "/v1/models", None),
                                   ("POST", "/v1/chat/completions", chat)):
            status, answer = _request(server.port, method, path, list(SPOOF.items()), body)
            assert status == 401, answer
            assert answer["error"]["type"] == "authentication_error"
    assert not model.completions  # nothing reached the model
    with api(tmp_path / "home", model.url, **_header_env('["::1"]')) as server:
        status, answer = _request(server.port, "GET", "/v1/models",
                                  [("X-Forwarded-User", "bob")])
        assert status == 200, answer  # the proxy on loopback, configured as ::1
        two = [("X-Forwarded-User", "bob"), ("X-Forwarded-User", "alice")]
        assert _request(server.port, "GET", "/v1/models", two)[0] == 401


@contextmanager
def mcp_http(home: Path, *args: str, **env: str):
    import os
    import subprocess
    import sys

    from helpers import REPO

    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SCOUTLENS_")}
    log = home.parent / f"mcp-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "mcp", "--transport", "http",
                                 "--port", str(port), *args], cwd=REPO, stdout=out,
                                stderr=out,
                                env=clean | {"SCOUTLENS_HOME": str(home)} | env)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.time() + 90
        while True:
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"the MCP server did not start: {log.read_text()[-3000:]}")
                time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


async def _list_corpora(url: str, headers: dict[str, str]):
    async with create_mcp_http_client(headers=headers) as client, streamable_http_client(
            url, http_client=client) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        return await session.call_tool("list_corpora", {})


def test_mcp_over_http_believes_no_forwarded_address(tmp_path):
    with mcp_http(tmp_path / "home", **_header_env(f'["{PROXY}"]')) as (url, _):
        result = anyio.run(_list_corpora, url, SPOOF)
        assert result.is_error and "not signed in" in result.content[0].text
    with mcp_http(tmp_path / "home", **_header_env('["::1"]')) as (url, _):
        result = anyio.run(_list_corpora, url, {"X-Forwarded-User": "bob"})
        assert not result.is_error, result.content[0].text


def test_mcp_over_http_refuses_a_lone_surrogate_as_a_parse_error(tmp_path):
    headers = {"Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    with mcp_http(tmp_path / "home") as (url, _):
        init = httpx.post(url, headers=headers, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}}, timeout=30)
        headers |= {"mcp-session-id": init.headers["mcp-session-id"],
                    "mcp-protocol-version": "2025-06-18"}
        httpx.post(url, headers=headers, timeout=30,
                   json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        body = (b'{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": '
                b'"ask", "arguments": {"corpus": "facts", "question": "hi \\ud800"}}}')
        r = httpx.post(url, headers=headers, content=body, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == -32700 and "\n" not in r.text


def test_slow_streams_stall_no_one_and_sigterm_closes_them(tmp_path, scoutlens_home, model):
    """60 questions wait for a model that has not started answering: /v1/models answers
    before any of them got a token; SIGTERM ends the server and closes every stream."""
    from app.services.history import history
    from app.services.ingesting import ingest

    ingest([make_facts_repo(tmp_path / "facts")], "facts")
    model.next_reply = lambda: Reply(deltas=("tok ",), endless=True, gap_s=0.2, delay_s=120)
    with api(scoutlens_home, model.url) as server:
        streams = open_streams(server.port, 60, "facts", wait_s=120)
        assert all(s.status == 200 and s.events and not s.done.is_set() for s in streams), [
            (s.status, s.error, s.events[-1:]) for s in streams if s.done.is_set()][:3]
        status, _ = timed_get(server.port, "/v1/models", timeout=60)
        assert status == 200 and model.events_sent == 0  # answered while all 60 wait
        status, answer = _request(server.port, "POST", "/v1/chat/completions", [], SURROGATE)
        assert status == 400 and "not valid Unicode" in answer["error"]["message"]
        whole: list = []
        asker = threading.Thread(target=lambda: whole.append(_request(
            server.port, "POST", "/v1/chat/completions", [], json.dumps(
                {"model": "corpus:facts", "messages": [
                    {"role": "user", "content": "Which file sets RETRY_LIMIT?"}]}).encode())),
            daemon=True)
        asker.start()
        _wait_for(lambda: len(model.completions) == 61, "the whole answer reached the model")
        assert sigterm_seconds(server.proc, timeout=60) is not None  # it ended
    asker.join(10)
    assert whole and whole[0][0] == 503, whole
    assert whole[0][1]["error"]["code"] == "server_stopping"
    for s in streams:
        assert s.done.wait(10) and s.closed_cleanly, (s.error, s.events[-2:])
        assert json.loads(s.events[-2])["error"]["code"] == "server_stopping"
    assert history("facts") == []  # answers nobody received are not stored


def test_mcp_over_http_ends_on_sigterm_with_an_ask_in_flight(tmp_path, scoutlens_home, model):
    """A tool call waiting for the model's first token does not keep the server alive."""
    from app.services.ingesting import ingest

    ingest([make_facts_repo(tmp_path / "facts")], "facts")
    model.next_reply = lambda: Reply(deltas=("tok ",), endless=True, gap_s=0.2, delay_s=120)

    ended: list[str] = []

    async def ask(url: str) -> None:
        try:
            async with streamable_http_client(url) as (read, write), ClientSession(
                    read, write) as session:
                await session.initialize()
                await session.call_tool("ask", {"corpus": "facts", "question": "The code?"})
        except Exception as exc:  # noqa: BLE001 - the server went away: what the client saw
            ended.append(type(exc).__name__)

    with mcp_http(scoutlens_home, "--endpoint", model.url) as (url, proc):
        asker = threading.Thread(target=lambda: anyio.run(ask, url), daemon=True)
        asker.start()
        _wait_for(lambda: model.completions, "the question reached the model")
        assert sigterm_seconds(proc, timeout=60) is not None  # it ended
        asker.join(30)
    assert ended  # the client was told, not left waiting
