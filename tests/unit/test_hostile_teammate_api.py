"""A hostile teammate after issue 23's fixes, against `serve api`'s app over Starlette's
TestClient (the real server: tests/integration/test_hostile_serve.py): a body nested
thousands deep is a one-line 400, never a 500 with a traceback; a Host header that only
starts like loopback is refused on a loopback server (DNS rebinding)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from app.servers.api import create_app
from app.servers.runtime import Runtime

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client():
    with TestClient(create_app(Runtime(), lambda request: None),
                    base_url="http://127.0.0.1:8700", raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"model": "corpus:x", "messages": [{"role": "user", "content": "q"}], "x": '
    + b"[" * 990 + b"]" * 990 + b"}",
], ids=["deep", "just-under-the-parser"])
def test_a_deeply_nested_body_is_a_one_line_400(client, body):
    answer = client.post("/v1/chat/completions", content=body, headers=JSON)
    assert answer.status_code == 400, answer.text
    assert "nests" in answer.json()["error"]["message"]


@pytest.mark.parametrize("host", ["[::1]:80@evil.example", "127.0.0.1:x", "localhost:80:80"])
def test_a_host_that_only_starts_like_loopback_is_refused(client, host):
    answer = client.get("/v1/models", headers={"Host": host})
    assert answer.status_code == 421, answer.text


def test_loopback_hosts_still_answer(client):
    for host in ("127.0.0.1:8700", "localhost", "[::1]:8700"):
        assert client.get("/v1/models", headers={"Host": host}).status_code == 200


def test_a_client_gone_before_its_body_arrived_is_no_server_error():
    """A client that sends half a body and leaves: a 400 for nobody, never an ASGI traceback."""
    import anyio

    app = create_app(Runtime(), lambda request: None)
    sent: list[dict] = []
    parts = iter([{"type": "http.request", "body": b'{"model"', "more_body": True},
                  {"type": "http.disconnect"}])

    async def receive() -> dict:
        return next(parts)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
             "query_string": b"", "client": ("127.0.0.1", 5), "server": ("127.0.0.1", 8700),
             "scheme": "http", "http_version": "1.1", "root_path": ""}
    anyio.run(app, scope, receive, send)
    assert sent[0]["status"] == 400
