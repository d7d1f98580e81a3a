"""Who is using this page. `scoutlens ui` decides the mode (SCOUTLENS_UI_AUTH) and refuses a
shared UI without sign-in unless told `--no-auth`:
- loopback, single user: the operator (sees everything), as before sign-in existed;
- `oidc`: OpenID Connect through Streamlit's own `st.login` / `st.user`; groups from the ID
  token's claim (SCOUTLENS_OIDC_GROUPS_CLAIM);
- `header`: a reverse proxy signs people in and sets the user and groups headers; trusted only
  from the configured proxy addresses and/or with the proxy's shared secret, never at face value;
- `open` (`--no-auth`): shared on purpose without sign-in, with a banner on every page.
Every page asks `who()` and passes it to the services, which do the access check.
"""

from __future__ import annotations

import os

import streamlit as st

from app.services.access import Who
from app.settings import get_settings
from ui.render import md_plain

MODES = ("local", "oidc", "header", "open")
_KEY = "signed_in_as"


def mode() -> str:
    m = os.environ.get("SCOUTLENS_UI_AUTH", "local")
    return m if m in MODES else "local"


def _peer() -> str | None:
    """The address of the connection this session came over, as the server's socket saw it
    (`st.context.ip_address` says None for either loopback, and Streamlit documents it as
    spoofable: it is read here from the session's client, whose uvicorn `scoutlens ui` starts
    with X-Forwarded-For ignored)."""
    from streamlit.runtime.context import _get_client_context

    client = _get_client_context()
    return getattr(client, "remote_ip", None) if client is not None else None


def _from_header() -> tuple[str, list[str]] | None:
    """(user, groups) when the request came through the trusted proxy, else None."""
    from app.services.signin import forwarded_for_believed, proxy_user

    s = get_settings()
    if s.auth_proxy_ips and forwarded_for_believed():
        st.error("Sign-in by proxy address needs the UI started by `scoutlens ui`: this "
                 "server would take the address from X-Forwarded-For, which anyone can send.")
        return None
    return proxy_user(st.context.headers.get_all, _peer(), s)


def _from_oidc() -> tuple[str, list[str]] | None:
    if not st.user.is_logged_in:
        return None
    claims = st.user.to_dict()
    user = str(claims.get("email") or claims.get("preferred_username") or claims.get("sub") or "")
    raw = claims.get(get_settings().oidc_groups_claim) or []
    groups = [raw] if isinstance(raw, str) else [str(g) for g in raw]
    return (user, groups) if user else None


def sign_in() -> None:
    """Establish who is here, once per page run; shows the sign-in (and stops the page) when
    nobody is. Call it before any page content."""
    m = mode()
    if m == "local":
        st.session_state[_KEY] = None
        return
    if m == "open":
        st.session_state[_KEY] = None
        st.warning("**Open UI**: this server runs without sign-in (`--no-auth`), so everyone "
                   "who reaches it sees and may change every corpus.", icon=":material/lock_open:")
        return
    found = _from_oidc() if m == "oidc" else _from_header()
    if found is None:
        st.session_state.pop(_KEY, None)
        st.title("scoutlens")
        if m == "oidc":
            st.write("Sign in to see your corpora and conversations.")
            st.button("Sign in", type="primary", on_click=st.login)
        else:
            st.error("Not signed in: open this page through the sign-in proxy.")
        st.stop()
    user, groups = found
    known = st.session_state.get(_KEY)
    if known is None or known.name != user or known.groups != frozenset(groups):
        from app.services.users import signed_in
        from common.errors import UserError

        try:
            st.session_state[_KEY] = signed_in(user, groups, m)
        except UserError as exc:  # e.g. the reserved name
            st.error(f"Sign-in refused: {exc}")
            st.stop()
    with st.sidebar:
        p = st.session_state[_KEY]
        st.caption(f"Signed in as **{md_plain(p.name)}**" + (" (admin)" if p.admin else "")
                   + (f" · {md_plain(', '.join(sorted(p.groups)))}" if p.groups else ""))
        if m == "oidc":
            st.button("Sign out", on_click=st.logout, key="sign-out")


def who() -> Who:
    """The principal this page acts for (None: the operator of a local or open UI)."""
    if _KEY not in st.session_state and mode() in ("oidc", "header"):
        st.stop()  # never serve a page before sign_in() decided
    return st.session_state.get(_KEY)
