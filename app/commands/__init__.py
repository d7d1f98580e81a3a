"""Sub-commands beyond ingest/pack/corpora/ui, one module per command group, each a plain
function (or a Typer group) that app/cli.py registers by name.

Modules import what they need lazily inside each command body where it pulls heavy packages
(torch, the ingest pipeline), so `scoutlens --help` stays fast.
"""
