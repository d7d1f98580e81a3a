"""A hostile teammate after issue 23's fixes, against the MCP server (the SDK's client and
server over memory streams): one caller's slow asks (a model that takes minutes) must not take
every tool thread: another person's list_corpora answers while forty-five of mallory's asks
wait for the model."""

from __future__ import annotations

import threading

import anyio
import pytest
from mcp import ClientSession
from mcp.shared.memory import create_client_server_memory_streams

from app.servers import mcp_server
from app.servers.runtime import Runtime
from app.services.access import Principal

MALLORY, BOB = Principal("mallory"), Principal("bob")


@pytest.fixture
def held(monkeypatch):
    """`ask` waits until the test ends; `list_corpora` answers at once."""
    gate = threading.Event()

    def slow_ask(args, rt, who, progress):
        gate.wait(60)
        return {"answer": "late"}

    monkeypatch.setitem(mcp_server.HANDLERS, "ask", slow_ask)
    monkeypatch.setitem(mcp_server.HANDLERS, "list_corpora", lambda *a: {"corpora": []})
    yield
    gate.set()


def _who(ctx) -> Principal:
    """mallory asks; bob lists."""
    return MALLORY if (ctx.params or {}).get("name") == "ask" else BOB


def test_one_callers_slow_asks_leave_places_for_everyone(held):
    server = mcp_server.build_server(Runtime(), _who)

    async def run() -> None:
        async with create_client_server_memory_streams() as (client, srv), \
                anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.run(srv[0], srv[1],
                                             server.create_initialization_options()))
            async with ClientSession(*client) as session:
                await session.initialize()
                async with anyio.create_task_group() as asks:
                    for i in range(45):
                        asks.start_soon(session.call_tool, "ask",
                                        {"corpus": "facts", "question": f"q{i}?"})
                    await anyio.sleep(0.5)  # the asks are taken and wait for the model
                    with anyio.fail_after(30):
                        listed = await session.call_tool("list_corpora", {})
                    asks.cancel_scope.cancel()
                assert not listed.is_error, listed.content[0].text
            tg.cancel_scope.cancel()

    anyio.run(run)
