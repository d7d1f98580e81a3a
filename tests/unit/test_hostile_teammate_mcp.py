"""A hostile teammate after issue 23's fixes, against the MCP tools a local agent calls
(stdio: the operator's own client): a document steering the agent may not have `pack` create
a file that something then runs or believes (~/.ssh/authorized_keys, a shell profile, a git
hook, a cron job): a new `out` is a pack's file by name, in no hidden folder."""

from __future__ import annotations

import pytest
from helpers import make_facts_repo

from app.mcp import schemas, tools
from app.servers.runtime import Runtime
from common.errors import UserError


@pytest.fixture
def facts(tmp_path, monkeypatch):
    from app.services.ingesting import ingest

    monkeypatch.setenv("SCOUTLENS_WORKERS", "1")
    ingest([make_facts_repo(tmp_path / "facts")], "facts")


def _pack(out: str) -> dict:
    args = schemas.parse("pack", {"target": ["facts"], "out": out})
    return tools.HANDLERS["pack"](args, Runtime(), None, lambda *a: None)


@pytest.mark.parametrize("name", [".ssh/authorized_keys", ".bash_profile", "repo/.git/hooks/x.md",
                                  "cron.d/job", "profile.d/evil.sh", "unit.service"])
def test_an_agent_cannot_create_a_file_something_runs(facts, tmp_path, name):
    out = tmp_path / "victim" / name
    out.parent.mkdir(parents=True)
    with pytest.raises(UserError) as refused:
        _pack(str(out))
    assert "\n" not in str(refused.value) and str(refused.value).startswith("out: ")
    assert not out.exists()


@pytest.mark.parametrize("name", ["facts.xml", "facts.md", "facts.MARKDOWN", "facts.txt"])
def test_a_pack_file_in_an_ordinary_folder_is_written(facts, tmp_path, name):
    out = tmp_path / "packs" / name
    out.parent.mkdir()
    assert _pack(str(out))["out"] == str(out) and "7291" in out.read_text()
