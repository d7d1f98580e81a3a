"""Who a request over the network is, and whether a server may listen beyond loopback.

A server bound to loopback serves the person at this machine: the operator (or `--as USER`),
as the CLI does. Beyond loopback (or with `--shared`) it needs SCOUTLENS_AUTH=header: a reverse
proxy signs people in and sends the user and groups headers, trusted only from the configured
proxy addresses and/or with the proxy's shared secret, never at face value (the rules of the
web UI's trusted-header sign-in, ui/auth.py, for requests that are not a Streamlit page)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from app.services.access import Who
from app.settings import get_settings
from common.errors import UserError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class NotSignedIn(UserError):
    """A request to a shared server that did not come through the signing-in proxy."""


def needs_sign_in(host: str, shared: bool | None, what: str) -> bool:
    """Whether a server `what` on `host` serves a network (then people sign in through the
    trusted proxy, which must be configured); refused when it would serve one without."""
    if shared is None:
        shared = host not in LOOPBACK
    if not shared:
        return False
    s = get_settings()
    mode = (s.auth or "").strip().lower()
    if mode != "header":
        raise UserError(f"{what} on {host} would serve a network without sign-in: keep it on "
                        "loopback (the default, --host 127.0.0.1), or set SCOUTLENS_AUTH=header "
                        "behind a proxy that signs people in (SCOUTLENS_AUTH_PROXY_SECRET and/or "
                        "SCOUTLENS_AUTH_PROXY_IPS)" + (" (OpenID Connect sign-in is for the web "
                                                      "UI's pages)" if mode == "oidc" else ""))
    if not s.auth_proxy_secret and not s.auth_proxy_ips:
        raise UserError("SCOUTLENS_AUTH=header needs SCOUTLENS_AUTH_PROXY_SECRET (a secret the "
                        "proxy sends) and/or SCOUTLENS_AUTH_PROXY_IPS (where it connects from): "
                        "headers are never taken at face value")
    return True


def from_headers(headers: Mapping[str, str], client_ip: str | None) -> tuple[str, list[str]]:
    """(user, groups) of a request that came through the trusted proxy; NotSignedIn else.
    `headers` must look names up case-insensitively (Starlette's do)."""
    s = get_settings()
    if s.auth_proxy_secret:
        given = headers.get(s.auth_secret_header) or ""
        if not hmac.compare_digest(given.encode(), s.auth_proxy_secret.encode()):
            raise NotSignedIn("not signed in: send requests through the sign-in proxy")
    if s.auth_proxy_ips and (client_ip or "") not in s.auth_proxy_ips:
        raise NotSignedIn("not signed in: send requests through the sign-in proxy")
    user = (headers.get(s.auth_user_header) or "").strip()
    if not user:
        raise NotSignedIn("not signed in: the sign-in proxy sent no user")
    groups = [g.strip() for g in (headers.get(s.auth_groups_header) or "").split(",")]
    return user, [g for g in groups if g]


def principal(headers: Mapping[str, str], client_ip: str | None) -> Who:
    """The signed-in person of a request (recorded in `users`, as a UI sign-in is)."""
    from app.services.users import signed_in

    user, groups = from_headers(headers, client_ip)
    return signed_in(user, groups, "header")
