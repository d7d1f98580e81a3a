"""Which pictures go into a request (issue 25, items 3 and 6): `<picture>` tags go as images the
way `<frame>` tags do; the server's image limit counts frames and pictures together; over it,
the pictures the question points at go (bm25 over their words and neighbouring text) and the
rest as their text; the one choice is both what is counted and what is sent; `ask --dry-run`,
the context's JSON and `pack` report each picture and its cost."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import FakeOpenAI, ScriptedBackend
from helpers import REPO, slide, write_rank_file
from PIL import Image

from engine.images import PLACEHOLDER, SEAM_TOKENS, choose, content_parts, image_cost, spread
from engine.types import CompletionRequest

JPEG = b"\xff\xd8\xff\xe0" + bytes(16)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(16)
CHART = "Revenue 2025: 4.2M"
PICTURES = {"chart.png": CHART, "network.png": "Switch uplink packet loss",
            "floor.png": "Office floor plan"}
QUESTION = "What revenue does the chart show for 2025?"


def _picture(name: str, words: str, cost: int = 437) -> str:
    return (f'<picture size="480x200" image_tokens="{cost}" tiles="1x2" image="{name}">'
            f"{words}</picture>\n")


def _frame(i: int, words: str, cost: int = 727) -> str:
    return (f'<frame t="00:00:{i:02d}.000" image_tokens="{cost}" tiles="2x2" '
            f'image="v/{i}.jpg">{words}</frame>\n')


def _source(i: int, path: str, body: str, where: str = 'part=""') -> str:
    return f'<source id="S{i}" path="{path}" {where}>\n{body}</source>\n\n'


def _files(root: Path, names: list[str], data: bytes = JPEG) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def _urls(parts: list[dict]) -> list[str]:
    return [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]


# --- the engine: tags, limits, the choice ------------------------------------------------------

def test_pictures_go_as_images_after_their_tag_like_frames(tmp_path):
    _files(tmp_path, ["a/1.jpg"])
    _files(tmp_path, ["b/1.png"], PNG)
    text = ("intro\n" + _picture("a/1.jpg", "chart", 437) + _frame(3, "slide", 727)
            .replace("v/3.jpg", "b/1.png") + "end\n")
    parts = content_parts(text, tmp_path)
    assert [p["type"] for p in parts] == ["text", "image_url", "text", "image_url", "text"]
    assert parts[0]["text"].endswith('image="a/1.jpg">') and parts[2]["text"].startswith("chart")
    assert "".join(p["text"] for p in parts if p["type"] == "text") == text  # nothing lost
    jpeg, png = _urls(parts)
    assert jpeg.startswith("data:image/jpeg;base64,") and png.startswith("data:image/png;")
    assert base64.b64decode(jpeg.split(",", 1)[1]) == JPEG
    assert image_cost(text, tmp_path) == (2, 437 + 727 + 2 * SEAM_TOKENS)


def test_the_limit_counts_frames_and_pictures_together(tmp_path):
    names = [f"p/{i}.jpg" for i in range(3)]
    _files(tmp_path, names + [f"v/{i}.jpg" for i in range(3)])
    text = "".join(_picture(n, f"picture {i}") for i, n in enumerate(names))
    text += "".join(_frame(i, f"frame {i}") for i in range(3))
    assert len(_urls(content_parts(text, tmp_path, limit=4))) == 4
    assert image_cost(text, tmp_path, 4)[0] == 4
    assert image_cost(text, tmp_path, 0) == (0, 0) and content_parts(text, tmp_path, 0) is None


def test_a_name_outside_the_folder_or_missing_is_never_read(tmp_path):
    root = tmp_path / "frames"
    _files(root, ["ok/1.jpg"])
    (tmp_path / "secret.jpg").write_bytes(JPEG)
    text = (_picture("../secret.jpg", "x") + _picture("/etc/passwd", "y")
            + _picture("gone/1.jpg", "z") + _picture("ok/1.jpg", "w"))
    assert len(_urls(content_parts(text, root))) == 1
    assert image_cost(text, root, pictures=("../secret.jpg", "ok/1.jpg")) == (1, 438)


def test_a_picture_named_twice_goes_once(tmp_path):
    _files(tmp_path, ["a/1.jpg"])
    text = _source(1, "a.png", _picture("a/1.jpg", "one")) + _source(2, "copy/a.png",
                                                                      _picture("a/1.jpg", "one"))
    assert image_cost(text, tmp_path) == (1, 438)
    assert len(_urls(content_parts(text, tmp_path))) == 1


def _analyst_text(root: Path) -> str:
    """Three picture files and a PDF page whose picture has no words of its own: only its
    caption, on the page around it, says what it shows."""
    _files(root, ["c/1.jpg", "n/1.jpg", "f/1.jpg", "r/2.jpg"])
    return (_source(1, "chart.png", _picture("c/1.jpg", CHART))
            + _source(2, "network.png", _picture("n/1.jpg", PICTURES["network.png"]))
            + _source(3, "floor.png", _picture("f/1.jpg", PICTURES["floor.png"]))
            + _source(4, "board.pdf", "Minutes of the meeting.\n" + _picture("r/2.jpg", "")
                      + "Figure 3: headcount by office, March.\n", 'page="2"'))


def test_over_the_limit_the_question_picks_the_pictures(tmp_path):
    text = _analyst_text(tmp_path)
    sent = {q: [c.name for c in choose(text, tmp_path, q, 1) if c.sent] for q in (
        QUESTION, "Which switch uplink shows packet loss?", "What is the headcount by office?")}
    assert sent == {QUESTION: ["c/1.jpg"], "Which switch uplink shows packet loss?": ["n/1.jpg"],
                    "What is the headcount by office?": ["r/2.jpg"]}  # by its caption
    two = choose(text, tmp_path, QUESTION, 2)
    assert [c.name for c in two if c.sent][0] == "c/1.jpg" and sum(c.sent for c in two) == 2
    assert two[0].rank == 1 and two[0].score > 0
    assert all(c.sent and c.rank is None for c in choose(text, tmp_path, QUESTION, 4))


def test_frames_keep_their_even_spread_unless_the_question_names_one(tmp_path):
    _files(tmp_path, [f"v/{i}.jpg" for i in range(12)])
    words = [f"slide number {i}" for i in range(12)]
    words[5] = "The launch date is 14 March"
    words[6] = "Revenue grew 12 percent"
    text = _source(1, "talk.mp4", "".join(_frame(i, w) for i, w in enumerate(words)),
                   'media="video"')

    def sent(question: str) -> list[int]:
        return [i for i, c in enumerate(choose(text, tmp_path, question, 5)) if c.sent]

    assert spread(12, 5) == [0, 3, 6, 8, 11]
    assert sent("Who gave the talk?") == spread(12, 5)  # the path names every frame alike
    assert sent("What was said?") == spread(12, 5)
    assert sent("How much did revenue grow?") == spread(12, 5)  # frame 6 is in the spread
    # frame 5 is not: it goes, and the spread's last frame makes room (the prefix up to
    # frame 5 stays as every other question sends it)
    assert sent("What is the launch date?") == [0, 3, 5, 6, 8]


def test_the_choice_is_what_is_counted_and_what_is_sent(tmp_path):
    from engine.openai_backend import OpenAIBackend

    text = _analyst_text(tmp_path)
    chosen = tuple(c.name for c in choose(text, tmp_path, QUESTION, 2) if c.sent)
    request = CompletionRequest(prompt=QUESTION, prefix=text, images_root=str(tmp_path),
                                pictures=chosen)
    (tmp_path / "c/1.jpg").write_bytes(JPEG + b"chart")
    server = FakeOpenAI().start()
    try:
        backend = OpenAIBackend(server.url, max_retries=0, max_images=2)
        count = backend.tokenizer().count_request(request)
        backend.stream(request).collect()
        content = server.completions[-1].body["messages"][-1]["content"]
    finally:
        server.close()
    sent = [base64.b64decode(u.split(",", 1)[1]) for u in _urls(content)]
    assert sent == [(tmp_path / n).read_bytes() for n in chosen] and sent[0].endswith(b"chart")
    assert (count.images, count.image_tokens) == (2, 2 * 437)
    # the server tokenized the user turn as the chat template writes it: a placeholder where
    # each picture goes, so its text is split where the request splits it
    turn = server.posts("/tokenize")[-1].body["messages"][-1]["content"]
    assert turn.count(PLACEHOLDER) == 2 and 'image="c/1.jpg"><|image|>' in turn


# --- the service: the context's report, text-only backends, retrieval -----------------------

def _corpus(tmp_path: Path, monkeypatch) -> str:
    """Corpus `d` for a Llama 4 tokenizer (pictures kept): three PNGs read by OCR, a note."""
    from app.services.ingesting import ingest
    from app.settings import get_settings

    spec = f"llama4:{tmp_path / 'tokenizer.model'}"
    write_rank_file(tmp_path / "tokenizer.model")
    monkeypatch.setenv("SCOUTLENS_TOKENIZER", spec)
    get_settings.cache_clear()
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, words in PICTURES.items():
        Image.fromarray(slide(words, 480, 200)).save(folder / name)
    (folder / "notes.md").write_text("Meeting notes: the budget review moves to Friday.\n")
    ingest([folder], "d", tokenizer=spec)
    return spec


def test_the_context_reports_each_picture_and_its_cost(tmp_path, monkeypatch):
    from app.services.ask import AskInput, prepare
    from app.services.snapshot import open_snapshot
    from engine.openai_backend import OpenAIBackend

    _corpus(tmp_path, monkeypatch)
    server = FakeOpenAI(max_model_len=50_000).start()
    try:
        with open_snapshot("d") as snap:
            ctx = prepare(snap, AskInput("d", QUESTION),
                          OpenAIBackend(server.url, max_retries=0, max_images=2)).context
    finally:
        server.close()
    data = ctx.to_json()
    pictures = data["pictures"]
    assert [p["path"] for p in pictures] == ["chart.png", "floor.png", "network.png"]
    chart = pictures[0]
    assert chart["sent"] == "picture" and chart["why"] == "ranked 1 of 3"
    assert chart["label"].startswith("chart.png") and chart["tiles"] == "1x2"
    assert chart["image_tokens"] > 0 and chart["tokens"] == chart["image_tokens"]
    assert sorted(p["sent"] for p in pictures) == ["picture", "picture", "text"]
    over = next(p for p in pictures if p["sent"] == "text")
    assert over["tokens"] == 0 and "over the server's limit of 2" in over["why"]
    # the report, the request and its count agree
    assert sum(p["tokens"] for p in pictures) == data["image_tokens"]
    assert data["images"] == 2 and ctx.request.pictures == tuple(
        p["image"] for p in pictures if p["sent"] == "picture")
    assert json.loads(json.dumps(data))["pictures"] == pictures  # plain JSON for the UI


def test_a_text_only_backend_sends_every_picture_as_its_words(tmp_path, monkeypatch):
    from app.services.ask import AskInput, ask

    _corpus(tmp_path, monkeypatch)
    backend = ScriptedBackend("Revenue was 4.2M [S1].")
    result = ask(AskInput("d", QUESTION), backend)
    assert backend.requests[0].images_root is None and backend.requests[0].pictures is None
    assert "Revenue 2025" in backend.requests[0].prefix  # the OCR words went
    pictures = result.context["pictures"]
    assert len(pictures) == 3 and {p["sent"] for p in pictures} == {"text"}
    assert {p["why"] for p in pictures} == {"text-only backend"}
    assert result.context["images"] == 0


def test_a_question_about_the_chart_retrieves_the_chart(tmp_path, monkeypatch):
    """Item 6: retrieval finds a picture by the words on it (OCR), through the real search and
    the context's retrieval mode."""
    from helpers import context_of

    from app.services.search import search

    _corpus(tmp_path, monkeypatch)
    hits = search("d", QUESTION, k=5).hits
    assert hits and hits[0].segment.path == "chart.png"
    assert search("d", "Which switch uplink shows packet loss?", k=5).hits[0].segment.path \
        == "network.png"
    ctx = context_of("d", QUESTION, "retrieval", ScriptedBackend(), 64)
    assert ctx.mode == "retrieval" and ctx.hits[0].segment.path == "chart.png"
    assert CHART.split(":")[0] in ctx.packed and ctx.pictures[0]["path"] == "chart.png"


