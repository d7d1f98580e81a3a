"""Issue 23, item 4, attacked with the MCP SDK's own client against real servers (no model).

Shared (`scoutlens mcp --transport http --shared`, people signed in through the proxy's
secret): a tokenizer or pack target that names a server file gets one refusal, the same for
files that exist and files that do not, and the server reads none of them (its /proc io
counters say so, with a 200 MB file named four times); a corpus named like a folder of the
server's working directory is packed as the corpus. Local (`scoutlens mcp` over stdio, the
operator's own agent): `out` never overwrites an unrelated file, writes a new one, and
rewrites a pack it wrote; an oversized tokenizer file is refused unread."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from helpers import REPO, make_facts_repo
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

SECRET = "proxy-secret-" + "9c1e" * 8
BIG = 200 << 20  # a sparse file: reading it would show as 200 MB read by the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The servers run this checkout's code from any working directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOUTLENS_")}
    return env | {"SCOUTLENS_HOME": str(home), "SCOUTLENS_WORKERS": "1",
                  "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                              env.get("PYTHONPATH")]))} | extra


def _read_bytes(pid: int) -> int:
    """Bytes the process has read through read(2) so far (its /proc io counter)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/PID/io")


def _error(result) -> str:
    assert result.is_error, result.content[0].text
    text = result.content[0].text
    assert "\n" not in text and "Traceback" not in text, text
    return text


def _json(result) -> dict:
    assert not result.is_error, result.content[0].text
    return json.loads(result.content[0].text)


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Corpora `facts` and `team` shared with everyone (ingested in this process, same data
    folder), a folder `facts` in the servers' working directory, secrets of the server's and
    a 200 MB file beside them."""
    from app.services.catalog import share_corpus
    from app.services.ingesting import ingest

    monkeypatch.setenv("SCOUTLENS_WORKERS", "1")
    repo = make_facts_repo(tmp_path / "facts")
    for name in ("facts", "team"):
        ingest([repo], name)
        share_corpus(name, "everyone")
    server = tmp_path / "server"
    (server / "hfdir").mkdir(parents=True)
    (server / "hfdir" / "tokenizer.json").write_text("{}")
    (server / "shadow").write_text("root:$6$secret\n")
    with open(server / "big.model", "wb") as fh:
        fh.truncate(BIG)
    return tmp_path


@contextmanager
def http_server(root: Path):
    port = _free_port()
    log = root / "mcp-http.log"
    env = _env(root / "home", SCOUTLENS_AUTH="header", SCOUTLENS_AUTH_PROXY_SECRET=SECRET)
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "mcp", "--transport", "http", "--port",
             str(port), "--shared"], env=env, cwd=root, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=2)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"the MCP server did not start: {log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/mcp", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@asynccontextmanager
async def signed_in(url: str):
    """mallory, an ordinary member of the team, through the proxy."""
    headers = {"X-Scoutlens-Proxy-Secret": SECRET, "X-Forwarded-User": "mallory",
               "X-Forwarded-Groups": "staff"}
    async with create_mcp_http_client(headers=headers) as client, streamable_http_client(
            url, http_client=client) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def test_a_shared_server_names_no_file_of_its_own(world):
    server = world / "server"
    missing = server / "missing"
    tokenizers = [f"llama4:{server / 'shadow'}", f"llama4:{missing}", f"hf:{server / 'hfdir'}",
                  f"hf:{missing}", "llama4:/etc/shadow", "hf:/etc", "/etc/passwd"]
    targets = [str(server / "shadow"), str(missing), "/etc/passwd", str(world / "facts")]

    async def attack(url: str, pid: int) -> None:
        async with signed_in(url) as session:
            async def pack(**arguments):
                return await session.call_tool("pack", {"target": ["team"]} | arguments)

            refusals = {_error(await pack(tokenizer=t)) for t in tokenizers}
            assert len(refusals) == 1, refusals  # no existence oracle
            assert "cl100k, o200k, embedded" in refusals.pop()
            refusals = {_error(await session.call_tool("pack", {"target": [t]}))
                        for t in targets}
            assert len(refusals) == 1 and "one stored corpus name" in refusals.pop()

            before = _read_bytes(pid)
            for _ in range(4):
                _error(await pack(tokenizer=f"llama4:{server / 'big.model'}"))
            assert _read_bytes(pid) - before < 16 << 20  # the 200 MB file was not read

            assert "off on a shared server" in _error(
                await pack(out=str(server / "shadow")))
            assert "off on a shared server" in _error(await session.call_tool(
                "ingest", {"paths": ["/etc/passwd"]}))
            assert "is not a source" in _error(await session.call_tool(
                "read_source", {"corpus": "facts", "path": "/etc/passwd"}))
            # the corpus `facts`, though the server's working directory has a folder `facts`
            packed = await session.call_tool("pack", {"target": ["facts"],
                                                      "tokenizer": "o200k"})
            assert _json(packed)["sources"] == 3 and "7291" in packed.content[1].text

    with http_server(world) as (url, proc):
        anyio.run(attack, url, proc.pid)
    assert (server / "shadow").read_text() == "root:$6$secret\n"


def test_a_local_agent_never_overwrites_an_unrelated_file(world):
    notes = world / "notes.txt"
    notes.write_text("the operator's own notes\n")
    out = world / "packs" / "facts.xml"
    out.parent.mkdir()
    params = StdioServerParameters(command=sys.executable, args=["-m", "app.cli", "mcp"],
                                   env=_env(world / "home"), cwd=str(REPO))

    async def run() -> None:
        with open(world / "mcp-stdio.log", "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(
                    read, write) as session:
                await session.initialize()

                async def pack(**arguments):
                    return await session.call_tool("pack", {"target": ["facts"]} | arguments)

                refused = _error(await pack(out=str(notes)))
                assert "refusing to overwrite" in refused and "not a pack" in refused
                assert _json(await pack(out=str(out)))["out"] == str(out)
                assert out.read_text().startswith('<corpus name="facts">')
                rewritten = _json(await pack(out=str(out), budget="2k", fit=True))
                assert rewritten["out"] == str(out) and "7291" in out.read_text()
                big = world / "server" / "big.model"
                assert "MB: not a tokenizer" in _error(await pack(tokenizer=f"llama4:{big}"))
                assert _json(await session.call_tool("list_corpora", {}))["corpora"]

    anyio.run(run)
    assert notes.read_text() == "the operator's own notes\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["facts.xml"]
