"""The MCP tools and the OpenAI-compatible api without a model: the tools' schemas and the
one-line refusals of bad arguments, the tools on a scripted backend (what a shared server
refuses), and the api's request parsing, errors, answers and streams (ScriptedBackend). The
real SDK client over stdio and the openai client on the embedded model:
tests/integration/test_mcp.py and test_api.py."""

from __future__ import annotations

import json

import pytest
from fakes import ScriptedBackend
from helpers import make_facts_repo
from starlette.testclient import TestClient

from app.mcp import schemas, tools
from app.servers.api import create_app
from app.servers.chat_request import parse_chat
from app.servers.errors import ApiError
from app.servers.mcp_server import error_result, ok_result, tool_list
from app.servers.runtime import Runtime
from common.errors import UserError


def _noop(*args) -> None:
    pass


@pytest.fixture
def facts(tmp_path, monkeypatch):
    from app.services.ingesting import ingest

    monkeypatch.setenv("SCOUTLENS_WORKERS", "1")
    repo = make_facts_repo(tmp_path / "facts")
    ingest([repo], "facts")
    return repo


def _call(name: str, arguments: dict, rt: Runtime | None = None) -> dict:
    args = schemas.parse(name, arguments)
    return tools.HANDLERS[name](args, rt or Runtime(), None, _noop)


# --- schemas ------------------------------------------------------------------------------------


def test_every_tool_has_a_described_closed_schema():
    listed = {t.name: t for t in tool_list()}
    assert set(listed) == set(tools.HANDLERS) == set(schemas.TOOLS)
    for tool in listed.values():
        schema = tool.input_schema
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert tool.description and tool.title
        for name, prop in schema["properties"].items():
            assert prop.get("description"), (tool.name, name)
    assert listed["search"].annotations.read_only_hint
    assert not listed["ingest"].annotations.read_only_hint
    pack = listed["pack"].input_schema
    assert pack["required"] == ["target"]
    assert pack["properties"]["format"]["enum"] == ["xml", "markdown"]


@pytest.mark.parametrize(("tool", "arguments", "words"), [
    ("search", {"corpus": "c", "query": "q", "k": 0}, "k: input should be greater than"),
    ("search", {"corpus": "c"}, "query: missing (required)"),
    ("search", {"corpus": "c", "query": "q", "depth": 3}, "depth: not an argument"),
    ("ask", {"corpus": "c", "question": "q", "mode": "fast"}, "mode: input should be"),
    ("ingest", {"paths": []}, "paths: list should have at least 1 item"),
    ("read_source", {"corpus": "c", "path": "p", "start_line": "ten"}, "start_line:"),
    ("nope", {}, "no such tool: 'nope'"),
])
def test_bad_arguments_are_one_line(tool, arguments, words):
    with pytest.raises(schemas.BadArguments) as refused:
        schemas.parse(tool, arguments)
    message = str(refused.value)
    assert "\n" not in message and words in message, message


def test_results_and_errors_as_a_client_reads_them():
    err = error_result("no such corpus: x\n(see list_corpora)")
    assert err.is_error and err.content[0].text == "no such corpus: x (see list_corpora)"
    packed = ok_result("pack", {"total_tokens": 3, "text": "<source>\n"})
    assert [c.text for c in packed.content][1] == "<source>\n"
    assert packed.structured_content == {"total_tokens": 3}


# --- the tools on the services --------------------------------------------------------------------


def test_tools_call_the_services(facts, tmp_path):
    assert [c["name"] for c in _call("list_corpora", {})["corpora"]] == ["facts"]
    hit = _call("search", {"corpus": "facts", "query": "load_config"})["hits"][0]
    assert hit["path"].endswith("config.py") and hit["lines"]
    read = _call("read_source", {"corpus": "facts", "path": hit["path"], "start_line": 3,
                                 "end_line": 3})
    assert read["text"] == "3  RETRY_LIMIT = 7" and read["total_lines"] == 8
    with pytest.raises(UserError, match="end_line 2 is before start_line 3"):
        _call("read_source", {"corpus": "facts", "path": hit["path"], "start_line": 3,
                              "end_line": 2})
    packed = _call("pack", {"target": ["facts"], "budget": "2k", "format": "markdown"})
    assert packed["total_tokens"] <= 2048 and "7291" in packed["text"]
    assert not list((tmp_path / "home" / "tmp").glob("mcp-pack-*"))  # nothing left behind
    with pytest.raises(UserError, match="not a token budget"):
        _call("pack", {"target": ["facts"], "budget": "-5"})

    rt = Runtime()
    rt.use(ScriptedBackend("The vault code is 7291 [S1]."))
    answer = _call("ask", {"corpus": "facts", "question": "What is the vault code?"}, rt)
    assert answer["mode"] == "full" and answer["share_of_corpus"] == 1.0
    assert answer["usage"]["prompt_tokens"] > 0 and answer["conversation"]
    follow = _call("ask", {"corpus": "facts", "question": "And the retry limit?",
                           "conversation": answer["conversation"]}, rt)
    assert follow["turn"] == 2


