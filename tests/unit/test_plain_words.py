"""A question in plain words over a corpus where its ordinary words are everywhere: the named
package is ranked inside, the answering line's segment reaches the context, and "what went in"
says which places were left out and when the ranking was unsure."""

from __future__ import annotations

import pytest
from fakes import ScriptedBackend
from helpers import context_of

from app.services.ingesting import ingest
from app.services.search import search

NOISE = ('"""Connection handling: an idle connection is kept open by default for some seconds,\n'
         'then closed. Keep-alive connections, idle connections, default connections."""\n'
         "def keep(connection, idle=True, default=None):\n"
         "    # keep the idle connection open: default keep-alive handling\n"
         "    return connection.keep_open(idle, default)  # as velocipy does\n")


@pytest.fixture
def corpus(tmp_path) -> str:
    root = tmp_path / "site"
    for i in range(40):
        (root / f"aaa_net{i:02d}").mkdir(parents=True)
        (root / f"aaa_net{i:02d}" / "conn.py").write_text(f"# net {i}\n" + NOISE * 3)
    pkg = root / "velocipy"
    pkg.mkdir()
    (pkg / "config.py").write_text(
        '"""Settings of the server."""\n\n' + "".join(f"# option {i}\n" for i in range(12))
        + "class Config:\n    def __init__(self, host='127.0.0.1', port=8000,\n"
        "                 timeout_keep_alive: int = 5, backlog: int = 2048):\n"
        "        self.timeout_keep_alive = timeout_keep_alive\n"
        + "".join(f"# more settings {i}\n" for i in range(12)))
    (pkg / "server.py").write_text("import velocipy.config\n\ndef serve(config): ...\n")
    ingest([root], "site")
    return "site"


QUESTION = "How long does velocipy keep an idle keep-alive connection open by default?"


def _holds_line(data: dict, path: str, line: int) -> bool:
    for src in data["sources"]:
        if src["path"] == path and "lines" in src:
            a, _, b = str(src["lines"]).partition("-")
            if int(a) <= line <= int(b or a):
                return True
    return False


def test_the_package_a_question_names_is_ranked_inside(corpus):
    ranking = search(corpus, QUESTION, k=10)
    assert ranking.scope == ["velocipy"]
    assert ranking.hits[0].segment.path == "velocipy/config.py"
    assert {"scope", "lines"} <= set(ranking.hits[0].signals)
    before = search(corpus, QUESTION, k=10, signals=("symbol", "path", "bm25"))
    assert "velocipy/config.py" not in [h.segment.path for h in before.hits[:3]]


def test_the_answering_line_reaches_a_small_context_with_its_runner_ups(corpus):
    ctx = context_of(corpus, QUESTION, "retrieval", ScriptedBackend(window=4096), 128)
    data = ctx.to_json()
    assert _holds_line(data, "velocipy/config.py", 17), data["sources"]
    assert data["scope"] == ["velocipy"]
    assert data["runner_ups"] and all(r["path"] != "velocipy/config.py" or r["segment"]
                                      not in {h["segment"] for h in data["hits"]}
                                      for r in data["runner_ups"])
    assert data["lead"] > 0


def test_a_question_that_matches_everything_alike_says_it_may_have_missed(corpus):
    ctx = context_of(corpus, "How are idle connections kept open by default?",
                        "retrieval", ScriptedBackend(window=4096), 128)
    data = ctx.to_json()
    assert data["unsure"] and "may not be in what was read" in data["unsure"]
    assert data["unsure"] in data["notes"]  # ask tells the user, as it tells every note
    assert len(data["runner_ups"]) >= 3
    clear = context_of(corpus, QUESTION, "retrieval", ScriptedBackend(window=4096), 128)
    assert not clear.to_json()["unsure"]


