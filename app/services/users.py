"""The people who signed in, and the audit log: `scoutlens users list`, `scoutlens audit`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.database import session_scope
from app.models import AuditEntry, User
from app.services.access import LEGACY_OWNER, NotAllowed, Principal, Who, reserved_name, seen
from app.settings import database_url, get_settings
from common.errors import UserError


@dataclass(frozen=True)
class UserRow:
    name: str
    groups: tuple[str, ...]
    admin: bool
    via: str
    first_seen: str
    last_seen: str


def signed_in(name: str, groups: list[str] | set[str] | tuple[str, ...], via: str) -> Principal:
    """The principal for a sign-in (admin when in an admin group), recorded in `users`."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise UserError("sign-in without a usable user name")
    _not_reserved(name)
    who = Principal.of(name, {g.strip() for g in groups if g and g.strip()},
                       get_settings().admin_groups)
    with session_scope(database_url()) as session:
        seen(session, who, via)
    return who


def _not_reserved(name: str) -> None:
    if (reserved := reserved_name(name)) == LEGACY_OWNER:
        raise UserError(f"the user name {name!r} is reserved: {LEGACY_OWNER!r} owns what the "
                        "operator (the CLI on the server) and the release before sign-in "
                        "stored; sign in with another name (admins are members of "
                        "SCOUTLENS_ADMIN_GROUPS)")
    if reserved is not None:
        raise UserError(f"the user name {name!r} is reserved: the audit log names the "
                        f"server's own command line {reserved!r}; sign in with another name")


def principal_of(name: str) -> Principal:
    """Someone as they were at their last sign-in (`--as USER`); a name never seen acts with
    no groups."""
    _not_reserved(name)
    with session_scope(database_url()) as session:
        row = session.scalar(select(User).where(User.name == name))
        groups = list(row.groups or []) if row else []
    return Principal.of(name, groups, get_settings().admin_groups)


def _admins_only(who: Who, what: str) -> None:
    if who is not None and not who.admin:
        raise NotAllowed(f"{what} is for admins (members of SCOUTLENS_ADMIN_GROUPS)")


def list_users(who: Who = None) -> list[UserRow]:
    """Everyone who signed in (admins and the operator only)."""
    _admins_only(who, "the list of users")
    admin = set(get_settings().admin_groups)
    with session_scope(database_url()) as session:
        return [UserRow(u.name, tuple(u.groups or ()), bool(set(u.groups or ()) & admin), u.via,
                        u.first_seen.isoformat(timespec="seconds"),
                        u.last_seen.isoformat(timespec="seconds"))
                for u in session.scalars(select(User).order_by(User.name))]


@dataclass(frozen=True)
class AuditRow:
    at: str
    user: str
    action: str
    target: str
    detail: dict


def audit_log(user: str | None = None, since: datetime | None = None,
              limit: int = 200, who: Who = None) -> list[AuditRow]:
    """The latest entries first, of `user` and after `since` when given (admins and the
    operator only)."""
    _admins_only(who, "the audit log")
    q = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if user:
        q = q.where(AuditEntry.user == user)
    if since:
        q = q.where(AuditEntry.at >= since)
    with session_scope(database_url()) as session:
        return [AuditRow(a.at.isoformat(timespec="seconds"), a.user, a.action, a.target,
                         dict(a.detail or {})) for a in session.scalars(q)]
