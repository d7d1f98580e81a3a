"""`scoutlens mcp`: the services as Model Context Protocol tools, for editors and coding agents.

One job per module: `schemas` (each tool's arguments, the JSON schema a client shows a person,
and one-line messages for bad arguments), `tools` (each tool calling its service, never a
second implementation), `runtime` (what a server process keeps between calls: one loaded
model, who is asking, whether it serves a network), `signin` (who a request over the network
is, from a trusted proxy's headers; the api server uses it too) and `server` (the SDK's
low-level server over stdio or streamable HTTP, turning every refusal into a tool error)."""
