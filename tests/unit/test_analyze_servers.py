"""`analyze` over the servers: the MCP tools `analyze` and `analyses` (the SDK's client and
server over memory streams, progress notifications included) and the API's
`/v1/analyses` (Starlette's TestClient), on a scripted model that answers as a perfect one
would, so what is tested is the serving: coverage, who may read what, one-line refusals,
exports, admission."""

from __future__ import annotations

import io
import json
import re
import threading
import time

import anyio
import pytest
from fakes import ScriptedBackend
from helpers import make_contracts
from mcp import ClientSession
from mcp.shared.memory import create_client_server_memory_streams
from openpyxl import load_workbook
from starlette.testclient import TestClient

from app.mcp import schemas, tools
from app.servers import mcp_server
from app.servers.api import create_app
from app.servers.runtime import Runtime
from app.servers.signin import NotSignedIn
from app.services.access import Principal
from app.services.analysis import store
from common.errors import UserError
from engine.types import Completion, Stream, Usage

SOURCE = re.compile(r'<source id="(S\d+)" path="([^"]+)"')
BOB = Principal("bob")


class Perfect(ScriptedBackend):
    """A briefing's notes cite every source shown (a guide line each) and a merge keeps the
    citations; an extraction's rows come from the text shown. Safe to call concurrently."""

    def stream(self, request):
        self.requests.append(request)
        text = request.prefix + request.prompt
        shown = SOURCE.findall(text)
        if "JSON" in text and shown:
            reply = "\n".join(json.dumps({
                "source": sid, "party": {"value": f"Acme {int(path[1:3])} Ltd",
                                         "cite": f"{sid} L2"},
                "amount": {"value": f"{1000 + int(path[1:3])} EUR", "cite": f"[{sid}]"}})
                for sid, path in shown)
        elif shown:
            reply = "\n".join(f"[{sid}] {path}: a supply contract." for sid, path in shown)
        else:
            reply = "Themes: supply. " + " ".join(dict.fromkeys(re.findall(r"\[S\d+\]",
                                                                            request.prompt)))
        return Stream(iter([reply]), lambda: Completion(reply, Usage(len(text), 0, len(reply)),
                                                        finish_reason="stop"))


# --- MCP --------------------------------------------------------------------------------------


def _session(rt: Runtime, use, who=None) -> None:
    """`await use(session)` with an SDK client session of the server over memory streams."""
    server = mcp_server.build_server(rt, lambda ctx: who)

    async def run() -> None:
        async with create_client_server_memory_streams() as (client, srv), \
                anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.run(srv[0], srv[1],
                                             server.create_initialization_options()))
            async with ClientSession(*client) as session:
                await session.initialize()
                await use(session)
            tg.cancel_scope.cancel()

    anyio.run(run)


def _mcp(rt: Runtime, calls: list[tuple[str, dict]], who=None) -> tuple[list, list]:
    """Each call's result over the SDK's client, and the progress notifications it got."""
    results, notes = [], []

    async def use(session) -> None:
        for name, arguments in calls:
            got: list = []

            async def note(progress, total, message, got=got):
                got.append((progress, message))

            with anyio.fail_after(60):
                results.append(await session.call_tool(name, arguments, progress_callback=note))
            notes.append(got)

    _session(rt, use, who)
    return results, notes


def test_the_mcp_tool_reads_the_whole_corpus_and_reports_map_reduce_progress(tmp_path):
    make_contracts(tmp_path, n=24, filler=40)
    rt = Runtime()
    rt.use(Perfect(window=6000))
    (brief, listed), (progress, _) = _mcp(rt, [
        ("analyze", {"corpus": "contracts", "kind": "brief", "max_tokens": 128}),
        ("analyses", {})])
    assert not brief.is_error, brief.content[0].text
    data = brief.structured_content
    assert data["coverage"] == 1.0 and data["sources_read"] == 24 and data["levels"] >= 1
    assert data["citations"] and data["citations_verified"] == len(data["citations"])
    # the map calls' progress and the reduce's reached the client, in rising order
    messages = [m for _, m in progress]
    assert any(m.startswith("map ") for m in messages), messages
    assert any(m.startswith("reduce 1 ") for m in messages), messages
    values = [p for p, _ in progress]
    assert values == sorted(values) and len(set(values)) == len(values) >= 2
    assert [a["id"] for a in listed.structured_content["analyses"]] == [data["analysis_id"]]
    [md], _ = _mcp(rt, [("analyses", {"analysis_id": data["analysis_id"], "format": "md"})])
    assert md.content[1].text.startswith("# brief of contracts\n")
    assert "24 of 24 sources read (100%)" in md.content[1].text


