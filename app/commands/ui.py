"""`scoutlens ui` (the Streamlit app) and `scoutlens version`."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console

from app.commands.options import LOOPBACK, host_option, port_option

console = Console(stderr=True)
out = Console()


def ui(port: Annotated[int, port_option("port", checked=False)] = 8501,
       host: Annotated[str, host_option(
           "address to listen on (0.0.0.0 to serve a team; mind there is no login)")]
       = LOOPBACK,
       trusted: Annotated[bool | None, typer.Option(
           "--trusted/--shared", help="trusted: users may ingest folders of this machine and "
           "change the model server; default: trusted on loopback, shared otherwise")]
       = None,
       no_auth: Annotated[bool, typer.Option(
           "--no-auth", help="serve a shared UI without sign-in, on purpose (a banner says "
           "so on every page)")] = False) -> None:
    """Start the web UI (Streamlit): corpora, ask, evals, engine, settings.

    A shared UI (--host 0.0.0.0, or --shared) needs sign-in: SCOUTLENS_AUTH=oidc (OpenID
    Connect; SCOUTLENS_OIDC_ISSUER, _CLIENT_ID, _CLIENT_SECRET, _COOKIE_SECRET) or
    SCOUTLENS_AUTH=header (behind a proxy that signs people in; SCOUTLENS_AUTH_PROXY_SECRET
    and/or SCOUTLENS_AUTH_PROXY_IPS). See docs/teams.md.
    """
    import importlib.util

    from app.settings import get_settings

    spec = importlib.util.find_spec("ui.views.scoutlens_ui")
    assert spec is not None and spec.origin is not None
    # ui.launch runs `streamlit run` with the upload limit saved in Settings as the server's
    # cap, so an oversized upload is refused while it arrives, never held in memory
    args = [sys.executable, "-m", "ui.launch", spec.origin,
            "--server.port", str(port), "--server.address", host,
            "--server.headless", "true", "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
            "--global.developmentMode", "false",
            # an unforeseen error shows its type, never a stack trace (that goes to the log)
            "--client.showErrorDetails", "type"]
    loopback = host in ("127.0.0.1", "localhost", "::1")
    if trusted and not loopback:
        from common.errors import UserError

        raise UserError("--trusted lets visitors read this machine's folders and change the "
                        "model server: it stays on loopback; on a network people sign in "
                        "(SCOUTLENS_AUTH), or --no-auth serves it open without those")
    if trusted is None:  # sign-in configured: a proxy on this machine may forward to loopback
        trusted = loopback and not (get_settings().auth or "").strip()
    auth = "local" if trusted else "open" if no_auth else sign_in_mode(get_settings())
    if auth == "oidc":
        args += ["--secrets.files", str(oidc_secrets(get_settings(), host, port))]
    os.environ["SCOUTLENS_UI_SHARED"] = "0" if trusted else "1"
    os.environ["SCOUTLENS_UI_AUTH"] = auth
    from app.services.signin import NO_FORWARDED_ENV

    os.environ.update(NO_FORWARDED_ENV)  # the peer is the socket's, never X-Forwarded-For's
    console.print(f"scoutlens UI on http://{host}:{port} (Ctrl-C stops it)"
                  + ("" if trusted else "; shared: no local folders, no model-server changes")
                  + {"oidc": "; sign-in: OpenID Connect", "header": "; sign-in: trusted proxy",
                     "open": "; [yellow]open: no sign-in (--no-auth)[/]"}.get(auth, ""))
    sys.stdout.flush()
    os.execv(sys.executable, args)  # Streamlit gets the signals directly


def sign_in_mode(s) -> str:
    """The sign-in a shared UI uses; refused when none is configured or it is incomplete."""
    from common.errors import UserError

    mode = (s.auth or "").strip().lower()
    if mode == "oidc":
        missing = [f"SCOUTLENS_OIDC_{k.upper()}" for k in
                   ("issuer", "client_id", "client_secret", "cookie_secret")
                   if not getattr(s, f"oidc_{k}")]
        if missing:
            raise UserError(f"SCOUTLENS_AUTH=oidc needs {', '.join(missing)}")
        return mode
    if mode == "header":
        from app.services.signin import check_header_mode

        check_header_mode(s)
        from app.services.signin import loopback_trust_note

        if note := loopback_trust_note(s):
            console.print(note, markup=False)
        return mode
    if mode:
        raise UserError(f"SCOUTLENS_AUTH must be oidc or header, not {s.auth!r}")
    raise UserError("a shared UI needs sign-in: set SCOUTLENS_AUTH=oidc (OpenID Connect) or "
                    "SCOUTLENS_AUTH=header (behind a signing-in proxy), or pass --no-auth to "
                    "serve it open on purpose")


def oidc_secrets(s, host: str, port: int):
    """Streamlit's st.login reads its provider from a secrets file: written from settings
    under SCOUTLENS_HOME, readable by this user only."""
    import json

    from common.errors import UserError
    from common.files import atomic_write_text

    redirect = s.oidc_redirect_uri
    if not redirect:
        if host in ("0.0.0.0", "::"):
            raise UserError("set SCOUTLENS_OIDC_REDIRECT_URI to the UI's public URL + "
                            "/oauth2callback (the provider sends people back there)")
        redirect = f"http://{host}:{port}/oauth2callback"
    issuer = s.oidc_issuer.rstrip("/")
    q = json.dumps  # TOML basic strings accept JSON's escapes
    text = "\n".join([
        "[auth]", f"redirect_uri = {q(redirect)}", f"cookie_secret = {q(s.oidc_cookie_secret)}",
        f"client_id = {q(s.oidc_client_id)}", f"client_secret = {q(s.oidc_client_secret)}",
        f"server_metadata_url = {q(issuer + '/.well-known/openid-configuration')}",
        f"client_kwargs = {{ scope = {q(s.oidc_scopes)} }}", ""])
    path = s.home_dir / "ui" / "secrets.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    path.chmod(0o600)
    return path


def version() -> None:
    """Print the version."""
    from app import __version__

    out.print(f"scoutlens {__version__}")
