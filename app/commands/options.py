"""Options several commands share, declared once so their names and help never drift apart
(the model server: `--backend`, `--endpoint`, `-m/--model`; `--json`)."""

from __future__ import annotations

from typing import Annotated

import typer

BackendOpt = Annotated[str | None, typer.Option(
    "--backend", "-b", help="embedded (in-process) | openai (a server); default: openai when an "
    "endpoint is set, else SCOUTLENS_BACKEND (embedded)")]
EndpointOpt = Annotated[str | None, typer.Option(
    "--endpoint", "-e", help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1; "
    "default: SCOUTLENS_ENDPOINT")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="embedded: a model folder; openai: the served model name; default: "
    "SCOUTLENS_MODEL, else the bundled model or the server's first")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON only")]
