"""Who a request over the network is, and whether a server may listen beyond loopback.

A server bound to loopback serves the person at this machine: the operator (or `--as USER`),
as the CLI does. Beyond loopback (or with `--shared`) it needs SCOUTLENS_AUTH=header: a reverse
proxy signs people in and sends the user and groups headers, trusted only from the configured
proxy addresses and/or with the proxy's shared secret, never at face value (the rules of the
web UI's trusted-header sign-in, ui/auth.py, for requests that are not a Streamlit page)."""

from __future__ import annotations

from collections.abc import Mapping

from app.servers.hosts import LOOPBACK
from app.services.access import Who
from app.services.signin import check_header_mode, proxy_user
from app.settings import get_settings
from common.errors import UserError


class NotSignedIn(UserError):
    """A request to a shared server that did not come through the signing-in proxy."""


def needs_sign_in(host: str, shared: bool | None, what: str) -> bool:
    """Whether a server `what` on `host` serves people who sign in through the trusted proxy
    (which must be configured): when it listens beyond loopback, or when SCOUTLENS_AUTH=header
    is set (a proxy on this machine forwards to loopback); refused when it would serve a
    network without sign-in, `--trusted` beyond loopback included."""
    s = get_settings()
    mode = (s.auth or "").strip().lower()
    if shared is False and host not in LOOPBACK:
        raise UserError(f"{what}: --trusted acts as the operator for whoever connects, so it "
                        f"stays on loopback; on {host} people sign in (SCOUTLENS_AUTH=header)")
    if shared is None:
        shared = host not in LOOPBACK or mode == "header"
    if not shared:
        return False
    if mode != "header":
        raise UserError(f"{what} on {host} would serve a network without sign-in: keep it on "
                        "loopback (the default, --host 127.0.0.1), or set SCOUTLENS_AUTH=header "
                        "behind a proxy that signs people in (SCOUTLENS_AUTH_PROXY_SECRET and/or "
                        "SCOUTLENS_AUTH_PROXY_IPS)" + (" (OpenID Connect sign-in is for the web "
                                                      "UI's pages)" if mode == "oidc" else ""))
    check_header_mode(s)
    return True


def warn_loopback_trust() -> None:
    """Say so at start when any process on this machine could pass for the proxy."""
    import sys

    from app.services.signin import loopback_trust_note

    if note := loopback_trust_note(get_settings()):
        print(note, file=sys.stderr)


def from_headers(headers: Mapping[str, str], client_ip: str | None) -> tuple[str, list[str]]:
    """(user, groups) of a request that came through the trusted proxy; NotSignedIn else.
    `headers` must look names up case-insensitively and give every line of a header
    (Starlette's `getlist` does)."""
    values = getattr(headers, "getlist", None) or (lambda k: [v] if (v := headers.get(k)) else [])
    found = proxy_user(values, client_ip, get_settings())
    if found is None:
        raise NotSignedIn("not signed in: send requests through the sign-in proxy")
    return found


def principal(headers: Mapping[str, str], client_ip: str | None) -> Who:
    """The signed-in person of a request (recorded in `users`, as a UI sign-in is)."""
    from app.services.users import signed_in

    user, groups = from_headers(headers, client_ip)
    return signed_in(user, groups, "header")
