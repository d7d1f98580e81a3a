"""`scoutlens ui` (the Streamlit app) and `scoutlens version`."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)
out = Console()


def ui(port: Annotated[int, typer.Option(help="port")] = 8501,
       host: Annotated[str, typer.Option(
           help="address to listen on (0.0.0.0 to serve a team; mind there is no login)")]
       = "127.0.0.1",
       trusted: Annotated[bool | None, typer.Option(
           "--trusted/--shared", help="trusted: users may ingest folders of this machine and "
           "change the model server; default: trusted on loopback, shared otherwise")]
       = None) -> None:
    """Start the web UI (Streamlit): corpora, ask, evals, engine, settings."""
    import importlib.util

    from app.settings import MAX_UPLOAD_MB

    spec = importlib.util.find_spec("ui.views.scoutlens_ui")
    assert spec is not None and spec.origin is not None
    args = [sys.executable, "-m", "streamlit", "run", spec.origin,
            "--server.port", str(port), "--server.address", host,
            "--server.headless", "true", "--server.fileWatcherType", "none",
            # the ceiling; the limit chosen in Settings is enforced per file by the app
            "--server.maxUploadSize", str(MAX_UPLOAD_MB),
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
            "--global.developmentMode", "false",
            # an unforeseen error shows its type, never a stack trace (that goes to the log)
            "--client.showErrorDetails", "type"]
    if trusted is None:
        trusted = host in ("127.0.0.1", "localhost", "::1")
    os.environ["SCOUTLENS_UI_SHARED"] = "0" if trusted else "1"
    console.print(f"scoutlens UI on http://{host}:{port} (Ctrl-C stops it)"
                  + ("" if trusted else "; shared: no local folders, no model-server changes"))
    sys.stdout.flush()
    os.execv(sys.executable, args)  # Streamlit gets the signals directly


def version() -> None:
    """Print the version."""
    from app import __version__

    out.print(f"scoutlens {__version__}")
