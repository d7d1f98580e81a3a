"""Who a command acts as. The CLI on the server is the operator (sees everything); `--as USER`
acts as that person, with the groups they had at their last sign-in, so an admin can check what
someone sees or share on their behalf. Set once by the `scoutlens` callback; the services (and
SQLAlchemy) are imported only when a command asks, so `pack` of a folder stays fast."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.services.access import Who

_acting: list[str] = []


def act_as(user: str | None) -> None:
    _acting[:] = [user] if user else []


def who() -> Who:
    """The principal this command runs as (None: the operator)."""
    if not _acting:
        return None
    from app.services.users import principal_of

    return principal_of(_acting[0])
