"""Asking over a recording (made here with PyAV) on the embedded model: the answer cites the
time of the slide that holds the fact. Video ingestion itself: tests/unit/test_video.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_talk

from ingest.ocr import tesseract_available


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> Path:
    return make_talk(tmp_path_factory.mktemp("video"))


def test_ask_over_a_recording_cites_a_time(tmp_path, talk, model_dir):
    from app.services.ask import AskInput, ask
    from engine.embedded import EmbeddedBackend

    folder = tmp_path / "talks"
    folder.mkdir()
    (folder / "talk.mp4").write_bytes(talk.read_bytes())
    backend = EmbeddedBackend(str(model_dir), kv_dir=None)
    r = ask(AskInput(str(folder), "What is the launch date?", max_tokens=24), backend)
    assert r.mode == "full"
    timed = [s for s in r.sources if s.path == "talk.mp4" and s.t]
    assert timed, r.sources
    if tesseract_available():  # the date is only on the slide: OCR is what makes it findable
        assert "14 March" in r.answer or "March 14" in r.answer
        assert timed[0].t == "00:00:20"
