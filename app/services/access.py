"""Who may see and change what: the one access check every read and write of user data passes.

A `Principal` is a signed-in person (name and groups, from OpenID Connect or a trusted proxy) or
`None`: the operator at the server's own command line (the CLI without `--as`, the loopback
single-user UI), who sees everything. The rules:
- a corpus is readable by its owner, by admins, by everyone signed in when shared with everyone,
  and by members of the groups it is shared with; only its owner or an admin changes it
  (re-ingest, delete, share);
- a conversation (the stored questions) is its owner's alone;
- an eval run is readable by its owner and admins;
- the server's own settings (backend, model, upload limit) and what spans everyone (the KV
  cache, answer counts and hit rate of all users, server paths) are the operator's and admins';
  anyone else reads the settings without paths and sees only their own answers' figures.
A corpus someone may not read is "not found", worded exactly as one that does not exist, so a
name or id typed into a URL tells nothing. Rows from before sign-in existed belong to `admin`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import AuditEntry, Corpus, User
from common.errors import UserError
from ingest.types import IngestError

LEGACY_OWNER = "admin"  # what the migration gives rows that had no owner
OPERATOR = "operator"  # who the audit log names for the CLI on the server (who is None)
VISIBILITIES = ("private", "groups", "everyone")


class CorpusNotFound(IngestError):
    """No such corpus, or none this principal may see (the two read the same)."""


class NotAllowed(UserError):
    """A principal who may read something tried to change it."""


@dataclass(frozen=True)
class Principal:
    """A signed-in person; `admin` when one of their groups is an admin group."""

    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False

    @classmethod
    def of(cls, name: str, groups: set[str] | frozenset[str] | list[str] = (),
           admin_groups: set[str] | frozenset[str] | tuple[str, ...] = ()) -> Principal:
        gs = frozenset(g for g in groups if g)
        return cls(name, gs, bool(gs & set(admin_groups)))


Who = Principal | None  # None: the operator on the server itself


def label(who: Who) -> str:
    return OPERATOR if who is None else who.name


def reserved_name(name: str) -> str | None:
    """The reserved name `name` stands for, or None: the legacy owner and the operator's
    label, in any case or compatibility form ("Admin", "ＯＰＥＲＡＴＯＲ"), which a reader of
    the audit log or an owner column would take for them."""
    import unicodedata

    folded = unicodedata.normalize("NFKC", name).casefold().strip()
    return next((r for r in (LEGACY_OWNER, OPERATOR) if folded == r), None)


def can_read(who: Who, owner: str, visibility: str, groups: list[str] | None) -> bool:
    if who is None or who.admin or owner == who.name:
        return True
    if visibility == "everyone":
        return True
    return visibility == "groups" and bool(set(groups or ()) & who.groups)


def can_change(who: Who, owner: str) -> bool:
    return who is None or who.admin or owner == who.name


def manages_server(who: Who) -> bool:
    """May change the shared settings and see the figures of everyone and the server's paths."""
    return who is None or who.admin


def require_manager(who: Who, what: str) -> None:
    """NotAllowed unless `who` manages the server: the check behind every shared setting."""
    if not manages_server(who):
        raise NotAllowed(f"only an admin may {what}: it applies to everyone on this server")


def corpus_readable(who: Who, row: Corpus) -> bool:
    return can_read(who, row.owner, row.visibility, row.shared_groups)


def not_found(session: Session, name: str, who: Who) -> CorpusNotFound:
    """The one message for a corpus that does not exist or may not be seen: it lists only
    the corpora this principal may read."""
    names = [c.name for c in session.scalars(select(Corpus).order_by(Corpus.name))
             if corpus_readable(who, c)]
    hint = f" (corpora: {', '.join(names)})" if names else " (no corpora yet: scoutlens ingest)"
    return CorpusNotFound(f"no such corpus: {name!r}{hint}")


def corpus_for(session: Session, name: str, who: Who, change: str | None = None) -> Corpus:
    """Corpus `name` if `who` may read it (and, with `change` naming what they want to do,
    change it); else CorpusNotFound, or NotAllowed for a reader who may not change it."""
    row = session.scalar(select(Corpus).where(Corpus.name == name))
    if row is None or not corpus_readable(who, row):
        raise not_found(session, name, who)
    if change and not can_change(who, row.owner):
        raise NotAllowed(f"only the owner of {name!r} ({row.owner}) or an admin may {change} it")
    return row


def owner_of_new(who: Who) -> str:
    return LEGACY_OWNER if who is None else who.name


def audit(session: Session, who: Who, action: str, target: str, **detail: object) -> None:
    """One line of who did what to which, in the caller's transaction (so a failed operation
    leaves no entry either)."""
    session.add(AuditEntry(at=_now(), user=label(who), action=action, target=target[:500],
                           detail={k: v for k, v in detail.items() if v is not None}))


def seen(session: Session, who: Principal, via: str) -> None:
    """Record a sign-in: the person and the groups they had then (`scoutlens users list`).
    A person's first requests often come together (an agent's parallel calls): the row is
    inserted unless there, in one statement, so the second is no uniqueness error."""
    now = _now()
    fields = {"groups": sorted(who.groups), "via": via, "last_seen": now}
    insert = _insert_if_new(session)
    if insert is not None:
        session.execute(insert(User).values(name=who.name, first_seen=now, **fields)
                        .on_conflict_do_nothing(index_elements=["name"]))
    row = session.scalar(select(User).where(User.name == who.name))
    if row is None:  # a database without INSERT ... ON CONFLICT
        session.add(User(name=who.name, first_seen=now, **fields))
    else:
        row.groups, row.via, row.last_seen = fields["groups"], via, now


def _insert_if_new(session: Session):
    """The dialect's INSERT with ON CONFLICT (SQLite, PostgreSQL), or None."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        return None
    return insert


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
