"""Issue 23, item 5: the upload limit saved in Settings is the server's own cap, so an upload
over it is refused while it arrives and never held in the server's memory. `scoutlens ui` runs
for real; Debian's Chromium (Playwright) opens a session and uploads a small file as a user
does; then a real HTTP client sends 300 MB to the same upload endpoint of that session, with an
honest Content-Length, chunked, and behind a Content-Length that lies. The page also gives the
browser the limit, so a user's large file is refused before it is sent."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from helpers import ui_process

from ui import prefs as prefs_store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MB = 2**20
BIG = 300 * MB  # what the issue sent over a 1 MB limit

pytestmark = pytest.mark.slow




def rss(pid: int) -> int:
    """Resident memory of the server process, bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def ui_server(tmp_path, scoutlens_home):
    """`scoutlens ui` (loopback) whose Settings say 1 MB per file; yields (url, pid)."""
    prefs_store.save(prefs_store.Prefs(upload_mb=1))
    env = {**os.environ, "SCOUTLENS_HOME": str(scoutlens_home)}
    with ui_process(tmp_path / "ui.log", env, wait_s=90) as (url, proc):
        yield url, proc.pid


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def session_upload(browser, url: str, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """Upload a small file through the Corpora page as a user does; returns the upload URL
    the browser used and the headers (XSRF token and cookie) a client of that session sends."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(url)
    small = tmp_path / "small.txt"
    small.write_text("a small note\n" * 100)
    with page.expect_request(lambda r: "/_stcore/upload_file/" in r.url
                             and r.method == "PUT") as req:
        page.locator("input[type=file]").first.set_input_files(str(small))
    request = req.value
    assert request.response().status == 204
    browser_refuses_a_large_file(page, tmp_path)
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in context.cookies())
    headers = {"Cookie": cookies}
    if token := request.headers.get("x-xsrftoken"):
        headers["X-Xsrftoken"] = token
    return request.url, headers


def browser_refuses_a_large_file(page, tmp_path: Path) -> None:
    """The page tells the browser the limit: a 2 MB file is refused there, never sent."""
    big = tmp_path / "two-mb.bin"
    big.write_bytes(b"\0" * (2 * MB))
    sent = []
    page.on("request", lambda r: sent.append(r.url) if "/upload_file/" in r.url else None)
    page.locator("input[type=file]").first.set_input_files(str(big))
    page.get_by_text("or smaller").first.wait_for()
    assert not sent, sent


def body(size: int, boundary: str = "b0undary"):
    """A multipart body carrying one file of SIZE bytes, made as it is sent."""
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
           f"filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    chunk = b"\0" * MB
    for _ in range(size // MB):
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def put(url: str, headers: dict[str, str], size: int, chunked: bool) -> int | str:
    """PUT a SIZE-byte file; the status, or how the server cut the connection."""
    head = {**headers, "Content-Type": "multipart/form-data; boundary=b0undary"}
    if not chunked:
        head["Content-Length"] = str(sum(len(p) for p in body(size)))
    try:
        return httpx.put(url, content=body(size), headers=head, timeout=60).status_code
    except httpx.HTTPError as exc:
        return f"cut: {type(exc).__name__}"


def put_lying(url: str, headers: dict[str, str], size: int) -> bytes:
    """Declare a 1 kB body and send SIZE bytes after it (a raw socket: no client library
    sends a body longer than it declares); returns what the server answered."""
    u = urlparse(url)
    lines = [f"PUT {u.path} HTTP/1.1", f"Host: {u.netloc}", "Content-Length: 1024",
             "Content-Type: multipart/form-data; boundary=b0undary",
             *(f"{k}: {v}" for k, v in headers.items())]
    answer = b""
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            for part in body(size):
                s.sendall(part)
        except OSError:
            pass  # the server closed the connection: it took no more
        s.settimeout(5)
        with contextlib.suppress(OSError):
            answer = s.recv(200)
    return answer


def test_an_upload_over_the_saved_limit_is_refused_as_it_arrives(ui_server, browser, tmp_path):
    url, pid = ui_server
    upload_url, headers = session_upload(browser, url, tmp_path)
    forged = upload_url.rsplit("/", 1)[0] + "/forged-file-id"
    # the session and its headers are good: a file within the limit is taken
    assert put(forged, headers, MB // 2, chunked=False) == 204
    start = rss(pid)
    honest = put(forged, headers, BIG, chunked=False)
    chunked = put(forged, headers, BIG, chunked=True)
    lying = put_lying(forged, headers, BIG)
    grown = rss(pid) - start
    assert honest == 413, honest
    assert chunked == 413 or str(chunked).startswith("cut"), chunked
    assert not lying.startswith(b"HTTP/1.1 204"), lying
    assert grown < 64 * MB, f"the server grew by {grown / MB:.0f} MB"
