"""Which names are loopback: the address a server binds (`--host`), and the Host header of a
request to a loopback server (a web page whose name an attacker re-points at 127.0.0.1, DNS
rebinding, sends its own name)."""

from __future__ import annotations

LOOPBACK = ("127.0.0.1", "localhost", "::1")  # bind addresses that serve this machine only
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def host_ok(host: str) -> bool:
    """Whether a Host header names loopback (with a numeric port or none)."""
    name, colon, port = host.rpartition(":") if not host.endswith("]") else ("", "", host)
    if not colon:
        name, port = port, ""
    return name.lower() in LOOPBACK_HOSTS and (port == "" or port.isdigit())
