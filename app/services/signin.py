"""Sign-in through a trusted reverse proxy: the one set of rules the web UI, `scoutlens mcp`
over HTTP and `scoutlens serve api` apply to a request's headers.

The proxy (oauth2-proxy, nginx `auth_basic`, an SSO gateway) signs people in and sends the user
and groups headers. They are believed only when the request carries the proxy's shared secret
and/or comes from a configured proxy address, never at face value: a browser that reaches the
app's own port with forged headers is nobody.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from app.settings import Settings
from common.errors import UserError


def check_header_mode(s: Settings) -> None:
    """Refuse header sign-in that would believe anyone: it needs the secret or the addresses."""
    if not s.auth_proxy_secret and not s.auth_proxy_ips:
        raise UserError("SCOUTLENS_AUTH=header needs SCOUTLENS_AUTH_PROXY_SECRET (a secret the "
                        "proxy sends) and/or SCOUTLENS_AUTH_PROXY_IPS (where it connects from): "
                        "headers are never taken at face value")


def proxy_user(values: Callable[[str], list[str]], client_ip: str | None,
               s: Settings) -> tuple[str, list[str]] | None:
    """(user, groups) of a request that came through the trusted proxy, else None. `values`
    gives every line of a header (case-insensitive), since a proxy may send one line per group
    (oauth2-proxy does) or one comma-joined line; `client_ip` is the connection's peer."""
    if s.auth_proxy_secret:
        given = (values(s.auth_secret_header) or [""])[0]
        if not hmac.compare_digest(given.encode(), s.auth_proxy_secret.encode()):
            return None
    if s.auth_proxy_ips and (client_ip or "") not in s.auth_proxy_ips:
        return None
    user = ((values(s.auth_user_header) or [""])[0]).strip()
    if not user:
        return None
    groups = [g.strip() for line in values(s.auth_groups_header) for g in line.split(",")]
    return user, [g for g in groups if g]
