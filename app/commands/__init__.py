"""Sub-commands beyond ingest/pack/corpora, one module each; every module exposes `register(app)`.

Modules are imported lazily inside each command body where they pull heavy packages (torch,
openai), so `scoutlens --help` stays fast.
"""

from __future__ import annotations

import importlib

import typer

MODULES = ("complete", "cache", "plan", "serve", "prewarm", "ask", "evals")


def register_all(app: typer.Typer) -> None:
    for name in MODULES:
        importlib.import_module(f"app.commands.{name}").register(app)
