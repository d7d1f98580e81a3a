"""A hostile teammate after issue 23's fixes, against `scoutlens ui` through Chromium and then
its session's upload URL: each file within the per-file limit (1 MB here) is taken, but
Streamlit holds every upload in memory until its session removes it, so file after file
(300 x 1 MB took the server from 430 to 718 MB) filled the server. A session now holds at most
SESSION_FILES files' worth; past that an upload is a 413 as it arrives."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest

from integration.test_hostile_ui_upload import browser, session_upload, ui_server  # noqa: F401
from ui.uploads import SESSION_FILES

pytestmark = pytest.mark.slow
FILE = 1_000_000  # within the 1 MB limit


def _multipart(data: bytes) -> bytes:
    return (b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--b0undary--\r\n")


def test_a_session_cannot_fill_memory_with_files_within_the_limit(ui_server, browser,  # noqa: F811
                                                                   tmp_path):
    url, _pid = ui_server
    upload_url, headers = session_upload(browser, url, tmp_path)
    base = upload_url.rsplit("/", 1)[0]
    head = {**headers, "Content-Type": "multipart/form-data; boundary=b0undary"}
    codes = [httpx.put(f"{base}/{uuid.uuid4()}", content=_multipart(os.urandom(FILE)),
                       headers=head, timeout=60).status_code for _ in range(SESSION_FILES + 5)]
    assert set(codes) == {204, 413}, codes
    assert codes.index(413) <= SESSION_FILES and all(c == 413 for c in codes[codes.index(413):])
