"""One ingest policy whatever the entry point: the CLI, the web UI's folder form and `ask PATH`
store the same corpus for the same folder. With a Llama 4 tokenizer a video's frames carry their
image tokens in all three (the UI and `ask PATH` used to ingest them as text only)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from helpers import make_video
from streamlit.testing.v1 import AppTest

from app.services.snapshot import load_documents
from app.settings import get_settings

UI = Path(__file__).resolve().parents[2] / "ui" / "views" / "corpora_page.py"



def resolve_corpus(target: str, **kw) -> str:
    """The corpus a question's target resolves to (app.services.targets.open_target)."""
    from app.services.targets import open_target

    with open_target(target, **kw) as snap:
        return snap.name

def _llama4_rank_file(path: Path) -> Path:
    """A tiny tiktoken rank file shaped like Llama 4's tokenizer.model (bytes, a few merges)."""
    tokens = [bytes([i]) for i in range(256)] + [b"th", b"he", b"the", b" the", b"in", b"er"]
    path.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n"
                            for r, t in enumerate(tokens)))
    return path


def _stored(name: str) -> dict[str, tuple]:
    spec, docs = load_documents(name)
    return {"spec": spec, **{d.path.rsplit("/", 1)[-1]: (
        d.kind, d.tokens, tuple((s.text, s.extra_tokens) for s in d.segments),
        tuple(sorted(f for f in d.flags if not f.startswith("noise:")))) for d in docs}}


def test_cli_ui_and_ask_path_store_the_same_corpus(tmp_path, monkeypatch, scoutlens_home):
    folder = tmp_path / "talks"
    folder.mkdir()
    make_video(folder / "talk.mp4", ["Quarterly review", "The launch date is 14 March"],
               seconds_each=3)
    (folder / "notes.md").write_text("# Notes\n\nThe launch moved.\nAWS_KEY = \"AKIA"
                                     + "QWERTYUIOPLKJHGF\"\n")
    (folder / "big.log").write_text("x" * 100 + "\n")
    spec = f"llama4:{_llama4_rank_file(tmp_path / 'tokenizer.model')}"
    monkeypatch.setenv("SCOUTLENS_TOKENIZER", spec)
    get_settings.cache_clear()

    cli = subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(folder), "-c", "cli"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "COLUMNS": "200"})
    assert cli.returncode == 0, cli.stderr

    at = AppTest.from_file(str(UI), default_timeout=180).run()
    at.text_input(key="new_corpus_name").set_value("ui").run()
    at.text_input[1].set_value(str(folder)).run()
    next(b for b in at.button if b.label == "Ingest folder").click().run()
    for _ in range(600):
        if at.success or at.error:
            break
        at.run()
    assert not at.error and at.success, [e.value for e in at.error]

    assert resolve_corpus(str(folder), as_path=True) == "talks"

    cli_corpus, ui_corpus, ask_corpus = _stored("cli"), _stored("ui"), _stored("talks")
    assert cli_corpus == ui_corpus == ask_corpus
    kind, _, segments, flags = cli_corpus["talk.mp4"]
    assert kind == "video" and any('image_tokens="' in text for text, _ in segments)  # images
    assert cli_corpus["spec"] == spec
    assert "secret:L4:aws-access-key" in cli_corpus["notes.md"][3]  # redacted everywhere
    assert not any("AKIA" in text for text, _ in cli_corpus["notes.md"][2])
