"""`scoutlens ui` and sign-in, without a browser: a shared UI without sign-in is refused at start
(one line naming what to set), an incomplete OIDC or trusted-header setup is refused naming what
is missing, and the secrets file Streamlit's st.login reads is written for this user only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib

import pytest

from app.commands.ui import oidc_secrets, sign_in_mode
from app.settings import Settings, get_settings
from common.errors import UserError

AUTH_VARS = ("SCOUTLENS_AUTH", "SCOUTLENS_OIDC_ISSUER", "SCOUTLENS_OIDC_CLIENT_ID",
             "SCOUTLENS_OIDC_CLIENT_SECRET", "SCOUTLENS_OIDC_COOKIE_SECRET",
             "SCOUTLENS_OIDC_REDIRECT_URI", "SCOUTLENS_AUTH_PROXY_SECRET",
             "SCOUTLENS_AUTH_PROXY_IPS")
OIDC = {"SCOUTLENS_OIDC_ISSUER": "https://id.example.org/realms/t/",
        "SCOUTLENS_OIDC_CLIENT_ID": "scoutlens", "SCOUTLENS_OIDC_CLIENT_SECRET": 'c"s\\1',
        "SCOUTLENS_OIDC_COOKIE_SECRET": "k" * 32}


def ui(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`scoutlens ui ARGS` with only ENV's sign-in settings; refusals exit before Streamlit."""
    clean = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
    return subprocess.run([sys.executable, "-m", "app.cli", "ui", *args],
                          capture_output=True, text=True, env={**clean, **env}, timeout=60)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr and "streamlit" not in proc.stdout.lower()
    return lines[0]


def test_shared_without_sign_in_is_refused_naming_both_ways_out():
    line = one_line_error(ui("--shared", "--port", "1"))
    assert "SCOUTLENS_AUTH" in line and "--no-auth" in line


def test_network_host_is_shared_and_refused_too():
    line = one_line_error(ui("--host", "0.0.0.0", "--port", "1"))
    assert "SCOUTLENS_AUTH" in line and "--no-auth" in line


def test_oidc_with_settings_missing_names_them():
    line = one_line_error(ui("--shared", "--port", "1", SCOUTLENS_AUTH="oidc",
                             SCOUTLENS_OIDC_ISSUER="https://id.example.org"))
    for name in ("SCOUTLENS_OIDC_CLIENT_ID", "SCOUTLENS_OIDC_CLIENT_SECRET",
                 "SCOUTLENS_OIDC_COOKIE_SECRET"):
        assert name in line
    assert "SCOUTLENS_OIDC_ISSUER" not in line  # it is set


def test_oidc_on_all_interfaces_needs_the_public_redirect_uri():
    line = one_line_error(ui("--host", "0.0.0.0", "--port", "1", SCOUTLENS_AUTH="oidc", **OIDC))
    assert "SCOUTLENS_OIDC_REDIRECT_URI" in line


def test_header_without_secret_or_addresses_is_refused():
    line = one_line_error(ui("--shared", "--port", "1", SCOUTLENS_AUTH="header"))
    assert "SCOUTLENS_AUTH_PROXY_SECRET" in line and "SCOUTLENS_AUTH_PROXY_IPS" in line


def test_unknown_mode_is_refused():
    line = one_line_error(ui("--shared", "--port", "1", SCOUTLENS_AUTH="ldap"))
    assert "oidc or header" in line


@pytest.mark.parametrize("env", [{"SCOUTLENS_AUTH_PROXY_SECRET": "s"},
                                 {"SCOUTLENS_AUTH_PROXY_IPS": '["10.0.0.5"]'}])
def test_header_with_secret_or_addresses_is_accepted(env, monkeypatch):
    for k, v in {"SCOUTLENS_AUTH": "header", **env}.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    assert sign_in_mode(get_settings()) == "header"


def test_trusted_beyond_loopback_is_refused():
    """--trusted lets visitors read this machine's folders: never for a network."""
    line = one_line_error(ui("--host", "0.0.0.0", "--trusted", "--port", "1"))
    assert "--trusted" in line and "loopback" in line


