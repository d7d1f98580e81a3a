"""Who sees what: owners, sharing with groups or everyone, private conversations and eval runs,
"not found" for what someone may not see, the audit log, `--as`, and the UI passing the person
on every call (the services do the check; a page never filters by itself)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from fakes import ScriptedBackend
from helpers import db_cli, one_line_error

from app.services import eval_runs
from app.services.access import CorpusNotFound, NotAllowed, Principal, can_read
from app.services.ask import AskInput, ask
from app.services.catalog import (
    corpus_exists,
    list_corpora,
    remove_corpus,
    share_corpus,
    show_corpus,
)
from app.services.history import conversation_turns, history
from app.services.ingesting import ingest
from app.services.search import search
from app.services.snapshot import load_documents
from app.services.users import audit_log, signed_in
from app.services.viewing import source_view
from evals.runner import EvalConfig

ALICE = Principal("alice", frozenset({"legal"}))
BOB = Principal("bob", frozenset({"finance"}))
CAROL = Principal("carol", frozenset({"legal", "finance"}))
ROOT = Principal("root", frozenset({"admins"}), admin=True)
REPO = Path(__file__).resolve().parents[2]


def folder(root: Path, text: str = "The vault code is 7291.") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "notes.txt").write_text(text + "\n")
    return root


def names(who) -> list[str]:
    return [c.name for c in list_corpora(who=who)]


def test_the_rules():
    assert can_read(ALICE, "alice", "private", [])
    assert not can_read(BOB, "alice", "private", [])
    assert can_read(BOB, "alice", "everyone", [])
    assert can_read(CAROL, "alice", "groups", ["finance"])
    assert not can_read(ALICE, "bob", "groups", ["finance"])
    assert can_read(ROOT, "alice", "private", []) and can_read(None, "alice", "private", [])
    assert Principal.of("dave", ["admins", ""], ["admins"]).admin
    assert not Principal.of("eve", ["staff"], ["admins"]).admin


def test_a_private_corpus_is_not_found_by_anyone_else(tmp_path):
    ingest([folder(tmp_path / "a")], "secret-plans", who=ALICE)
    assert names(ALICE) == ["secret-plans"] and names(BOB) == []
    assert names(ROOT) == ["secret-plans"] and names(None) == ["secret-plans"]
    owner = list_corpora(who=ALICE)[0]
    assert (owner.owner, owner.visibility) == ("alice", "private")
    with pytest.raises(CorpusNotFound) as missing:
        show_corpus("no-such", who=BOB)
    for call in (lambda: show_corpus("secret-plans", who=BOB),
                 lambda: load_documents("secret-plans", who=BOB),
                 lambda: remove_corpus("secret-plans", who=BOB),
                 lambda: source_view("secret-plans", "notes.txt", who=BOB)):
        with pytest.raises(CorpusNotFound) as hidden:
            call()
        # worded exactly as a corpus that does not exist (the name aside)
        assert str(hidden.value).replace("secret-plans", "no-such") == str(missing.value)
    assert not corpus_exists("secret-plans", who=BOB)
    with pytest.raises(Exception, match="no such corpus") as searched:
        search("secret-plans", "vault code", who=BOB)
    with pytest.raises(Exception, match="no such corpus") as nowhere:
        search("no-such", "vault code", who=BOB)
    assert str(searched.value).replace("secret-plans", "no-such") == str(nowhere.value)
    assert search("secret-plans", "vault code", who=ALICE).hits
    with pytest.raises(Exception, match="no such corpus"):
        ask(AskInput("secret-plans", "What is the vault code?", corpus_only=True),
            ScriptedBackend(), who=BOB)
    # a name someone cannot see is not theirs to take over, and says nothing of its owner
    with pytest.raises(NotAllowed, match="taken") as taken:
        ingest([folder(tmp_path / "b", "Bob's text.")], "secret-plans", who=BOB)
    assert "alice" not in str(taken.value)
    assert load_documents("secret-plans", who=ALICE)[1][0].text.startswith("The vault code")


def test_sharing_with_groups_and_everyone_and_back(tmp_path):
    ingest([folder(tmp_path / "a")], "contracts", who=ALICE)
    share_corpus("contracts", "groups", ["finance"], who=ALICE)
    assert names(BOB) == ["contracts"] and names(CAROL) == ["contracts"]
    assert names(Principal("dave")) == []
    # a reader may not change it
    with pytest.raises(NotAllowed, match=r"only the owner of 'contracts' \(alice\)"):
        remove_corpus("contracts", who=BOB)
    with pytest.raises(NotAllowed):
        share_corpus("contracts", "everyone", who=BOB)
    with pytest.raises(NotAllowed, match="re-ingest"):
        ingest([folder(tmp_path / "b", "Changed by Bob.")], "contracts", who=BOB)
    assert "vault" in load_documents("contracts", who=BOB)[1][0].text  # nothing changed
    share_corpus("contracts", "everyone", who=ALICE)
    assert names(Principal("dave")) == ["contracts"]
    share_corpus("contracts", "private", who=ROOT)  # an admin may, too
    assert names(BOB) == [] and names(ALICE) == ["contracts"]
    with pytest.raises(NotAllowed, match="at least one group"):
        share_corpus("contracts", "groups", [" "], who=ALICE)
    remove_corpus("contracts", who=ROOT)
    assert names(None) == []


def test_conversations_are_their_askers_alone(tmp_path):
    ingest([folder(tmp_path / "a")], "shared", who=ALICE)
    share_corpus("shared", "everyone", who=ALICE)
    mine = ask(AskInput("shared", "What is the vault code?", corpus_only=True),
               ScriptedBackend(), who=ALICE)
    theirs = ask(AskInput("shared", "And the door?", corpus_only=True), ScriptedBackend(), who=BOB)
    assert [r.question for r in history(who=ALICE)] == ["What is the vault code?"]
    assert [r.question for r in history("shared", who=BOB)] == ["And the door?"]
    assert len(history(who=None)) == 2  # the operator's view
    assert conversation_turns(mine.conversation, who=BOB) == []
    with pytest.raises(Exception, match="no such conversation"):
        ask(AskInput("shared", "Go on", conversation=mine.conversation, corpus_only=True),
            ScriptedBackend(), who=BOB)
    follow = ask(AskInput("shared", "Go on", conversation=mine.conversation, corpus_only=True),
                 ScriptedBackend(), who=ALICE)
    assert follow.turn == 2 and theirs.turn == 1


def test_eval_runs_are_their_owners_and_admins(tmp_path):
    config = EvalConfig(tasks=("niah",), lengths=(256,), depths=(0.5,), samples=1)
    backend = ScriptedBackend(reply="x")
    gen, counted = eval_runs.generator_for(config, backend, tokenizer="cl100k")
    run_id = eval_runs.run(counted, backend, gen, "alice-run", who=ALICE)
    assert [r.run_id for r in eval_runs.list_runs(who=ALICE)] == [run_id]
    assert eval_runs.list_runs(who=BOB) == []
    assert [r.run_id for r in eval_runs.list_runs(who=ROOT)] == [run_id]
    for call in (lambda: eval_runs.summary(run_id, who=BOB),
                 lambda: eval_runs.cells_of(run_id, who=BOB),
                 lambda: eval_runs.rescore(run_id, who=BOB),
                 lambda: eval_runs.run(counted, backend, gen, run_id, who=BOB)):
        with pytest.raises(Exception, match="no such eval run"):
            call()
    # a haystack from a corpus someone may not read
    ingest([folder(tmp_path / "a")], "private-hay", who=ALICE)
    hay = EvalConfig(tasks=("niah",), lengths=(256,), depths=(0.5,), samples=1,
                     haystack="corpus:private-hay")
    with pytest.raises(CorpusNotFound):
        eval_runs.run(hay, backend, gen, who=BOB)


def test_the_audit_log_says_who_did_what(tmp_path):
    ingest([folder(tmp_path / "a")], "log-me", who=ALICE)
    share_corpus("log-me", "groups", ["legal"], who=ALICE)
    ask(AskInput("log-me", "What is the vault code?", corpus_only=True),
        ScriptedBackend(), who=CAROL)
    with pytest.raises(NotAllowed):
        remove_corpus("log-me", who=CAROL)  # refused: no entry
    remove_corpus("log-me", who=ALICE)
    rows = audit_log()
    assert [(r.user, r.action) for r in reversed(rows)] == [
        ("alice", "ingest"), ("alice", "share"), ("carol", "ask"), ("alice", "delete")]
    assert rows[2].detail == {"visibility": "groups", "groups": ["legal"]}
    assert [r.action for r in audit_log(user="carol")] == ["ask"]


def test_the_cli_acts_as_someone_and_shares(tmp_path, scoutlens_home):
    signed_in("bob", ["finance"], "header")  # bob's groups, as of his last sign-in
    src = folder(tmp_path / "a")
    assert db_cli("--as", "alice", "ingest", "plans", str(src), home=scoutlens_home)\
        .returncode == 0
    hidden = db_cli("--as", "bob", "corpora", "show", "plans", home=scoutlens_home)
    one_line_error(hidden, "no such corpus")
    refused = db_cli("--as", "bob", "corpora", "share", "plans", "--everyone",
                     home=scoutlens_home)
    one_line_error(refused, "no such corpus")
    ok = db_cli("--as", "alice", "corpora", "share", "plans", "-g", "finance",
                home=scoutlens_home)
    assert ok.returncode == 0 and "shared with finance" in ok.stderr
    listed = db_cli("--as", "bob", "corpora", "list", "--json", home=scoutlens_home)
    assert '"plans"' in listed.stdout and '"owner": "alice"' in listed.stdout
    both = db_cli("corpora", "share", "plans", "--everyone", "--private", home=scoutlens_home)
    one_line_error(both, "say one of")
    users = db_cli("users", "list", "--json", home=scoutlens_home)
    assert '"bob"' in users.stdout and '"finance"' in users.stdout
    log = db_cli("audit", "--user", "alice", "--since", "1h", "--json", home=scoutlens_home)
    assert '"share"' in log.stdout and '"ingest"' in log.stdout
    one_line_error(db_cli("audit", "--since", "yesterday", home=scoutlens_home), "--since")


def _checked() -> set[str]:
    """The service functions that take the person (`who`): the access-checked ones."""
    import app.services.ask as a
    import app.services.catalog as c
    import app.services.eval_runs as e
    import app.services.history as h
    import app.services.ingesting as i
    import app.services.search as se
    import app.services.snapshot as sn
    import app.services.targets as t
    import app.services.viewing as v

    return {name for mod in (a, c, e, h, i, se, sn, t, v) for name, fn in inspect.getmembers(mod,
            inspect.isfunction) if fn.__module__ == mod.__name__
            and "who" in inspect.signature(fn).parameters}


def test_every_ui_call_of_a_checked_service_says_who_asks():
    """A page that forgot `who=` would act as the operator and show everything: every call in
    ui/ to a service that takes the person passes it."""
    checked = _checked()
    assert {"list_corpora", "ask", "history", "source_view", "list_runs"} <= checked
    missing, calls = [], 0
    for path in sorted((REPO / "ui").rglob("*.py")):
        tree = ast.parse(path.read_text())
        services, modules = set(), set()  # names imported from app.services, and its modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "app.services":
                modules |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "app.services."):
                services |= {a.asname or a.name for a in node.names if a.name in checked}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) \
                    and f.value.id in modules and f.attr in checked:
                name = f.attr
            elif isinstance(f, ast.Name) and f.id in services:
                name = f.id
            else:
                continue
            calls += 1
            if not any(k.arg == "who" for k in node.keywords):
                missing.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    assert calls >= 10 and not missing, missing


def test_a_haystack_named_either_way_must_be_readable(tmp_path):
    """`--haystack NAME` and `--haystack corpus:NAME` read the same corpus: neither hands
    someone else's private text to an eval (nor lists the corpora in its error)."""
    ingest([folder(tmp_path / "a", "ZEBRA-4471 is the code.")], "alice-notes", who=ALICE)
    ingest([folder(tmp_path / "b", "Bob's own text.")], "bob-notes", who=BOB)
    backend = ScriptedBackend(reply="x")
    for haystack in ("alice-notes", "corpus:alice-notes"):
        for tasks in (("niah",), ("retrieval",)):
            config = EvalConfig(tasks=tasks, lengths=(64,), depths=(0.5,), samples=1,
                                haystack=haystack)
            with pytest.raises(CorpusNotFound) as refused:
                gen, counted = eval_runs.generator_for(config, backend, "cl100k", who=BOB)
                eval_runs.run(counted, backend, gen, who=BOB)
            assert "alice" not in str(refused.value).replace("alice-notes", ""), refused.value
    assert eval_runs.list_runs() == []
    # the owner's own retrieval eval: its scratch copy is hers in the audit log
    config = EvalConfig(tasks=("retrieval",), lengths=(64,), depths=(0.5,), samples=1,
                        haystack="alice-notes")
    gen, counted = eval_runs.generator_for(config, backend, "cl100k", who=ALICE)
    eval_runs.run(counted, backend, gen, who=ALICE)
    log = audit_log()
    assert {r.user for r in log if r.action in ("ingest", "delete")
            and r.target.startswith("eval-retrieval-")} == {"alice"}
    assert next(r for r in log if r.action == "eval").detail["haystack"] == "alice-notes"