def test_a_local_servers_repack_reads_only_what_changed(facts, tmp_path, monkeypatch):
    """The server keeps the last pack's memo in memory (Runtime.resident): an agent packing
    the folder again has only the changed file read, even with the memo's file gone."""
    import shutil

    import ingest.pipeline
    from app.settings import get_settings
    from ingest import statmemo

    monkeypatch.setattr(statmemo, "RACY_NS", 0)
    opened: list[str] = []
    real = ingest.pipeline.read_bytes
    monkeypatch.setattr(ingest.pipeline, "read_bytes",
                        lambda cand, stamped=None: opened.append(cand.path) or real(cand, stamped))
    rt = Runtime()
    first = _call("pack", {"target": [str(facts)]}, rt)
    assert opened and rt.resident() is not None and Runtime(shared=True).resident() is None
    shutil.rmtree(get_settings().cache_dir / "pack-memo")
    changed = sorted(p for p in facts.rglob("*") if p.is_file())[0]
    changed.write_text(changed.read_text() + "\nappended 4417\n")
    opened.clear()
    again = _call("pack", {"target": [str(facts)]}, rt)
    assert opened == [changed.relative_to(facts).as_posix()] and "appended 4417" in again["text"]
    assert again["sources"] == first["sources"]


def test_a_shared_server_reads_and_writes_nothing_of_its_own_disk(facts, tmp_path):
    shared = Runtime(shared=True)
    with pytest.raises(UserError, match="off on a shared server"):
        _call("ingest", {"paths": [str(facts)]}, shared)
    with pytest.raises(UserError, match="one stored corpus name"):
        _call("pack", {"target": [str(facts)]}, shared)
    with pytest.raises(UserError, match="off on a shared server"):
        _call("pack", {"target": ["facts"], "out": str(tmp_path / "x.xml")}, shared)
    assert _call("pack", {"target": ["facts"]}, shared)["sources"] == 3
    shared.use(ScriptedBackend())
    with pytest.raises(UserError, match="no such corpus"):  # a path is never ingested
        _call("ask", {"corpus": str(facts), "question": "What?"}, shared)


# --- the OpenAI-compatible api --------------------------------------------------------------------


def _body(**over) -> dict:
    return {"model": "corpus:facts", "messages": [{"role": "user", "content": "Q?"}]} | over


def test_chat_bodies_are_parsed_or_refused_in_one_line():
    req = parse_chat(_body(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "first"}]},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": "second"}], stream=True, max_completion_tokens=64,
        stream_options={"include_usage": True}))
    assert (req.corpus, req.question, req.earlier) == ("facts", "second", ["first"])
    assert req.stream and req.include_usage and req.max_tokens == 64 and req.notes
    for body, status, words in [
        (_body(model="gpt-4o"), 404, "models are corpora"),
        (_body(messages=[]), 400, "messages must be a non-empty list"),
        (_body(messages=[{"role": "assistant", "content": "x"}]), 400, "last message"),
        (_body(messages=[{"role": "tool", "content": "x"}]), 400, "role must be"),
        (_body(max_tokens=0), 400, "max_tokens must be a whole number"),
        (_body(n=2), 400, "n must be 1"),
        ([1, 2], 400, "JSON object"),
    ]:
        with pytest.raises(ApiError) as refused:
            parse_chat(body)
        assert refused.value.status == status and words in str(refused.value)


def _client(backend) -> TestClient:
    rt = Runtime()
    rt.use(backend)
    return TestClient(create_app(rt, lambda request: None), base_url="http://127.0.0.1:8700")


