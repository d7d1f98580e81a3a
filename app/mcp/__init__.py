"""`scoutlens mcp`: the services as Model Context Protocol tools, for editors and coding agents.

One job per module: `schemas` (each tool's arguments, the JSON schema a client shows a person,
and one-line messages for bad arguments) and `tools` (each tool calling its service, never a
second implementation). The server that serves them, and the runtime and sign-in it shares
with `serve api`, are in app.servers (`mcp_server`, `runtime`, `signin`)."""
