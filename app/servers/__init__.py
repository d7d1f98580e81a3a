"""The servers: `scoutlens serve api` (an OpenAI-compatible chat endpoint) and `scoutlens mcp`
(the services as MCP tools), and what they share. One job per module:

- `turns`: the one turn-taking lock on the model (the embedded model has one KV buffer), used
  by the API, MCP and the web UI (ui/shared_backend.py).
- `runtime`: what a server process keeps between calls (the model, whether it is shared).
- `signin`: who a request over the network is; whether a server may listen beyond loopback.
- `hosts`: which names are loopback (a bind address, a request's Host header).
- `daemon`: blocking work awaited from the event loop in daemon threads (SIGTERM never waits).
- `http`: uvicorn's HTTP protocol with a bound on connections still sending their request.
- `errors`: the API's OpenAI-shaped refusals.
- `chat_request`: a chat completion body read, checked and parsed.
- `conversations`: the stored conversation a request's earlier turns continue.
- `admission`: the questions in flight, admitted up to a bound and stopped together.
- `answers`: a chat request answered by the ask service, and the answer in OpenAI's shape.
- `bridge`: the answer's worker thread bridged to the event loop (whole, or streamed as SSE).
- `api`: the API's Starlette app and its runner; `mcp_server`: the MCP server (its tools:
  app.mcp).
"""
