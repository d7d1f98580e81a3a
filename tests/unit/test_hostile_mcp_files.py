"""Issue 23, item 4: a tool call never names the server's files. On a shared server a tokenizer
is a built-in name or one the operator configured: a path is one refusal, the same whether the
file exists or not, and the file is never opened; a pack's target is a corpus name, never
looked up on disk. The operator's own client (stdio) may write `out` only as a new file or
over a pack scoutlens wrote; tokenizer files are size-capped. The tools on the services here;
the SDK's client over stdio and streamable HTTP: tests/integration/test_hostile_mcp.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers import make_facts_repo, write_rank_file

from app.mcp import schemas, tools
from app.servers.runtime import Runtime
from app.services.packing import is_pack_output
from app.settings import get_settings
from common.errors import UserError
from ingest.tokenizers import MAX_FILE_BYTES, load_tokenizer

#: paths opened while a test watches (an audit hook cannot be removed, so it stays idle)
OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if OPENED is not None and event == "open" and isinstance(args[0], str | bytes):
        OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def opened():
    """The files this process opens during the test."""
    global OPENED
    OPENED = []
    yield OPENED
    OPENED = None


def _noop(*args) -> None:
    pass


def _call(name: str, arguments: dict, rt: Runtime) -> dict:
    return tools.HANDLERS[name](schemas.parse(name, arguments), rt, None, _noop)


def _refusal(name: str, arguments: dict, rt: Runtime) -> str:
    with pytest.raises(UserError) as refused:
        _call(name, arguments, rt)
    message = str(refused.value)
    assert "\n" not in message
    return message


@pytest.fixture
def facts(tmp_path, monkeypatch):
    from app.services.ingesting import ingest

    monkeypatch.setenv("SCOUTLENS_WORKERS", "1")
    repo = make_facts_repo(tmp_path / "facts")
    ingest([repo], "facts")
    return repo


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "server" / "shadow"
    path.parent.mkdir()
    path.write_text("root:$6$secret\n")
    (path.parent / "hfdir").mkdir()
    (path.parent / "hfdir" / "tokenizer.json").write_text("{}")
    return path


# --- a shared server ------------------------------------------------------------------------------


def test_a_tokenizer_path_is_one_refusal_and_nothing_is_opened(facts, secret, opened):
    shared = Runtime(shared=True)
    missing = secret.parent / "no-such-file"
    specs = [f"llama4:{secret}", f"llama4:{missing}", f"hf:{secret.parent / 'hfdir'}",
             f"hf:{missing}", "llama4:/etc/shadow", "hf:/etc", "/etc/passwd",
             "llama4:~/.ssh/id_rsa", "../../etc/passwd", "cl100k:/etc/passwd"]
    messages = {_refusal("pack", {"target": ["facts"], "tokenizer": spec}, shared)
                for spec in specs}
    assert len(messages) == 1, messages
    (message,) = messages
    assert "cl100k, o200k, embedded" in message and str(secret.parent) not in message
    assert not [p for p in opened if p.startswith(str(secret.parent))
                or p in ("/etc/shadow", "/etc/passwd")]


def test_a_shared_caller_counts_with_built_in_and_configured_names(facts, tmp_path,
                                                                   monkeypatch):
    rank_file = tmp_path / "operator" / "tokenizer.model"
    rank_file.parent.mkdir()
    write_rank_file(rank_file)
    monkeypatch.setenv("SCOUTLENS_SHARED_TOKENIZERS", f'{{"tiny": "llama4:{rank_file}"}}')
    get_settings.cache_clear()
    shared = Runtime(shared=True)
    assert _call("pack", {"target": ["facts"], "tokenizer": "o200k"}, shared)["tokenizer"] \
        == "o200k"
    packed = _call("pack", {"target": ["facts"], "tokenizer": "tiny"}, shared)
    assert packed["tokenizer"] == "tiny" and "7291" in packed["text"]
    # the operator's file path is never shown: the name it is configured under instead
    message = _refusal("pack", {"target": ["facts"], "tokenizer": "small"}, shared)
    assert "cl100k, o200k, embedded, tiny" in message and str(rank_file) not in message


def test_a_corpus_tokenizer_file_is_not_shown_to_a_shared_caller(tmp_path, monkeypatch):
    from app.services.ingesting import ingest

    monkeypatch.setenv("SCOUTLENS_WORKERS", "1")
    rank_file = tmp_path / "operator" / "tokenizer.model"
    rank_file.parent.mkdir()
    write_rank_file(rank_file)
    ingest([make_facts_repo(tmp_path / "facts")], "facts", f"llama4:{rank_file}")
    shared = Runtime(shared=True)
    listed = _call("list_corpora", {}, shared)["corpora"][0]
    assert listed["tokenizer"] == "llama4"
    assert _call("pack", {"target": ["facts"]}, shared)["tokenizer"] == "llama4"
    rank_file.unlink()  # the operator's file is gone: the caller is not told where it was
    load_tokenizer.cache_clear()
    message = _refusal("pack", {"target": ["facts"]}, shared)
    assert "does not load on this server" in message and str(rank_file) not in message
    assert str(rank_file) in _call("list_corpora", {}, Runtime())["corpora"][0]["tokenizer"]


def test_a_pack_target_is_never_looked_up_on_the_servers_disk(facts, tmp_path, monkeypatch,
                                                               opened):
    """`facts` is a corpus and also a folder of the server's working directory: the corpus is
    packed (the folder was an oracle: refused when it existed); a path is one refusal."""
    monkeypatch.chdir(tmp_path)
    shared = Runtime(shared=True)
    assert _call("pack", {"target": ["facts"]}, shared)["sources"] == 3
    refusals = {_refusal("pack", {"target": [t]}, shared)
                for t in (str(facts), str(tmp_path / "missing"), "/etc/passwd", ".env")}
    assert len(refusals) == 1 and "one stored corpus name" in refusals.pop()
    assert not [p for p in opened if p.startswith(str(facts))]


def test_every_other_argument_of_a_shared_server_names_no_file(facts, secret):
    shared = Runtime(shared=True)
    for arguments in ({"paths": [str(secret)]}, {"paths": [str(secret) + "x"]},
                      {"paths": ["/etc/passwd"], "tokenizer": "cl100k"}):
        assert "off on a shared server" in _refusal("ingest", arguments, shared)
    out = secret.parent / "new.xml"
    assert "off on a shared server" in _refusal(
        "pack", {"target": ["facts"], "out": str(out)}, shared)
    assert not out.exists() and secret.read_text() == "root:$6$secret\n"
    for path in (str(secret), "/etc/passwd", "../../etc/passwd"):  # stored paths only
        assert "is not a source of corpus" in _refusal(
            "read_source", {"corpus": "facts", "path": path}, shared)
    assert "no such corpus" in _refusal(
        "search", {"corpus": str(facts), "query": "vault"}, shared)


# --- the operator's own client (stdio) ----------------------------------------------------------


def test_out_never_overwrites_an_unrelated_file(facts, tmp_path):
    local = Runtime()
    notes = tmp_path / "notes.txt"
    notes.write_text("my own notes\n")
    link = tmp_path / "link.xml"
    link.symlink_to(notes)
    dangling = tmp_path / "dangling.xml"
    dangling.symlink_to(tmp_path / "would-be-created")
    fifo = tmp_path / "fifo.xml"
    os.mkfifo(fifo)
    for out in (notes, link, dangling, fifo):
        message = _refusal("pack", {"target": ["facts"], "out": str(out)}, local)
        assert "refusing to overwrite" in message and "not a pack scoutlens wrote" in message
    assert notes.read_text() == "my own notes\n" and link.is_symlink()
    assert not (tmp_path / "would-be-created").exists()
    assert "is a folder" in _refusal("pack", {"target": ["facts"], "out": str(tmp_path)}, local)
    assert "no folder" in _refusal(
        "pack", {"target": ["facts"], "out": str(tmp_path / "new" / "p.xml")}, local)
    assert not (tmp_path / "new").exists()
    loop = tmp_path / "loop.xml"
    loop.symlink_to(loop)
    for out in ("a\0b.xml", str(tmp_path / ("x" * 300)), str(loop)):
        assert "out: cannot write there" in _refusal(
            "pack", {"target": ["facts"], "out": out}, local)


def test_out_creates_a_pack_and_rewrites_one_scoutlens_wrote(facts, tmp_path):
    local = Runtime()
    for fmt in ("xml", "markdown"):
        out = tmp_path / f"packed.{fmt}"
        wrote = _call("pack", {"target": ["facts"], "format": fmt, "out": str(out)}, local)
        assert wrote["out"] == str(out) and is_pack_output(out)
        again = _call("pack", {"target": ["facts"], "format": fmt, "budget": "2k", "fit": True,
                               "out": str(out)}, local)
        assert again["out"] == str(out) and "7291" in out.read_text()
    # a link to a pack: the pack is rewritten, the link stays
    link = tmp_path / "latest.xml"
    link.symlink_to(tmp_path / "packed.xml")
    assert _call("pack", {"target": ["facts"], "out": str(link)}, local)["out"] == str(
        tmp_path / "packed.xml")
    assert link.is_symlink()
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic writer left nothing behind


def test_a_file_that_merely_mentions_a_pack_is_not_one(tmp_path):
    fake = tmp_path / "fake.xml"
    fake.write_text('hello\n<corpus name="x">\n')
    assert not is_pack_output(fake)
    fake.write_text('<corpus name="x">\n<!-- something else -->\n')
    assert not is_pack_output(fake)
    assert not is_pack_output(tmp_path / "missing.xml") and not is_pack_output(tmp_path)


def test_a_tokenizer_file_over_the_cap_is_refused_unread(facts, tmp_path, opened):
    big = tmp_path / "tokenizer.model"
    with open(big, "wb") as fh:  # sparse: no disk used
        fh.truncate(MAX_FILE_BYTES["llama4"] + 1)
    hf = tmp_path / "hf"
    hf.mkdir()
    with open(hf / "tokenizer.json", "wb") as fh:
        fh.truncate(MAX_FILE_BYTES["hf"] + 1)
    opened.clear()
    local = Runtime()
    for spec in (f"llama4:{big}", f"hf:{hf}"):
        message = _refusal("pack", {"target": ["facts"], "tokenizer": spec}, local)
        assert "MB: not a tokenizer" in message
    assert not [p for p in opened if p.startswith((str(big), str(hf)))]


def test_a_tokenizer_file_is_read_no_further_than_its_cap(monkeypatch):
    """A file whose size says less than it holds (/proc files say 0) is read to the cap + 1."""
    import ingest.tokenizers as tokenizers

    monkeypatch.setitem(tokenizers.MAX_FILE_BYTES, "llama4", 100)
    status = Path("/proc/self/status")
    assert status.stat().st_size == 0
    with pytest.raises(UserError, match="over 0 MB: not a tokenizer"):
        tokenizers.read_tokenizer_file(status, "llama4")
    assert load_tokenizer.cache_info().maxsize == tokenizers.KEPT_LOADED


def test_a_file_given_as_a_tokenizer_never_comes_back_in_the_refusal(facts, tmp_path):
    """The operator's agent, steered by a document, names a key file as a tokenizer: it is
    refused by line number, not with the line's text."""
    keys = tmp_path / "credentials"
    keys.write_text("password hunter2\n[default]\n")
    message = _refusal("pack", {"target": ["facts"], "tokenizer": f"llama4:{keys}"}, Runtime())
    assert "not a tiktoken rank file" in message and "hunter2" not in message