def test_a_question_about_a_pdf_chart_finds_its_page_by_ocr_and_caption(tmp_path):
    """Item 6 for a figure inside a PDF: the chart's values are only on its picture, the word
    "chart" only in its caption; pages about revenue in other years do not outrank it."""
    import pymupdf
    from helpers import context_of

    from app.services.ingesting import ingest
    from app.services.search import search

    folder = tmp_path / "docs"
    folder.mkdir()
    doc = pymupdf.open()
    for number, words in enumerate(("Revenue policy: we report revenue yearly.",
                                    "Figure 3 shows the chart by year.",
                                    "Revenue in 2019 was lower; see the appendix.")):
        page = doc.new_page(width=300, height=200)
        page.insert_text((20, 30), words, fontsize=11)
        if number == 1:
            chart = io.BytesIO()
            Image.fromarray(slide(CHART, 640, 360)).save(chart, "PNG")
            page.insert_image(pymupdf.Rect(20, 45, 280, 190), stream=chart.getvalue())
    doc.save(folder / "report.pdf")
    ingest([folder], "r")
    top = search("r", QUESTION, k=3).hits[0].segment
    assert (top.path, top.start) == ("report.pdf", 2) and "4.2M" in top.text
    ctx = context_of("r", QUESTION, "retrieval", ScriptedBackend(), 64)
    assert ctx.hits[0].segment.start == 2 and ctx.pictures[0]["label"] == "report.pdf p.2"
    assert ctx.pictures[0]["why"] == "ingested for a text-only tokenizer: no picture kept"


