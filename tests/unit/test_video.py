"""Video ingestion on videos made here with PyAV: scene sampling, OCR, subtitles, costs, faults.
Asked on the embedded model: tests/integration/test_video.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import TALK_SLIDES, make_talk, make_video

from app.services.citations import ContextSource, verify
from ingest.documents import ProcessOptions, process
from ingest.ocr import tesseract_available
from ingest.types import Candidate, Document, Skipped, timestamp
from ingest.video import (
    VideoOptions,
    image_tokens,
    parse_subtitles,
    read_video,
    tile_grid,
)

ROOT = Path(__file__).resolve().parents[2]


def make_audio(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=16000)
        samples = (np.sin(np.linspace(0, 2000, 16000)) * 0.3).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in s.encode(frame):
            out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> Path:
    return make_talk(tmp_path_factory.mktemp("video"))


def test_llama4_image_token_costs():
    assert image_tokens(1, 1) == 147
    assert image_tokens(4, 4) == 2467  # scout.md: a 4x4 image costs 2,467 tokens
    assert tile_grid(336, 336) == (1, 1)
    assert tile_grid(1280, 720, 16) == (3, 4)  # smallest canvas holding it without shrinking
    assert tile_grid(1280, 720, 4) == (2, 2)  # capped: the canvas that shrinks it least
    assert tile_grid(4000, 300, 16)[0] == 1


def test_scene_changes_are_kept_with_times_text_and_costs(talk):
    result = read_video(talk.read_bytes(), VideoOptions(fps=1), talk)
    times = [round(f.t) for f in result.frames]
    assert times == [0, 10, 20, 30]  # one frame per slide: repeats dropped
    assert result.decoded >= 190 and round(result.duration) == 40
    assert all(f.grid == (2, 2) and f.image_tokens == 727 for f in result.frames)
    if tesseract_available():
        assert [f.text for f in result.frames] == TALK_SLIDES
    else:
        assert any(fl.startswith("no-ocr") for fl in result.flags)
    assert [(c.start, c.text) for c in result.cues] == [(5.0, "Welcome to the review."),
                                                        (21.0, "Note the launch date.")]


def test_fallback_interval_and_frame_cap(tmp_path):
    still = make_video(tmp_path / "still.mp4", ["Nothing changes here"], seconds_each=12)
    r = read_video(still.read_bytes(), VideoOptions(fps=1, fallback_s=4, ocr=False))
    assert [round(f.t) for f in r.frames] == [0, 4, 8]
    capped = read_video(still.read_bytes(), VideoOptions(fps=1, fallback_s=1, max_frames=3,
                                                         ocr=False))
    assert len(capped.frames) == 3 and capped.frames[0].t == 0
    assert any(f.startswith("frame cap") for f in capped.flags)


def test_subtitle_formats():
    vtt = "WEBVTT\n\n00:01.500 --> 00:03.000\nHello <b>there</b>\n\n01:02:03.250 --> " \
          "01:02:04.000\nLate line\n"
    cues = parse_subtitles(vtt)
    assert [(c.start, c.text) for c in cues] == [(1.5, "Hello there"), (3723.25, "Late line")]
    assert timestamp(3723.25) == "01:02:03.250"


def _process(path: Path, **kw) -> Document | Skipped:
    data = path.read_bytes()
    cand = Candidate(path.name, path, str(path.parent), len(data))
    return process(cand, data, ProcessOptions(**kw))


def test_bad_videos_get_a_clear_per_file_status(tmp_path, talk):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "noise.mkv").write_bytes(np.random.default_rng(1).bytes(50_000))
    (tmp_path / "cut.mp4").write_bytes(talk.read_bytes()[:4000])
    audio = make_audio(tmp_path / "voice.mp4")
    for name in ("empty.mp4", "noise.mkv", "cut.mp4"):
        r = _process(tmp_path / name)
        assert isinstance(r, Skipped) and r.status == "error", name
        assert r.reason and "Traceback" not in r.reason
    r = _process(audio)
    assert isinstance(r, Skipped) and "audio-only" in r.reason


def test_pack_shows_words_with_times_and_llama4_counts_images(tmp_path, talk):
    from helpers import write_rank_file

    env_home = {"SCOUTLENS_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    text = subprocess.run([sys.executable, "-m", "app.cli", "pack", str(talk), "-t", "cl100k",
                           "-o", "-"], capture_output=True, text=True, cwd=ROOT, env=env_home)
    assert text.returncode == 0, text.stderr
    assert '<frame t="00:00:20.000">' in text.stdout and 'media="video"' in text.stdout
    assert '<subtitle t="00:00:05.000">Welcome to the review.</subtitle>' in text.stdout
    ranks = tmp_path / "tokenizer.model"
    write_rank_file(ranks)
    manifest = tmp_path / "m.json"
    vision = subprocess.run([sys.executable, "-m", "app.cli", "pack", str(talk), "-t",
                             f"llama4:{ranks}", "-o", str(tmp_path / "v.xml"), "--manifest",
                             str(manifest)], capture_output=True, text=True, cwd=ROOT,
                            env=env_home)
    assert vision.returncode == 0, vision.stderr
    packed = (tmp_path / "v.xml").read_text()
    assert packed.count('image_tokens="727"') == 4
    import json

    body = json.loads(manifest.read_text())["sources"][0]["body_tokens"]
    assert body > 4 * 727  # the frames' image tokens are in the source's cost


def test_video_citations_by_time(talk):
    frames = read_video(talk.read_bytes(), VideoOptions(fps=1), talk)
    from ingest.video import segments

    text = "".join(s.text for s in segments(frames))
    src = [ContextSource("S1", "talk.mp4", "video", text)]
    refs = verify("The launch is on 14 March [S1 @ 0:20]. Also [S1 @ 05:00].", src)
    good = [r for r in refs if r.t == "00:00:20"]
    bad = [r for r in refs if r.t == "00:05:00"]
    assert good and good[0].verified and good[0].label() == "talk.mp4 @ 00:00:20"
    assert bad and not bad[0].verified and "no frame" in bad[0].why


def test_vision_requests_carry_each_frame_as_an_image_part(tmp_path, talk):
    import base64

    from fakes import FakeOpenAI

    from engine.images import content_parts
    from engine.openai_backend import OpenAIBackend
    from engine.types import CompletionRequest

    frames_dir = tmp_path / "frames"
    doc = _process(talk, vision=True, frames_dir=frames_dir)
    assert isinstance(doc, Document)
    text = doc.text
    jpgs = sorted(frames_dir.glob("*/*.jpg"))
    assert len(jpgs) == 4 and all(p.read_bytes()[:2] == b"\xff\xd8" for p in jpgs)
    assert text.count('image="') == 4 and 'tiles="2x2"' in text
    hostile = text + '<frame t="00:09:00.000" image="../../../etc/passwd">x</frame>\n'
    parts = content_parts(hostile, frames_dir)
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 4  # the traversal name is left as text, never read
    first = base64.b64decode(images[0]["image_url"]["url"].split(",", 1)[1])
    assert first[:2] == b"\xff\xd8"
    # the picture sits right after its tag, before the frame's words
    tag_part = parts[parts.index(images[0]) - 1]["text"]
    assert tag_part.rstrip().endswith('image="' + text.split('image="')[1].split('"')[0] + '">')

    server = FakeOpenAI().start()
    try:
        backend = OpenAIBackend(server.url, max_retries=0)
        backend.stream(CompletionRequest(prompt="What is on the slides?", prefix=text,
                                         images_root=str(frames_dir))).collect()
        content = server.completions[-1].body["messages"][-1]["content"]
        assert isinstance(content, list)
        assert [p["type"] for p in content].count("image_url") == 4
        assert content[-1]["text"].endswith("What is on the slides?")
        text_only = OpenAIBackend(server.url, max_retries=0)
        text_only.stream(CompletionRequest(prompt="q", prefix=text)).collect()
        assert isinstance(server.completions[-1].body["messages"][-1]["content"], str)
    finally:
        server.close()


def test_huge_media_is_refused_by_size_before_it_is_read():
    from ingest.filters import FilterOptions, NoiseFilter

    noise = NoiseFilter(FilterOptions(max_file_bytes=1000, max_media_bytes=5000))
    assert noise.by_path("talk.mp4", 4000) is None  # over the text limit, fine for a video
    assert noise.by_path("talk.mp4", 6000).startswith("too-large")
    assert noise.by_path("scan.pdf", 6000).startswith("too-large")
    assert NoiseFilter().by_path("film.mkv", 3 * 1024**3).startswith("too-large")


def test_ask_counts_the_pictures_a_vision_request_carries(tmp_path, talk, monkeypatch,
                                                         scoutlens_home):
    """A video corpus whose words fit the window but whose pictures do not is not sent whole:
    the request is counted with each frame's image tokens (as the server bills them), so ask
    takes the frames that fit, and the request sent stays within the window."""
    import re

    from fakes import FakeOpenAI
    from helpers import write_rank_file

    from app.services.ask import AskInput, ask
    from app.services.ingesting import ingest
    from app.settings import get_settings
    from engine.openai_backend import OpenAIBackend

    spec = f"llama4:{tmp_path / 'tokenizer.model'}"
    write_rank_file(tmp_path / "tokenizer.model")
    monkeypatch.setenv("SCOUTLENS_TOKENIZER", spec)
    get_settings.cache_clear()
    folder = tmp_path / "talks"
    folder.mkdir()
    (folder / "talk.mp4").write_bytes(talk.read_bytes())
    ingest([folder], "talks", tokenizer=spec)
    window = 2_600
    server = FakeOpenAI(max_model_len=window).start()
    try:
        r = ask(AskInput("talks", "What is the launch date?", max_tokens=64),
                OpenAIBackend(server.url, max_retries=0))
        content = server.completions[-1].body["messages"][-1]["content"]
    finally:
        server.close()
    assert isinstance(content, list)  # pictures were sent, as image parts
    sent = [p for p in content if p["type"] == "image_url"]
    tags = "".join(p["text"] for p in content if p["type"] == "text")
    costs = [int(c) for c in re.findall(r'<frame\b[^>]*image_tokens="(\d+)"[^>]*image="', tags)]
    assert 0 < len(sent) == len(costs) < 4  # four frames are in the corpus: not all fit
    words = len(tags.split())  # the fake server counts a word a token
    assert words + sum(costs) + len(costs) + 64 <= window
    assert r.mode == "retrieval"


def test_a_request_count_includes_its_pictures(tmp_path, talk):
    from fakes import FakeOpenAI

    from engine.openai_backend import OpenAIBackend
    from engine.types import CompletionRequest, PromptTooLong

    frames_dir = tmp_path / "frames"
    text = _process(talk, vision=True, frames_dir=frames_dir).text
    request = CompletionRequest(prompt="q", prefix=text, images_root=str(frames_dir))
    server = FakeOpenAI(max_model_len=100_000).start()
    try:
        for exact in (True, False):  # the server's /tokenize, then a local estimate
            # the tile cost; the server counts the text split where the images go, an
            # estimate adds a seam token for it
            per_image = image_tokens(2, 2) + (0 if exact else 1)
            server.tokenize = exact
            tok = OpenAIBackend(server.url, max_retries=0).tokenizer()
            with_images = tok.count_request(request)
            without = tok.count_request(CompletionRequest(prompt="q", prefix=text))
            assert (with_images.images, with_images.image_tokens) == (4, 4 * per_image)
            assert with_images.tokens == without.tokens + 4 * per_image
            assert tok.exact is exact and with_images.exact is exact
    finally:
        server.close()
    message = str(PromptTooLong(with_images, 2_000, 64))
    assert f"{with_images.tokens:,} prompt tokens ({4 * per_image:,} of them for 4 images)" \
        in message
