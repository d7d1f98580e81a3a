"""Sign-in by proxy address, attacked as a process on the same machine would: the address
compared is the connection's peer (never X-Forwarded-For / X-Real-IP), loopback is one machine
whichever family it came over (::1 or 127.0.0.1), addresses are compared as addresses (IPv4
mapped into IPv6, networks), and a header the proxy sends once is nobody when it comes twice
with different values. The same rules for the UI (its peer is the session's socket), the API
and MCP servers (app.servers.signin)."""

from __future__ import annotations

import os

import pytest
from starlette.datastructures import Headers

from app.services.signin import (
    NO_FORWARDED_ENV,
    PEER_FROM_SOCKET,
    check_header_mode,
    from_proxy,
    proxy_user,
)
from app.settings import Settings, get_settings
from common.errors import UserError

PROXY = "10.9.9.9"


def _settings(ips: list[str], secret: str | None = None) -> Settings:
    return Settings(auth="header", auth_proxy_ips=ips, auth_proxy_secret=secret)


def _values(*pairs: tuple[str, str]):
    """A header reader as the servers give it: every line of a name, case-insensitively."""
    raw = [(k.lower().encode(), v.encode()) for k, v in pairs]
    return Headers(raw=raw).getlist


SPOOF = (("X-Forwarded-For", PROXY), ("X-Real-IP", PROXY), ("Forwarded", f"for={PROXY}"),
         ("X-Forwarded-User", "bob"), ("X-Forwarded-Groups", "admins"))


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "10.9.9.8", None, "testclient"])
def test_forwarded_headers_from_anyone_else_are_nobody(peer):
    assert proxy_user(_values(*SPOOF), peer, _settings([PROXY])) is None


def test_the_proxy_itself_signs_people_in():
    assert proxy_user(_values(*SPOOF), PROXY, _settings([PROXY])) == ("bob", ["admins"])


@pytest.mark.parametrize(("configured", "peer"), [
    ("::1", "127.0.0.1"), ("::1", "::1"), ("127.0.0.1", "::1"), ("127.0.0.1", "127.0.0.2"),
    ("10.9.9.9", "::ffff:10.9.9.9"), ("::ffff:10.9.9.9", "10.9.9.9"),
    ("10.0.0.0/8", "10.200.3.4"), ("fd00::/8", "fd12::5"), (" 10.9.9.9 ", "10.9.9.9"),
    ("2001:db8::1", "2001:DB8:0::1"), ("fe80::1", "fe80::1%eth0")])
def test_addresses_are_compared_as_addresses(configured, peer):
    assert from_proxy(peer, [configured])


@pytest.mark.parametrize(("configured", "peer"), [
    ("::1", "10.9.9.9"), ("127.0.0.1", "10.0.0.1"), ("10.0.0.0/8", "11.0.0.1"),
    ("10.9.9.9", "10.9.9.90"), ("10.9.9.9", "localhost"), ("10.9.9.9", "")])
def test_other_addresses_are_not_the_proxy(configured, peer):
    assert not from_proxy(peer, [configured])


@pytest.mark.parametrize("entry", ["proxy.internal", "10.0.0.0/33", "10.9.9", ""])
def test_an_entry_that_is_no_address_is_refused_at_start(entry):
    with pytest.raises(UserError, match="SCOUTLENS_AUTH_PROXY_IPS") as err:
        check_header_mode(_settings([entry]))
    assert "\n" not in str(err.value)


def test_two_different_user_lines_are_nobody():
    s = _settings([PROXY])
    two = _values(("X-Forwarded-User", "bob"), ("X-Forwarded-User", "alice"))
    assert proxy_user(two, PROXY, s) is None
    same = _values(("X-Forwarded-User", "bob"), ("x-forwarded-user", "bob "))
    assert proxy_user(same, PROXY, s) == ("bob", [])


def test_group_lines_are_all_read_never_just_the_first():
    """oauth2-proxy sends a line per group: every line counts."""
    lines = _values(("X-Forwarded-User", "bob"), ("X-Forwarded-Groups", "readers"),
                    ("X-Forwarded-Groups", "team-b, readers"))
    assert proxy_user(lines, PROXY, _settings([PROXY])) == ("bob", ["readers", "team-b"])


def test_two_different_secret_lines_are_nobody():
    s = _settings([], secret="s3cret")
    ok = _values(("X-Scoutlens-Proxy-Secret", "s3cret"), ("X-Forwarded-User", "bob"))
    assert proxy_user(ok, "127.0.0.1", s) == ("bob", [])
    two = _values(("X-Scoutlens-Proxy-Secret", "guess"), ("X-Scoutlens-Proxy-Secret", "s3cret"),
                  ("X-Forwarded-User", "bob"))
    assert proxy_user(two, "127.0.0.1", s) is None


