"""`scoutlens serve api` against the official `openai` client: the corpora as models, a streamed
answer with usage and citations, a follow-up served from the embedded model's KV cache, and an
unknown corpus as the 404 the client raises."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest
from helpers import REPO, db_cli, make_facts_repo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def api(tmp_path, model_dir):
    home = tmp_path / "home"
    proc = db_cli("ingest", "facts", str(make_facts_repo(tmp_path / "facts")), home=home)
    assert proc.returncode == 0, proc.stderr
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOUTLENS_")}
    env |= {"SCOUTLENS_HOME": str(home), "SCOUTLENS_MODEL": str(model_dir)}
    with open(tmp_path / "api.log", "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "api", "--port",
                                   str(port)], cwd=REPO, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{base}/models", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, (tmp_path / "api.log").read_text()
                time.sleep(0.1)
        yield openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=300)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_openai_client_asks_a_corpus(api):
    assert [m.id for m in api.models.list()] == ["corpus:facts"]

    stream = api.chat.completions.create(
        model="corpus:facts", messages=[{"role": "user", "content": "What is the vault code?"}],
        stream=True, stream_options={"include_usage": True}, max_tokens=48)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and text.strip()
    citations = finals[0].choices[0].delta.model_extra["citations"]
    assert any(c["path"].endswith("NOTES.md") for c in citations), citations
    assert "NOTES.md" in text  # the sources are in the message as well
    usage = chunks[-1].usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    again = api.chat.completions.create(
        model="corpus:facts", max_tokens=16,
        messages=[{"role": "user", "content": "Which file sets RETRY_LIMIT?"}])
    assert again.choices[0].message.content
    assert again.usage.prompt_tokens_details.cached_tokens > 0  # the corpus prefix's KV
    assert isinstance(again.choices[0].message.model_extra["citations"], list)
    assert again.model_extra["scoutlens"]["mode"] == "full"

    with pytest.raises(openai.NotFoundError) as missing:
        api.chat.completions.create(model="corpus:nope",
                                    messages=[{"role": "user", "content": "hi"}])
    assert "no such corpus 'nope'" in missing.value.message
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(model="corpus:facts", messages=[])