def test_api_answers_with_citations_usage_and_streams(facts):
    client = _client(ScriptedBackend("The vault code is 7291 [S1]."))
    assert client.get("/v1/models").json()["data"][0]["id"] == "corpus:facts"

    r = client.post("/v1/chat/completions", json=_body(
        messages=[{"role": "user", "content": "What is the vault code?"}]))
    assert r.status_code == 200, r.text
    data = r.json()
    message = data["choices"][0]["message"]
    assert message["content"].startswith("The vault code is 7291 [S1].")
    assert message["citations"] and "Sources:" in message["content"]
    assert data["usage"]["prompt_tokens"] > 0 and "prompt_tokens_details" in data["usage"]
    conversation = data["scoutlens"]["conversation"]

    # the same questions again: the stored conversation is continued
    r = client.post("/v1/chat/completions", json=_body(stream=True, stream_options={
        "include_usage": True}, messages=[
        {"role": "user", "content": "What is the vault code?"},
        {"role": "assistant", "content": message["content"]},
        {"role": "user", "content": "And the retry limit?"}]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in r.text.splitlines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.startswith("The vault code is 7291 [S1].")
    final = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
    assert final["scoutlens"]["conversation"] == conversation
    assert final["scoutlens"]["turn"] == 2 and final["choices"][0]["delta"]["citations"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] > 0

    # earlier turns that are no stored conversation: answered alone, and said so
    r = client.post("/v1/chat/completions", json=_body(messages=[
        {"role": "user", "content": "never asked"}, {"role": "assistant", "content": "x"},
        {"role": "user", "content": "What is the vault code?"}]))
    assert r.json()["scoutlens"]["turn"] == 1
    assert any("single-turn" in n for n in r.json()["scoutlens"]["notes"])


def test_api_errors_are_openai_shaped(facts):
    client = _client(ScriptedBackend())
    r = client.post("/v1/chat/completions", json=_body(model="corpus:nope"))
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "model_not_found" and "no such corpus 'nope'" in error["message"]
    r = client.post("/v1/chat/completions", content=b"{not json",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "the body is not JSON"
    # a web page can POST text/plain without asking first: only JSON is read
    r = client.post("/v1/chat/completions", content=json.dumps(_body()),
                    headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]["message"]
    # a body over the limit is refused from its declared length, and when it streams past it
    r = client.post("/v1/chat/completions", content=b"x" * (2 << 20),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413

    def chunks():
        for _ in range(40):
            yield b" " * 65536

    r = client.post("/v1/chat/completions", content=chunks(),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]["message"]
    # a page whose name an attacker points at 127.0.0.1 (DNS rebinding) sends its own Host
    r = client.get("/v1/models", headers={"Host": "attacker.example:8700"})
    assert r.status_code == 421 and "Host" in r.json()["error"]["message"]
    assert client.get("/v1/models", headers={"Host": "localhost:8700"}).status_code == 200
    r = client.post("/v1/chat/completions", json=_body(messages=[
        {"role": "user", "content": "x" * 5000}]))
    assert r.status_code == 400 and "limit is 4,000" in r.json()["error"]["message"]


def test_beyond_loopback_people_sign_in_through_the_proxy(monkeypatch):
    from app.servers.signin import NotSignedIn, from_headers, needs_sign_in
    from app.settings import get_settings

    assert not needs_sign_in("127.0.0.1", None, "serve api")
    with pytest.raises(UserError, match="without sign-in"):
        needs_sign_in("0.0.0.0", None, "serve api")
    with pytest.raises(UserError, match="--trusted .* stays on loopback"):
        needs_sign_in("0.0.0.0", False, "serve api")
    monkeypatch.setenv("SCOUTLENS_AUTH", "header")
    monkeypatch.setenv("SCOUTLENS_AUTH_PROXY_SECRET", "s3cret")
    get_settings.cache_clear()
    assert needs_sign_in("0.0.0.0", None, "serve api")
    assert needs_sign_in("127.0.0.1", True, "serve api")  # --shared behind a local proxy
    # header sign-in configured: a proxy on this machine forwards to loopback, so loopback
    # serves signed-in people too (never the operator to whoever connects)
    assert needs_sign_in("127.0.0.1", None, "serve api")
    assert not needs_sign_in("127.0.0.1", False, "serve api")  # --trusted, on purpose
    good = {"X-Scoutlens-Proxy-Secret": "s3cret", "X-Forwarded-User": "alice",
            "X-Forwarded-Groups": "legal, ,finance"}
    assert from_headers(good, "10.0.0.9") == ("alice", ["legal", "finance"])
    for bad in ({**good, "X-Scoutlens-Proxy-Secret": "guess"},
                {k: v for k, v in good.items() if k != "X-Forwarded-User"}):
        with pytest.raises(NotSignedIn):
            from_headers(bad, "10.0.0.9")


class EndlessBackend(ScriptedBackend):
    """Generates a word every 10 ms until it is stopped; counts what it produced."""

    def __init__(self):
        super().__init__()
        self.produced = 0
        self.closed = False

    def stream(self, request):
        import time

        from engine.types import Completion, Stream, Usage

        def deltas():
            try:
                for _ in range(10_000):
                    self.produced += 1
                    time.sleep(0.01)
                    yield "word "
            finally:
                self.closed = True

        return Stream(deltas(), lambda: Completion("", Usage(1, 0, 1), model="m",
                                                   backend="scripted"))


def test_a_streamed_answer_stops_when_its_client_leaves(facts):
    """The client goes away after two chunks: the generation is stopped at its next word (it
    would hold the model for 10,000 words) and nothing is stored."""
    import time

    import anyio

    from app.servers.bridge import stream_events as _events
    from app.servers.chat_request import ChatRequest
    from app.services.history import history

    backend = EndlessBackend()
    rt = Runtime()
    rt.use(backend)
    req = ChatRequest(corpus="facts", question="What is the vault code?", stream=True)

    async def leave_early() -> None:
        events = _events(rt, req, None)
        for _ in range(3):  # the role, then two words
            await events.__anext__()
        await events.aclose()

    anyio.run(leave_early)
    deadline = time.time() + 10
    while not backend.closed and time.time() < deadline:
        time.sleep(0.05)
    assert backend.closed and backend.produced < 100, backend.produced
    assert history("facts") == []  # an answer nobody received is not stored
    with rt.turn() as again:  # and the model is free for the next question
        assert again is backend
