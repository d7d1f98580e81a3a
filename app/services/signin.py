"""Sign-in through a trusted reverse proxy: the one set of rules the web UI, `scoutlens mcp`
over HTTP and `scoutlens serve api` apply to a request, to decide who it is from.

The proxy (oauth2-proxy, nginx `auth_basic`, an SSO gateway) signs people in and sends the user
and groups headers. They are believed only when the request carries the proxy's shared secret
and/or comes from a configured proxy address, never at face value: a browser that reaches the
app's own port with forged headers is nobody.

The address compared is the peer of the TCP connection, never a header: X-Forwarded-For and
X-Real-IP say what the sender wants them to say, so a process on this machine could claim to
be the proxy. The servers are started with their ASGI server's proxy-header handling off
(`PEER_FROM_SOCKET`, and `NO_FORWARDED_ENV` for Streamlit's process), so the peer they report
is the socket's.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Callable

from app.settings import Settings
from common.errors import UserError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: uvicorn options that keep `request.client` the socket's peer (its default believes
#: X-Forwarded-For from loopback)
PEER_FROM_SOCKET = {"proxy_headers": False, "forwarded_allow_ips": ""}
#: the environment that does the same for a uvicorn someone else configures (Streamlit's)
NO_FORWARDED_ENV = {"FORWARDED_ALLOW_IPS": ""}


def check_header_mode(s: Settings) -> None:
    """Refuse header sign-in that would believe anyone: it needs the secret or the addresses,
    and addresses that are addresses."""
    if not s.auth_proxy_secret and not s.auth_proxy_ips:
        raise UserError("SCOUTLENS_AUTH=header needs SCOUTLENS_AUTH_PROXY_SECRET (a secret the "
                        "proxy sends) and/or SCOUTLENS_AUTH_PROXY_IPS (where it connects from): "
                        "headers are never taken at face value")
    proxy_networks(s.auth_proxy_ips)


def loopback_trust_note(s: Settings) -> str | None:
    """A warning when the proxy is trusted by address alone and that address is loopback:
    then every process on this machine is "the proxy" and may sign in as anyone (the shared
    secret is what tells the proxy from them)."""
    if s.auth_proxy_secret or not s.auth_proxy_ips:
        return None
    if not any(net.network_address.is_loopback for net in proxy_networks(s.auth_proxy_ips)):
        return None
    return ("warning: SCOUTLENS_AUTH_PROXY_IPS trusts loopback without "
            "SCOUTLENS_AUTH_PROXY_SECRET: every process on this machine may sign in as anyone "
            "(set the secret in the proxy too)")


def proxy_networks(entries: list[str]) -> list[Network]:
    """The configured proxy addresses as networks (an address is a network of one; CIDR such
    as 10.0.0.0/8 allowed); UserError naming an entry that is neither."""
    out = []
    for entry in entries:
        try:
            out.append(_normal_network(ipaddress.ip_network(str(entry).strip(), strict=False)))
        except ValueError:
            raise UserError(f"SCOUTLENS_AUTH_PROXY_IPS: {str(entry)[:60]!r} is not an IP "
                            "address or network (e.g. 10.0.0.5, ::1, 10.0.0.0/8); host names "
                            "are not looked up") from None
    return out


def _normal_network(net: Network) -> Network:
    """An IPv4-mapped IPv6 network (::ffff:10.0.0.5) as the IPv4 one it means."""
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped:
        prefix = max(net.prefixlen - 96, 0)
        return ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{prefix}", strict=False)
    return net


def peer_address(peer: str | None) -> Address | None:
    """The connection's peer as an address (IPv4-mapped IPv6 as IPv4, a zone id dropped), or
    None when it is none (a Unix socket, a test client's name)."""
    if not peer:
        return None
    try:
        addr = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def from_proxy(peer: str | None, entries: list[str]) -> bool:
    """Whether the connection's peer is a configured proxy address. Loopback is one machine:
    a proxy configured as 127.0.0.1 or ::1 matches a peer on either (what reaches loopback
    is on this machine whichever family it used)."""
    addr = peer_address(peer)
    if addr is None:
        return False
    for net in proxy_networks(entries):
        if addr in net or (addr.is_loopback and net.network_address.is_loopback):
            return True
    return False


def one_value(values: list[str]) -> str | None:
    """A header that must be said once: its value, "" when absent, None when lines disagree
    (a second line may be the sender's, added to what the proxy set)."""
    distinct = {v.strip() for v in values}
    if len(distinct) > 1:
        return None
    return distinct.pop() if distinct else ""


def forwarded_for_believed() -> bool:
    """Whether this process's uvicorn would take the peer from X-Forwarded-For (Streamlit's
    does unless started with NO_FORWARDED_ENV, as `scoutlens ui` starts it)."""
    return os.environ.get("FORWARDED_ALLOW_IPS") != NO_FORWARDED_ENV["FORWARDED_ALLOW_IPS"]


def proxy_user(values: Callable[[str], list[str]], client_ip: str | None,
               s: Settings) -> tuple[str, list[str]] | None:
    """(user, groups) of a request that came through the trusted proxy, else None. `values`
    gives every line of a header (case-insensitive), since a proxy may send one line per group
    (oauth2-proxy does) or one comma-joined line; `client_ip` is the connection's peer (the
    socket's, never a header's). Two different user (or secret) lines are nobody."""
    if s.auth_proxy_secret:
        given = one_value(values(s.auth_secret_header)) or ""
        if not hmac.compare_digest(given.encode(), s.auth_proxy_secret.encode()):
            return None
    if s.auth_proxy_ips and not from_proxy(client_ip, s.auth_proxy_ips):
        return None
    user = one_value(values(s.auth_user_header))
    if not user:
        return None
    groups = [g.strip() for line in values(s.auth_groups_header) for g in line.split(",")]
    return user, list(dict.fromkeys(g for g in groups if g))
