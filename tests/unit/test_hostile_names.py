"""A corpus name held privately by someone else: refused without a word of whose or what (names
are one namespace for the server, a documented choice), nothing changed, and the attempt
audited so an admin sees someone trying names."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.access import NotAllowed, Principal
from app.services.catalog import list_corpora, share_corpus
from app.services.ingesting import ingest
from app.services.snapshot import load_documents
from app.services.users import audit_log

ALICE = Principal("alice", frozenset({"hr"}))
BOB = Principal("bob", frozenset({"staff"}))


def _folder(root: Path, text: str) -> Path:
    root.mkdir(parents=True)
    (root / "notes.txt").write_text(text + "\n")
    return root


def _refusals() -> list[tuple[str, str]]:
    return [(a.user, a.target) for a in audit_log() if a.action == "name-refused"]


def test_a_hidden_name_is_refused_says_nothing_and_is_audited(tmp_path):
    ingest([_folder(tmp_path / "a", "Layoffs: 40 people in March.")], "payroll-2027", who=ALICE)
    with pytest.raises(NotAllowed) as refused:
        ingest([_folder(tmp_path / "b", "Bob's notes.")], "payroll-2027", who=BOB)
    message = str(refused.value)
    assert "taken" in message and "shared by everyone" in message
    assert "alice" not in message and "hr" not in message and "Layoffs" not in message
    assert [c.name for c in list_corpora(who=BOB)] == []
    assert load_documents("payroll-2027", who=ALICE)[1][0].text.startswith("Layoffs")
    assert _refusals() == [("bob", "payroll-2027")]


def test_a_name_one_may_see_is_not_a_probe(tmp_path):
    ingest([_folder(tmp_path / "a", "Shared text.")], "handbook", who=ALICE)
    share_corpus("handbook", "everyone", who=ALICE)
    with pytest.raises(NotAllowed, match=r"only the owner of 'handbook' \(alice\)"):
        ingest([_folder(tmp_path / "b", "Bob's text.")], "handbook", who=BOB)
    ingest([_folder(tmp_path / "c", "Bob's own.")], "bob-notes", who=BOB)
    assert _refusals() == []