def test_admin_is_a_reserved_name_and_the_log_is_for_admins(tmp_path):
    with pytest.raises(Exception, match="reserved"):
        signed_in("admin", ["admins"], "oidc")
    from app.services.users import list_users, principal_of

    with pytest.raises(Exception, match="reserved"):
        principal_of("admin")
    with pytest.raises(NotAllowed, match="admins"):
        audit_log(who=BOB)
    with pytest.raises(NotAllowed, match="admins"):
        list_users(who=BOB)
    assert audit_log(who=ROOT) == [] and list_users(who=ROOT) == []
    # "a,b" names two groups (as a proxy's comma-joined header does), not one called "a,b"
    ingest([folder(tmp_path / "a")], "split", who=ALICE)
    assert share_corpus("split", "groups", ["legal,finance", " "], who=ALICE).groups == (
        "finance", "legal")


def test_packing_a_corpus_never_writes_into_the_folders_it_came_from(tmp_path):
    from app.services.packing import PackInput, pack

    src = folder(tmp_path / "src")
    ingest([src], "packme", who=BOB)
    with pytest.raises(Exception, match="inside the input folder"):
        pack(PackInput(["packme"], out=str(src / "packed.xml")), who=BOB)
    assert not (src / "packed.xml").exists()
    outcome = pack(PackInput(["packme"], out=str(tmp_path / "packed.xml")), who=BOB)
    assert (tmp_path / "packed.xml").exists() and outcome.result.total_tokens > 0
