"""A hostile teammate after issue 23's fixes, against the real `scoutlens serve api` and
`scoutlens mcp --transport http` (their own processes and uvicorn) over raw sockets: a local
process that opens connections and never finishes a request's headers (slowloris) does not
hold them all: past PENDING_PER_PEER of one address the oldest is closed, so the server keeps
file descriptors for everyone else and still answers."""

from __future__ import annotations

import socket
from contextlib import contextmanager

import pytest
from loadgen import ApiServer, timed_get

from app.servers.http import PENDING_PER_PEER

pytestmark = pytest.mark.slow
EXTRA = 20


def _half_requests(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(s)
    return socks


def _closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@contextmanager
def _held(port: int, n: int):
    socks = _half_requests(port, n)
    try:
        yield socks
    finally:
        for s in socks:
            s.close()


def test_a_slowloris_client_loses_its_oldest_connections(tmp_path):
    server = ApiServer(tmp_path / "home", "http://127.0.0.1:9/v1").wait_ready()
    try:
        with _held(server.port, PENDING_PER_PEER + EXTRA) as socks:
            assert all(_closed_by_server(s) for s in socks[:EXTRA])
            socks[-1].settimeout(0.5)
            assert not _closed_by_server(socks[-1])  # the newest still waits for its headers
            status = timed_get(server.port, "/v1/models", timeout=30)[0]
            assert status == 200, server.log.read_text()[-3000:]
    finally:
        server.stop()