# --- the CLI: ask --dry-run and pack --------------------------------------------------------

def _cli(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    run_env = {**os.environ, "COLUMNS": "200", "SCOUTLENS_HOME": str(home), **env}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, env=run_env, cwd=REPO, timeout=120)


@pytest.fixture
def fake_server():
    server = FakeOpenAI(max_model_len=50_000).start()
    yield server
    server.close()


def test_dry_run_shows_which_picture_went_how(tmp_path, monkeypatch, scoutlens_home,
                                              fake_server):
    spec = _corpus(tmp_path, monkeypatch)
    env = {"SCOUTLENS_TOKENIZER": spec, "SCOUTLENS_MAX_IMAGES": "1"}
    planned = _cli("ask", "d", QUESTION, "--endpoint", fake_server.url, "--dry-run", "--json",
                   home=scoutlens_home, **env)
    assert planned.returncode == 0, planned.stderr
    data = json.loads(planned.stdout)
    sent = [p for p in data["pictures"] if p["sent"] == "picture"]
    assert [p["path"] for p in sent] == ["chart.png"] and data["images"] == 1
    assert data["image_tokens"] == sent[0]["tokens"]
    shown = _cli("ask", "d", QUESTION, "--endpoint", fake_server.url, "--dry-run",
                 home=scoutlens_home, **env)
    assert shown.returncode == 0, shown.stderr
    lines = [ln for ln in shown.stdout.splitlines() if ln.startswith("picture ")]
    assert len(lines) == 3, shown.stdout
    assert any("chart.png" in ln and "sent as a picture, 1x2 tiles" in ln
               and "ranked 1 of 3" in ln for ln in lines), lines
    assert sum("sent as its text (over the server's limit of 1" in ln for ln in lines) == 2