def test_the_api_and_mcp_servers_read_every_header_line(monkeypatch):
    from app.servers.signin import NotSignedIn, from_headers

    monkeypatch.setenv("SCOUTLENS_AUTH", "header")
    monkeypatch.setenv("SCOUTLENS_AUTH_PROXY_IPS", '["::1"]')
    get_settings.cache_clear()
    headers = Headers(raw=[(b"x-forwarded-user", b"bob"), (b"x-forwarded-user", b"alice")])
    with pytest.raises(NotSignedIn):
        from_headers(headers, "127.0.0.1")
    assert from_headers(Headers({"X-Forwarded-User": "bob"}), "127.0.0.1") == ("bob", [])
    with pytest.raises(NotSignedIn):
        from_headers(Headers({"X-Forwarded-User": "bob", "X-Forwarded-For": "::1"}), "10.0.0.7")


def test_servers_take_the_peer_from_the_socket():
    """uvicorn believes X-Forwarded-For from loopback by default; ours never do."""
    import uvicorn

    from app.servers.api import create_app
    from app.servers.runtime import Runtime

    config = uvicorn.Config(create_app(Runtime(), lambda r: None), **PEER_FROM_SOCKET)
    config.load()
    assert type(config.loaded_app).__name__ != "ProxyHeadersMiddleware"
    assert NO_FORWARDED_ENV == {"FORWARDED_ALLOW_IPS": ""}


# --- the UI: the peer of the session's socket -----------------------------------------------


class FakeClient:
    """What Streamlit keeps of a session's WebSocket handshake."""

    def __init__(self, remote_ip: str | None, headers: tuple[tuple[str, str], ...]):
        self.remote_ip, self.headers, self.cookies = remote_ip, list(headers), {}


@pytest.fixture
def ui_session(monkeypatch):
    """Header sign-in by address (the proxy at 10.9.9.9), in the process `scoutlens ui`
    starts (X-Forwarded-For ignored by its uvicorn); returns a setter for the session."""
    import streamlit.runtime.context as context

    for k, v in {"SCOUTLENS_AUTH": "header", "SCOUTLENS_AUTH_PROXY_IPS": f'["{PROXY}"]',
                 **NO_FORWARDED_ENV}.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()

    def connect(remote_ip: str | None, *headers: tuple[str, str]) -> None:
        client = FakeClient(remote_ip, headers)
        monkeypatch.setattr(context, "_get_client_context", lambda: client)

    return connect


def test_ui_spoofed_forwarded_for_over_loopback_is_nobody(ui_session):
    from ui.auth import _from_header

    ui_session("127.0.0.1", *SPOOF)
    assert _from_header() is None


def test_ui_the_proxy_signs_people_in(ui_session):
    from ui.auth import _from_header

    ui_session(PROXY, ("X-Forwarded-User", "bob"), ("X-Forwarded-Groups", "team-b"))
    assert _from_header() == ("bob", ["team-b"])


def test_ui_loopback_proxy_configured_as_ipv6(ui_session, monkeypatch):
    """Streamlit says None for either loopback; the socket's address is what is compared."""
    from ui.auth import _from_header

    monkeypatch.setenv("SCOUTLENS_AUTH_PROXY_IPS", '["::1"]')
    get_settings.cache_clear()
    for peer in ("127.0.0.1", "::1"):
        ui_session(peer, ("X-Forwarded-User", "bob"))
        assert _from_header() == ("bob", [])
    ui_session("10.9.9.9", ("X-Forwarded-User", "bob"))
    assert _from_header() is None


def test_ui_started_without_scoutlens_ui_refuses_address_sign_in(ui_session, monkeypatch):
    """A Streamlit whose uvicorn believes X-Forwarded-For cannot tell who the peer is."""
    from ui.auth import _from_header

    monkeypatch.delenv("FORWARDED_ALLOW_IPS")
    ui_session(PROXY, ("X-Forwarded-User", "bob"))
    assert _from_header() is None


def test_scoutlens_ui_starts_streamlit_with_forwarded_addresses_ignored(monkeypatch):
    """Streamlit's uvicorn believes X-Forwarded-For from loopback unless told otherwise."""
    from app.commands import ui as ui_cmd

    seen: dict[str, str | None] = {}

    def fake_execv(path, args):
        seen["forwarded"] = os.environ.get("FORWARDED_ALLOW_IPS")
        raise SystemExit(0)

    monkeypatch.setattr(ui_cmd.os, "execv", fake_execv)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    for k, v in {"SCOUTLENS_AUTH": "header", "SCOUTLENS_AUTH_PROXY_IPS": f'["{PROXY}"]'}.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    with pytest.raises(SystemExit):
        ui_cmd.ui(port=1)
    assert seen["forwarded"] == ""
