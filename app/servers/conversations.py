"""Which stored conversation a chat request continues: the one its `conversation` field names,
or the one whose questions are exactly the request's earlier user messages (the answers come
from the store, not from what the client sends back); otherwise the question is answered on
its own, and a note says so. An unknown corpus is refused here, before anything streams."""

from __future__ import annotations

from app.servers.chat_request import PREFIX, ChatRequest
from app.servers.errors import ApiError
from app.services.access import Who


def continued(corpus: str, earlier: list[str], who: Who) -> str | None:
    """The stored conversation over `corpus` whose questions are exactly `earlier`, in order
    (the newest such), or None."""
    if not earlier:
        return None
    from app.services.history import history

    turns: dict[str, dict[int, str]] = {}
    for row in history(corpus, limit=1000, who=who):
        turns.setdefault(row.conversation, {})[row.turn] = row.question
    for conversation, asked in turns.items():  # newest first
        if [asked.get(i + 1) for i in range(len(asked))] == earlier:
            return conversation
    return None


def prepare(req: ChatRequest, who: Who) -> None:
    """Refuse an unknown corpus with a 404 before anything streams; find the conversation the
    earlier turns continue."""
    from app.services.ask import check_question
    from app.services.catalog import corpus_exists

    if not corpus_exists(req.corpus, who=who):
        raise ApiError(404, f"model {PREFIX + req.corpus!r} not found: no such corpus "
                            f"{req.corpus!r} (GET /v1/models lists them)", "model",
                       code="model_not_found")
    req.question = check_question(req.question)
    if req.conversation is None and req.earlier:
        req.conversation = continued(req.corpus, req.earlier, who)
        if req.conversation is None:
            req.notes.append("single-turn: the earlier messages are no stored conversation "
                             "over this corpus, so the question was answered on its own")