def test_a_cancelled_mcp_analysis_stops_between_calls_and_resumes(tmp_path):
    make_contracts(tmp_path, n=24, filler=40)
    gate = threading.Event()

    class Held(Perfect):
        def stream(self, request):
            answer = super().stream(request)
            gate.wait(60)  # the first call is held until the client has cancelled
            return answer

    backend = Held(window=6000, concurrent=False)
    rt = Runtime()
    rt.use(backend)

    async def cancelled(session) -> None:
        async with anyio.create_task_group() as calls:
            calls.start_soon(session.call_tool, "analyze",
                             {"corpus": "contracts", "kind": "brief", "max_tokens": 128})
            with anyio.fail_after(30):
                while not backend.requests:
                    await anyio.sleep(0.02)
            calls.cancel_scope.cancel()  # the client sends notifications/cancelled
        await anyio.sleep(0.2)

    _session(rt, cancelled)
    gate.set()
    _until(lambda: [a.status for a in store.analyses()] == ["interrupted"],
           "the analysis stopped after the call in flight")
    assert len(backend.requests) == 1
    [stopped] = store.analyses()
    again = tools.analyze(schemas.parse("analyze", {
        "corpus": "contracts", "kind": "brief", "max_tokens": 128,
        "resume": stopped.analysis_id}), rt, None, lambda *a: None)
    assert again["resumed"] == 1 and again["coverage"] == 1.0


def test_the_mcp_tool_refuses_in_one_line_and_a_shared_server_reads_only_yours(tmp_path):
    make_contracts(tmp_path, n=3, filler=2)
    shared = Runtime(shared=True)
    shared.use(Perfect())
    (many, theirs, path, extract), _ = _mcp(shared, [
        ("analyze", {"corpus": "contracts", "kind": "extract",
                     "fields": [f"f{i}" for i in range(500)]}),
        ("analyze", {"corpus": "contracts", "kind": "brief"}),
        ("analyze", {"corpus": str(tmp_path / "contracts"), "kind": "brief"}),
        ("analyze", {"corpus": "contracts", "kind": "extract", "fields": "party, amount"})],
        who=BOB)
    assert many.is_error and many.content[0].text == ("500 fields; at most 40 in one "
                                                      "extraction (split them over several)")
    assert theirs.is_error and "no such corpus: contracts" in theirs.content[0].text
    assert path.is_error and "no such corpus" in path.content[0].text
    assert extract.is_error  # not Bob's either
    assert store.analyses() == [] and shared.turns().backend.requests == []
    # the owner (the operator here) extracts; reading it back as CSV
    rows = tools.analyze(schemas.parse("analyze", {
        "corpus": "contracts", "kind": "extract", "fields": "party, amount"}), shared, None,
        lambda *a: None)
    assert rows["coverage"] == 1.0 and [r["source"] for r in rows["rows"]] == [
        "c00.txt", "c01.txt", "c02.txt"]
    csv = tools.analyses(schemas.parse("analyses", {"analysis_id": rows["analysis_id"],
                                                    "format": "csv"}), shared, None, None)
    assert csv["document"].splitlines()[:2] == ["source,party,amount,unchecked",
                                                "c00.txt,Acme 0 Ltd,1000 EUR,"]
    with pytest.raises(UserError, match="no such analysis"):
        tools.analyses(schemas.parse("analyses", {"analysis_id": rows["analysis_id"]}),
                       shared, BOB, None)