def test_sign_in_configured_makes_loopback_shared_too(monkeypatch):
    """A proxy on this machine forwards to 127.0.0.1: with SCOUTLENS_AUTH set, a loopback UI
    signs people in instead of serving everyone as the operator."""
    from app.commands import ui as ui_cmd

    seen: dict[str, str] = {}

    def fake_execv(path, args):
        seen.update(auth=os.environ["SCOUTLENS_UI_AUTH"], shared=os.environ["SCOUTLENS_UI_SHARED"])
        raise SystemExit(0)

    monkeypatch.setattr(ui_cmd.os, "execv", fake_execv)
    monkeypatch.setenv("SCOUTLENS_AUTH", "header")
    monkeypatch.setenv("SCOUTLENS_AUTH_PROXY_SECRET", "s3cret")
    get_settings.cache_clear()
    with pytest.raises(SystemExit):
        ui_cmd.ui(port=1)
    assert (seen["auth"], seen["shared"]) == ("header", "1")
    get_settings.cache_clear()


def test_no_auth_flag_and_loopback_need_no_sign_in_settings(monkeypatch):
    """The mode chosen without starting Streamlit: `--no-auth` is open, loopback is local."""
    from app.commands import ui as ui_cmd

    seen: dict[str, str] = {}

    def fake_execv(path, args):
        seen.update(auth=os.environ["SCOUTLENS_UI_AUTH"], shared=os.environ["SCOUTLENS_UI_SHARED"],
                    args=" ".join(args))
        raise SystemExit(0)

    monkeypatch.setattr(ui_cmd.os, "execv", fake_execv)
    for k in AUTH_VARS:
        monkeypatch.delenv(k, raising=False)
    get_settings.cache_clear()
    for kwargs, auth, shared in [(dict(trusted=False, no_auth=True), "open", "1"),
                                 (dict(), "local", "0")]:
        with pytest.raises(SystemExit):
            ui_cmd.ui(port=1, **kwargs)
        assert (seen["auth"], seen["shared"]) == (auth, shared)
        assert "--secrets.files" not in seen["args"]


def test_oidc_secrets_file_is_private_and_complete(scoutlens_home, monkeypatch):
    for k, v in {"SCOUTLENS_AUTH": "oidc", **OIDC}.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    s = get_settings()
    assert sign_in_mode(s) == "oidc"
    path = oidc_secrets(s, "127.0.0.1", 8765)
    assert path.is_relative_to(scoutlens_home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    auth = tomllib.loads(path.read_text())["auth"]
    assert auth == {
        "redirect_uri": "http://127.0.0.1:8765/oauth2callback",
        "cookie_secret": "k" * 32, "client_id": "scoutlens", "client_secret": 'c"s\\1',
        "server_metadata_url":
            "https://id.example.org/realms/t/.well-known/openid-configuration",
        "client_kwargs": {"scope": "openid profile email"}}


def test_oidc_secrets_use_the_configured_redirect_and_scopes(monkeypatch):
    s = Settings(auth="oidc", oidc_issuer="https://id.example.org", oidc_client_id="c",
                 oidc_client_secret="s", oidc_cookie_secret="k",
                 oidc_redirect_uri="https://scout.example.org/oauth2callback",
                 oidc_scopes="openid email groups")
    auth = tomllib.loads(oidc_secrets(s, "0.0.0.0", 8501).read_text())["auth"]
    assert auth["redirect_uri"] == "https://scout.example.org/oauth2callback"
    assert auth["client_kwargs"] == {"scope": "openid email groups"}


def test_oidc_on_all_interfaces_without_redirect_is_refused():
    s = Settings(auth="oidc", oidc_issuer="https://id.example.org", oidc_client_id="c",
                 oidc_client_secret="s", oidc_cookie_secret="k")
    with pytest.raises(UserError, match="SCOUTLENS_OIDC_REDIRECT_URI"):
        oidc_secrets(s, "0.0.0.0", 8501)


def test_open_ui_shows_the_banner_on_every_page(monkeypatch):
    """`--no-auth` (SCOUTLENS_UI_AUTH=open): every page says so, through the app's navigation."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    views = Path(__file__).resolve().parents[2] / "ui" / "views"
    monkeypatch.setenv("SCOUTLENS_UI_AUTH", "open")
    monkeypatch.setenv("SCOUTLENS_UI_SHARED", "1")
    at = AppTest.from_file(str(views / "scoutlens_ui.py"), default_timeout=60)
    for name in ("corpora", "ask", "evals", "engine", "settings"):
        at.switch_page(str(views / f"{name}_page.py")).run()
        assert not at.exception, (name, at.exception)
        assert any("Open UI" in w.value for w in at.warning), name
        assert at.header and at.header[0].value == name.title(), name  # that page ran