def test_the_ui_shows_the_doubt_the_scope_and_the_runner_ups(corpus):
    """The Ask page's "what went in" (ui.context_view) shows retrieval's doubt as a warning,
    the names it ranked inside, and the places it left out."""
    from streamlit.testing.v1 import AppTest

    ctx = context_of(corpus, "How are idle connections kept open by default in velocipy?",
                        "retrieval", ScriptedBackend(window=4096), 128).to_json()
    # the note names paths, a document's words: a link or image in one shows as written
    ctx["unsure"] = "the answer may not be in what was read (next: ![x](http://e/a.png):L1)"

    def page(context: dict) -> None:
        from ui.context_view import show_context

        show_context(context, "t")

    at = AppTest.from_function(page, args=(ctx,), default_timeout=60).run()
    assert not at.exception, at.exception
    warning = next(w.value for w in at.warning if "may not be in what was read" in w.value)
    assert "!\\[x\\]\\(http" in warning  # escaped: no image forms
    captions = " ".join(c.value for c in at.caption)
    assert "velocipy" in captions and "runner-ups" in captions
    assert len(at.dataframe) >= 2  # the sources, then the runner-ups


def _long_corpus(root) -> str:
    """30 files of two 80-line segments, each holding the question's words on one line among
    lines that do not: whole, few of them fit a small window."""
    for i in range(30):
        lines = [f"value_{i}_{j} = {j}  # unrelated setting\n" for j in range(150)]
        lines[100] = f"retry_budget_{i} = {i}  # how many retries the uploader makes\n"
        (root / f"pkg{i:02d}").mkdir(parents=True)
        (root / f"pkg{i:02d}" / "upload.py").write_text("".join(lines))
    ingest([root], "long")
    return "long"


def test_places_past_the_whole_share_go_in_as_their_best_lines(tmp_path, monkeypatch):
    from app.services import context as context_mod

    corpus = _long_corpus(tmp_path / "long")
    question = "How many retries does the uploader make?"

    def ask(share: float) -> dict:
        monkeypatch.setattr(context_mod, "WHOLE_SHARE", share)
        ctx = context_of(corpus, question, "retrieval", ScriptedBackend(window=16384), 128)
        return ctx, ctx.to_json()

    _, whole = ask(1.0)
    ctx, mixed = ask(0.5)
    fit_whole = [h for h in whole["hits"] if h["lines"][1] - h["lines"][0] + 1 == 70]
    assert len(mixed["hits"]) > len(fit_whole) + 2  # more places fit
    cut = [h for h in mixed["hits"] if h["lines"][1] - h["lines"][0] + 1 < 70]
    assert cut and len(cut) < len(mixed["hits"])  # whole places first, then their best lines
    for hit in cut:
        first, last = hit["lines"]
        # its best lines (a window of 3) and FOCUS_PAD lines either side, of its 70
        assert last - first + 1 == 3 + 2 * context_mod.FOCUS_PAD
        assert first <= 101 <= last  # the line the words are on (1-based)
        file_lines = (tmp_path / "long" / hit["path"]).read_text().splitlines(keepends=True)
        assert "".join(file_lines[first - 1:last]) in ctx.packed  # the file's own lines
        assert any(s["path"] == hit["path"] and s["lines"] == f"{first}-{last}"
                   for s in mixed["sources"])  # cited as what went in
    # places cut to their best lines do not count as read whole: all alike here, so unsure
    assert mixed["unsure"] and "not read whole" in mixed["unsure"]


def test_the_best_place_goes_in_whole_when_it_fits(tmp_path, monkeypatch):
    from app.services import context as context_mod

    corpus = _long_corpus(tmp_path / "long")
    monkeypatch.setattr(context_mod, "WHOLE_SHARE", 0.01)  # the share is spent at once
    hits = context_of(corpus, "How many retries does the uploader make?", "retrieval",
                      ScriptedBackend(window=16384), 128).to_json()["hits"]
    sizes = [h["lines"][1] - h["lines"][0] + 1 for h in hits]
    assert sizes[0] == 70 and len(sizes) > 1 and all(n < 70 for n in sizes[1:]), sizes
