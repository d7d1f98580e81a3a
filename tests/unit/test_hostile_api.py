"""`serve api` against hostile and heavy callers, without a model (ScriptedBackend) and without
a socket (Starlette's TestClient; the real server and SIGTERM: tests/integration/
test_hostile_serve.py): questions waiting for the one in-process model hold no thread the
quick endpoints need, too many questions at once get a one-line 503 with Retry-After, the
server stopping ends a stream with an error event and [DONE], and a lone surrogate escape in
a question is a one-line 400, never a 500."""

from __future__ import annotations

import json
import threading
import time

import pytest
from fakes import ScriptedBackend
from helpers import make_facts_repo
from starlette.testclient import TestClient

from app.servers.api import create_app
from app.servers.runtime import Runtime

WAITING = 45  # more than anyio's 40 default worker threads


@pytest.fixture
def facts(tmp_path, monkeypatch):
    from app.services.ingesting import ingest

    monkeypatch.setenv("SCOUTLENS_WORKERS", "1")
    ingest([make_facts_repo(tmp_path / "facts")], "facts")


def _app(backend, **kw):
    rt = Runtime()
    rt.use(backend)
    return create_app(rt, lambda request: None, **kw)


def _ask(question: str = "What is the vault code?", **over) -> dict:
    return {"model": "corpus:facts", "messages": [{"role": "user", "content": question}]} | over


def _until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_models_answers_while_questions_wait_for_the_model(facts):
    """The in-process model answers one at a time: the others wait for it, and must not take
    the threads /v1/models needs."""
    gate = threading.Event()
    app = _app(ScriptedBackend(during=gate.wait, concurrent=False))
    with TestClient(app, base_url="http://127.0.0.1:8700") as client:
        asks = [threading.Thread(target=client.post, args=("/v1/chat/completions",),
                                 kwargs={"json": _ask(f"[{i}] What is the vault code?")},
                                 daemon=True) for i in range(WAITING)]
        for t in asks:
            t.start()
        _until(lambda: len(app.state.in_flight.asks) == WAITING, "the asks are in flight")
        got: list[int] = []
        models = threading.Thread(target=lambda: got.append(client.get("/v1/models")
                                                           .status_code), daemon=True)
        models.start()
        models.join(60)
        answered_while_waiting = got == [200] and not gate.is_set()
        gate.set()
        for t in asks:
            t.join(60)
    assert answered_while_waiting, got


def test_too_many_questions_at_once_are_a_one_line_503(facts):
    gate = threading.Event()
    app = _app(ScriptedBackend(during=gate.wait), max_in_flight=1)
    with TestClient(app, base_url="http://127.0.0.1:8700") as client:
        first = threading.Thread(target=client.post, args=("/v1/chat/completions",),
                                 kwargs={"json": _ask()}, daemon=True)
        first.start()
        _until(lambda: len(app.state.in_flight.asks) == 1, "the first ask is in flight")
        r = client.post("/v1/chat/completions", json=_ask("And the retry limit?"))
        gate.set()
        first.join(60)
        assert r.status_code == 503 and r.headers["retry-after"].isdigit()
        error = r.json()["error"]
        assert error["code"] == "server_busy" and "\n" not in error["message"]
        again = client.post("/v1/chat/completions", json=_ask("And the retry limit?"))
        assert again.status_code == 200, again.text  # its place was given back
        assert not app.state.in_flight.asks


def test_one_person_cannot_take_every_place(facts):
    from app.services.access import Principal
    from app.services.catalog import share_corpus

    share_corpus("facts", "everyone")

    gate = threading.Event()
    mallory, alice = Principal("mallory"), Principal("alice")
    rt = Runtime()
    rt.use(ScriptedBackend(during=gate.wait))
    app = create_app(rt, lambda request: alice if request.headers.get("x-who") == "alice"
                     else mallory, max_in_flight=4, max_per_person=2)
    with TestClient(app, base_url="http://127.0.0.1:8700") as client:
        hers = [threading.Thread(target=client.post, args=("/v1/chat/completions",),
                                 kwargs={"json": _ask(f"[{i}] What is the code?")},
                                 daemon=True) for i in range(2)]
        for t in hers:
            t.start()
        _until(lambda: len(app.state.in_flight.asks) == 2, "mallory's asks are in flight")
        r = client.post("/v1/chat/completions", json=_ask("[3] What is the code?"))
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_questions"
        assert r.headers["retry-after"].isdigit()
        alices = threading.Thread(target=client.post, args=("/v1/chat/completions",),
                                  kwargs={"json": _ask("And the retry limit?"),
                                          "headers": {"x-who": "alice"}}, daemon=True)
        alices.start()
        _until(lambda: len(app.state.in_flight.asks) == 3, "alice's ask is taken")
        gate.set()
        for t in [*hers, alices]:
            t.join(60)


def test_a_stopping_server_ends_questions_at_once(facts):
    """A stream with an error event and [DONE], a whole answer with a 503, both before the
    model answered (it would hold the server's exit)."""
    gate = threading.Event()
    backend = ScriptedBackend(during=gate.wait)
    app = _app(backend)
    with TestClient(app, base_url="http://127.0.0.1:8700") as client:
        events: list[str] = []

        def read() -> None:
            with client.stream("POST", "/v1/chat/completions", json=_ask(stream=True)) as r:
                events.extend(line.removeprefix("data: ") for line in r.iter_lines() if line)

        whole: list = []
        reader = threading.Thread(target=read, daemon=True)
        asker = threading.Thread(target=lambda: whole.append(client.post(
            "/v1/chat/completions", json=_ask("And the retry limit?"))), daemon=True)
        reader.start()
        asker.start()
        _until(lambda: len(backend.requests) == 2, "the questions reached the model")
        client.portal.call(app.state.in_flight.stop_all)  # what `serve` does on SIGTERM
        reader.join(60)
        asker.join(60)
        ended_before_the_model = not reader.is_alive() and not asker.is_alive()
        gate.set()
        assert ended_before_the_model
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["error"]["code"] == "server_stopping"
        assert whole[0].status_code == 503
        assert whole[0].json()["error"]["code"] == "server_stopping"
        r = client.post("/v1/chat/completions", json=_ask())
        assert r.status_code == 503 and r.json()["error"]["code"] == "server_stopping"
    from app.services.history import history

    assert history("facts") == []


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("where", ["question", "earlier", "model"])
def test_a_lone_surrogate_is_a_one_line_400(facts, stream, where):
    body = {"question": _ask("What is \ud800 the code?"),
            "earlier": _ask(messages=[{"role": "user", "content": "hi \udfff"},
                                      {"role": "user", "content": "What is the code?"}]),
            "model": _ask(model="corpus:\ud800")}[where] | {"stream": stream}
    raw = json.dumps(body).encode()  # ensure_ascii: the surrogate as the escape \ud800
    assert b"\\ud" in raw
    client = TestClient(_app(ScriptedBackend()), base_url="http://127.0.0.1:8700")
    r = client.post("/v1/chat/completions", content=raw,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert "not valid Unicode" in message and "\n" not in message
