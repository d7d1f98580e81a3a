"""A hostile teammate after issue 23's fixes: with the proxy trusted by address alone and that
address loopback (nginx on the same machine, SCOUTLENS_AUTH_PROXY_IPS=["127.0.0.1"] or
["::1"]), every process on the machine is "the proxy" and signs in as anyone, X-Forwarded-For
or not. That stays allowed (the issue asks for ::1 to match), but the servers say so at start
and the shared secret silences it."""

from __future__ import annotations

import pytest

from app.services.signin import loopback_trust_note
from app.settings import Settings


@pytest.mark.parametrize("ips", [["127.0.0.1"], ["::1"], ["::ffff:127.0.0.1"], ["127.0.0.0/8"],
                                 ["10.0.0.5", "::1"]])
def test_loopback_trusted_without_the_secret_is_warned(ips):
    note = loopback_trust_note(Settings(auth="header", auth_proxy_ips=ips))
    assert note and "every process on this machine" in note and "\n" not in note


@pytest.mark.parametrize("over", [{"auth_proxy_ips": ["10.0.0.5"]},
                                  {"auth_proxy_ips": ["127.0.0.1"], "auth_proxy_secret": "s"},
                                  {"auth_proxy_secret": "s"}])
def test_a_proxy_told_apart_by_address_or_secret_is_not(over):
    assert loopback_trust_note(Settings(auth="header", **over)) is None


@pytest.mark.parametrize("command", [["serve", "api"], ["mcp", "--transport", "http"]])
def test_the_servers_say_so_at_start(monkeypatch, command):
    from typer.testing import CliRunner

    from app.cli import app

    monkeypatch.setenv("SCOUTLENS_AUTH", "header")
    monkeypatch.setenv("SCOUTLENS_AUTH_PROXY_IPS", '["::1"]')
    monkeypatch.setattr("app.servers.api.serve", lambda *a, **k: None)
    monkeypatch.setattr("app.servers.mcp_server.serve_http", lambda *a, **k: None)
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "every process on this machine" in result.output