# --- the API ----------------------------------------------------------------------------------


def _who(request):
    """A signing-in proxy's person, from a header the test sets (none: not signed in)."""
    name = request.headers.get("x-test-user")
    if name is None:
        raise NotSignedIn("sign in first")
    return None if name == "operator" else Principal(name)


def _client(backend, user="operator") -> tuple[TestClient, Runtime]:
    rt = Runtime()
    rt.use(backend)
    client = TestClient(create_app(rt, _who), base_url="http://127.0.0.1:8700",
                        headers={"X-Test-User": user})
    return client, rt


def test_the_api_runs_lists_and_exports_an_analysis(tmp_path):
    make_contracts(tmp_path, n=3, filler=2)
    client, _ = _client(Perfect())
    r = client.post("/v1/analyses", json={"corpus": "contracts", "kind": "brief"})
    assert r.status_code == 200, r.text
    brief = r.json()
    assert brief["coverage"] == 1.0 and brief["sources_read"] == brief["sources"] == 3
    assert brief["calls"] == 1 and len(brief["guide"]) == 3
    r = client.post("/v1/analyses", json={"corpus": "contracts", "kind": "extract",
                                          "fields": ["party", "amount: the total"]})
    assert r.status_code == 200, r.text
    rows = r.json()
    assert rows["coverage"] == 1.0 and rows["columns"] == ["party", "amount"]
    assert all(c["verified"] for row in rows["rows"] for c in row["cells"].values())

    listed = client.get("/v1/analyses").json()["data"]
    assert [a["id"] for a in listed] == [rows["analysis_id"], brief["analysis_id"]]
    assert listed[0]["status"] == "done" and listed[0]["coverage"] == 1.0
    assert client.get("/v1/analyses?corpus=nope").json()["data"] == []

    one = f"/v1/analyses/{rows['analysis_id']}"
    assert client.get(one).json() == rows
    r = client.get(one + "?format=csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert f'filename="analysis-{rows["analysis_id"]}.csv"' in r.headers["content-disposition"]
    assert r.text.splitlines()[1] == "c00.txt,Acme 0 Ltd,1000 EUR,"
    sheet = load_workbook(io.BytesIO(client.get(one + "?format=xlsx").content)).active
    assert [c.value for c in next(sheet.iter_rows())] == ["source", "party", "amount",
                                                          "unchecked"]
    assert json.loads(client.get(one + "?format=json").content) == rows
    assert "| c01.txt | Acme 1 Ltd | 1001 EUR |" in client.get(one + "?format=md").text
    r = client.get(f"/v1/analyses/{brief['analysis_id']}?format=csv")
    assert r.status_code == 400 and "a table is an extraction's" in r.json()["error"]["message"]
    r = client.get(one + "?format=pdf")
    assert r.status_code == 400 and r.json()["error"]["param"] == "format"


def test_the_api_refuses_what_the_caller_may_not_read_or_should_not_ask(tmp_path):
    make_contracts(tmp_path, n=3, filler=2, who=Principal("alice"))
    backend = Perfect()
    alice, rt = _client(backend, "alice")
    bob = TestClient(alice.app, base_url="http://127.0.0.1:8700", headers={"X-Test-User": "bob"})
    r = bob.post("/v1/analyses", json={"corpus": "contracts", "kind": "brief"})
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "corpus_not_found" and "no such corpus 'contracts'" in error["message"]
    r = alice.post("/v1/analyses", json={"corpus": "contracts", "kind": "compare",
                                         "other": "contracts"})
    assert r.status_code == 400 and "two different corpora" in r.json()["error"]["message"]
    for body, words in [
        ({"corpus": "contracts", "kind": "extract", "fields": [f"f{i}" for i in range(500)]},
         "500 fields; at most 40"),
        ({"corpus": "contracts", "kind": "summarise"}, "kind: input should be"),
        ({"corpus": "contracts", "kind": "brief", "depth": 3}, "depth: not an argument"),
        ({"corpus": "contracts", "kind": "brief", "max_tokens": 5}, "max_tokens:"),
        ([1, 2], "JSON object"),
    ]:
        r = alice.post("/v1/analyses", json=body)
        assert r.status_code == 400, (body, r.text)
        message = r.json()["error"]["message"]
        assert words in message and "\n" not in message, message
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert backend.requests == [] and store.analyses() == []

    done = alice.post("/v1/analyses", json={"corpus": "contracts", "kind": "brief"}).json()
    assert done["coverage"] == 1.0
    assert bob.get("/v1/analyses").json()["data"] == []
    r = bob.get(f"/v1/analyses/{done['analysis_id']}?format=md")
    assert r.status_code == 404 and "no such analysis" in r.json()["error"]["message"]
    # sign-in and the host check apply as for chat completions
    nobody = TestClient(alice.app, base_url="http://127.0.0.1:8700")
    assert nobody.post("/v1/analyses", json={"corpus": "contracts",
                                             "kind": "brief"}).status_code == 401
    assert nobody.get("/v1/analyses").status_code == 401
    r = alice.get("/v1/analyses", headers={"Host": "attacker.example:8700"})
    assert r.status_code == 421


def test_a_stopping_server_answers_503_and_the_waiting_analysis_begins_nothing(tmp_path):
    make_contracts(tmp_path, n=3, filler=2)
    backend = Perfect(concurrent=False)
    rt = Runtime()
    rt.use(backend)
    app = create_app(rt, _who)
    answers: list = []
    with TestClient(app, base_url="http://127.0.0.1:8700",
                    headers={"X-Test-User": "operator"}) as client:
        with rt.turn():  # the model is busy: the analysis waits its turn
            asker = threading.Thread(target=lambda: answers.append(client.post(
                "/v1/analyses", json={"corpus": "contracts", "kind": "brief"})), daemon=True)
            asker.start()
            _until(lambda: app.state.in_flight.asks, "the analysis was admitted")
            client.portal.call(app.state.in_flight.stop_all)  # what `serve` does on SIGTERM
            asker.join(60)
            assert not asker.is_alive()  # answered while the model was still busy
        assert answers[0].status_code == 503
        assert answers[0].json()["error"]["code"] == "server_stopping"
    _until(lambda: not any(t.name == "scoutlens-api-analyze" for t in threading.enumerate()),
           "the analysis's thread ended at its turn")
    assert backend.requests == [] and store.analyses() == []


def _until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_client_that_hangs_up_stops_its_analysis_between_calls(tmp_path):
    """Over a real uvicorn: a plain response is not cancelled when its client leaves, so the
    analysis watches for the hang-up and stops after the call in flight (resumable)."""
    import socket

    import uvicorn

    make_contracts(tmp_path, n=24, filler=40)
    gate = threading.Event()

    class Held(Perfect):
        def stream(self, request):
            answer = super().stream(request)
            gate.wait(60)  # the first call is held until the client has hung up
            return answer

    backend = Held(window=6000, concurrent=False)
    rt = Runtime()
    rt.use(backend)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(rt, _who), host="127.0.0.1", port=port,
                                           log_level="error", lifespan="off"))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    try:
        _until(lambda: server.started, "the server started")
        body = json.dumps({"corpus": "contracts", "kind": "brief", "max_tokens": 128}).encode()
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"POST /v1/analyses HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Test-User: operator"
                       b"\r\nContent-Type: application/json\r\nContent-Length: "
                       + str(len(body)).encode() + b"\r\n\r\n" + body)
        _until(lambda: backend.requests, "the first model call began")
        client.close()  # the client hangs up while the model answers
        time.sleep(0.3)
        gate.set()
        _until(lambda: [a.status for a in store.analyses()] == ["interrupted"],
               "the analysis stopped after the call in flight")
        assert len(backend.requests) == 1
        [stopped] = store.analyses()
        assert "went away" in stopped.error
    finally:
        gate.set()
        server.should_exit = True
        serving.join(30)
