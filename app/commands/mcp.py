"""`scoutlens mcp`: the corpora as tools for editors and coding agents (Model Context Protocol)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.commands.acting import who
from app.commands.options import (
    LOOPBACK,
    SIGN_IN_HOST_HELP,
    BackendOpt,
    EndpointOpt,
    ModelOpt,
    host_option,
    port_option,
    shared_option,
)
from common.errors import UserError

TRANSPORTS = ("stdio", "http")


def mcp(
    transport: Annotated[str, typer.Option(
        help="stdio: a client starts this command and talks over stdin/stdout (editors, "
             "agents); http: streamable HTTP at http://HOST:PORT/mcp")] = "stdio",
    port: Annotated[int, port_option("http: port")] = 8765,
    host: Annotated[str, host_option(f"http: {SIGN_IN_HOST_HELP}")] = LOOPBACK,
    shared: Annotated[bool | None, shared_option(
        "shared: no local paths in (tokenizers by name: built-in "
        "or SCOUTLENS_SHARED_TOKENIZERS), no files out, people sign in through the proxy; "
        "default: trusted over stdio and on loopback")] = None,
    backend: BackendOpt = None,
    endpoint: EndpointOpt = None,
    model: ModelOpt = None,
) -> None:
    """Serve the corpora as MCP tools: list_corpora, ingest, search, read_source, pack, ask.

    \b
    A client's config (Claude Desktop, Cursor, VS Code, ...):
      {"mcpServers": {"scoutlens": {"command": "scoutlens", "args": ["mcp"]}}}
    The model for `ask` loads at the first question and stays loaded.
    """
    import anyio

    from app import __version__
    from app.servers.mcp_server import build_server, serve_http, serve_stdio
    from app.servers.runtime import Runtime
    from app.servers.signin import needs_sign_in, principal, warn_loopback_trust

    if transport not in TRANSPORTS:
        raise UserError(f"--transport must be {' or '.join(TRANSPORTS)}, not {transport!r}")
    if transport == "stdio":
        if shared:
            raise UserError("--shared is for --transport http: a stdio server is started by "
                            "its one local client")
        sign_in = False
    else:
        sign_in = needs_sign_in(host, shared, "scoutlens mcp")
        if sign_in:
            warn_loopback_trust()
    rt = Runtime(shared=sign_in, backend=backend, endpoint=endpoint, model=model)
    local = who()  # the operator, or --as USER

    def who_of(ctx) -> object:
        if not sign_in:
            return local
        request = ctx.request
        if request is None:
            raise UserError("not signed in: no HTTP request to read the sign-in from")
        return principal(request.headers, request.client.host if request.client else None)

    server = build_server(rt, who_of, __version__)
    if transport == "stdio":
        anyio.run(serve_stdio, server)
    else:
        typer.echo(f"scoutlens MCP on http://{host}:{port}/mcp (Ctrl-C stops it)"
                   + ("; shared: sign-in through the proxy, no local paths" if sign_in else ""),
                   err=True)
        serve_http(server, host, port)
