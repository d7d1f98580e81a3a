"""`scoutlens mcp`'s server: the SDK's low-level `Server` with the tools of app.mcp.tools, over
stdio (a local client starts it) or streamable HTTP.

The low-level server rather than the SDK's decorator API so that every refusal reaches the
client as the CLI's one line in an `isError` result: bad arguments (checked by our own models,
app.mcp.schemas, whose JSON schemas the client shows), a service's UserError, and even a bug
(logged to stderr with its traceback; the client gets its type and first line), and the
server keeps answering. Tools run in worker threads, so a long ingest or a question does not
hold up other calls; the model is loaded once (app.servers.runtime)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server

from app.mcp.schemas import TOOLS, input_schema, parse
from app.mcp.tools import HANDLERS
from app.servers.daemon import run_daemon
from app.servers.errors import ClientGone
from app.servers.runtime import Runtime
from app.services.access import Who, label
from common.errors import UserError

log = logging.getLogger("scoutlens.mcp")
INSTRUCTIONS = (
    "scoutlens: retrieval and cited answers over stored corpora (code repositories, PDFs, "
    "text, videos). list_corpora names them; search finds places; read_source reads a line "
    "range, a PDF page or a video frame's text; pack gives a whole corpus within a token "
    "budget for your own model; ask answers on scoutlens's model with checked citations; "
    "analyze briefs, extracts a table from or compares a whole corpus (analyses reads them "
    "back).")
READ_ONLY = {"list_corpora", "search", "read_source", "analyses"}
#: tool -> the key of a long text returned as a block of its own (not JSON-escaped)
TEXT_KEYS = {"pack": "text", "analyses": "document"}
TOOL_THREADS = 40  # slow tool calls (ask, pack, ingest) running at once (more wait)
QUICK_THREADS = 8  # the read-only tools' own places: a crowd of slow asks never delays them
PER_PERSON = 8  # of either, one person's calls running at once (their next ones wait)
STOPPABLE = {"analyze"}  # a client cancelling stops these at their next progress report
WhoOf = Callable[[ServerRequestContext], Who]


def tool_list() -> list[types.Tool]:
    return [types.Tool(
        name=name, title=title, description=description, input_schema=input_schema(name),
        annotations=types.ToolAnnotations(
            title=title, read_only_hint=name in READ_ONLY, destructive_hint=False,
            idempotent_hint=name in READ_ONLY or name == "ingest", open_world_hint=False))
        for name, (_, title, description) in TOOLS.items()]


def error_result(message: str) -> types.CallToolResult:
    """A tool error: one line, as the CLI prints it after `error:`."""
    return types.CallToolResult(content=[types.TextContent(text=" ".join(message.split()))],
                                is_error=True)


def ok_result(name: str, result: dict[str, Any]) -> types.CallToolResult:
    """JSON for the client (and its model) to read; a packed text (or an exported analysis)
    as a block of its own, so the text is not JSON-escaped, and not repeated in the
    structured result."""
    key = TEXT_KEYS.get(name)
    if key is not None and key in result:
        text = result.pop(key)
        return types.CallToolResult(content=[
            types.TextContent(text=json.dumps(result, ensure_ascii=False)),
            types.TextContent(text=text)], structured_content=result)
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps(result, ensure_ascii=False, indent=1))],
        structured_content=result)


def progress_reporter(ctx: ServerRequestContext, gone: threading.Event | None = None
                      ) -> Callable[[str, int, int, str], None]:
    """A service's progress(stage, done, total, detail), called from its worker thread, as
    MCP progress notifications (when the client asked for them), at most 4 a second. The
    progress value counts reports, since the spec wants it rising and stages restart at 0.
    Once `gone` is set (the client cancelled the call), a report raises ClientGone: an
    analysis stops between two model calls, left resumable, instead of holding the model."""
    token = anyio.lowlevel.current_token()
    state = {"sent": 0.0, "count": 0}

    def report(stage: str, done: int, total: int, detail: str) -> None:
        if gone is not None and gone.is_set():
            raise ClientGone("the call was cancelled (or the server stopped)")
        now = time.monotonic()
        if now - state["sent"] < 0.25 and done < total:
            return
        state["sent"], state["count"] = now, state["count"] + 1
        message = f"{stage} {done:,}/{total:,}" if total else stage
        message += f": {detail}" if detail else ""
        try:
            anyio.from_thread.run(ctx.session.report_progress, float(state["count"]), None,
                                  message[:200], token=token)
        except Exception:  # a client gone or a call from elsewhere: progress is best-effort
            log.debug("progress not sent", exc_info=True)

    return report


class Places:
    """Where a tool call waits for a thread: its person's share of its kind first, then the
    pool of its kind. One caller's forty slow asks (a model that takes minutes) then hold
    PER_PERSON places and leave the rest, and every read-only call, to everyone else."""

    def __init__(self, slow: int = TOOL_THREADS, quick: int = QUICK_THREADS,
                 per_person: int = PER_PERSON):
        self.pools = {False: anyio.CapacityLimiter(slow), True: anyio.CapacityLimiter(quick)}
        self.per_person = per_person
        self.shares: dict[tuple[str, bool], anyio.CapacityLimiter] = {}

    def pool(self, tool: str) -> anyio.CapacityLimiter:
        return self.pools[tool in READ_ONLY]

    def share(self, who: Who, tool: str) -> anyio.CapacityLimiter:
        key = (label(who), tool in READ_ONLY)
        if key not in self.shares:
            self.shares[key] = anyio.CapacityLimiter(self.per_person)
        return self.shares[key]


def build_server(rt: Runtime, who_of: WhoOf, version: str = "",
                 places: Places | None = None) -> Server:
    places = places or Places()

    async def list_tools(ctx: ServerRequestContext,
                         params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tool_list())

    async def call_tool(ctx: ServerRequestContext,
                        params: types.CallToolRequestParams) -> types.CallToolResult:
        name = params.name
        gone = threading.Event()
        try:
            args = parse(name, params.arguments)
            who = await anyio.to_thread.run_sync(who_of, ctx)
            report = progress_reporter(ctx, gone if name in STOPPABLE else None)
            # a daemon thread: a server stopping does not wait for a long ask
            async with places.share(who, name):
                result = await run_daemon(HANDLERS[name], args, rt, who, report,
                                          name=f"scoutlens-mcp-{name}", limiter=places.pool(name))
        except anyio.get_cancelled_exc_class():
            gone.set()  # the client cancelled (or the server stops): the thread stops too
            raise
        except UserError as exc:
            return error_result(str(exc))
        except Exception as exc:  # a bug: the log has the traceback, the client one line
            log.exception("tool %s failed", name)
            first = (str(exc).splitlines() or [""])[0][:300]
            return error_result(f"internal error in {name}: {type(exc).__name__}: {first}")
        return ok_result(name, result)

    return Server("scoutlens", version=version, title="scoutlens", instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)


async def serve_stdio(server: Server) -> None:
    """One client on stdin/stdout (the SDK moves fd 1 aside, so a stray print from a library
    goes to stderr instead of corrupting the protocol)."""
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def serve_http(server: Server, host: str, port: int) -> None:
    """Streamable HTTP at http://HOST:PORT/mcp (with the SDK's DNS-rebinding protection on
    loopback). The peer address a sign-in compares is the socket's, never X-Forwarded-For's
    (app.services.signin)."""
    import uvicorn

    from app.servers.http import bounded_http
    from app.services.signin import PEER_FROM_SOCKET

    app = server.streamable_http_app(host=host)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3,
                http=bounded_http(), **PEER_FROM_SOCKET)