def test_pack_reports_its_pictures_and_their_image_tokens(tmp_path, monkeypatch,
                                                          scoutlens_home):
    spec = _corpus(tmp_path, monkeypatch)
    manifest = tmp_path / "m.json"
    done = _cli("pack", "d", "-o", str(tmp_path / "d.xml"), "--manifest", str(manifest),
                home=scoutlens_home, SCOUTLENS_TOKENIZER=spec)
    assert done.returncode == 0, done.stderr
    report = json.loads(manifest.read_text())["pictures"]
    packed = (tmp_path / "d.xml").read_text()
    assert report["pictures"] == report["images"] == 3
    assert report["image_tokens"] == sum(
        int(x.split('"')[1]) for x in packed.split("image_tokens=")[1:]) > 0
    assert f"3 pictures: 3 with their image, {report['image_tokens']:,} image tokens" in \
        " ".join(done.stderr.split())
    # the MCP pack tool says the same
    from app.mcp import schemas, tools
    from app.servers.runtime import Runtime

    packed = tools.HANDLERS["pack"](schemas.parse("pack", {"target": ["d"]}), Runtime(), None,
                                    lambda *args: None)
    assert packed["pictures"] == report


def test_pack_for_a_text_target_counts_pictures_without_images(tmp_path):
    from ingest.pack import Packer
    from ingest.tokenizers import load_tokenizer
    from ingest.types import Document, Segment

    text = '<picture size="480x200">Revenue 2025</picture>\n'
    doc = Document("chart.png", "", "image", None, "x", 10,
                   [Segment(0, text, "part", 1, 1, tokens=9, locator="")], tokens=9)
    plan = Packer(load_tokenizer("cl100k")).plan([doc])
    assert plan.pictures() == {"pictures": 1, "images": 0, "image_tokens": 0}
    assert plan.manifest_json()["pictures"]["pictures"] == 1

