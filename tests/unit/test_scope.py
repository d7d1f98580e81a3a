"""Which part of a corpus a question names in plain words: packages, modules, distributions,
and the ordinary words that must not narrow anything."""

from __future__ import annotations

from app.services.scope import named_scope, places
from ingest.retrieval import SegmentIndex

ORDINARY = "def handle(request):\n    # serve requests, count requests, retry requests\n"


def _index(extra: list[tuple[str, str]] = ()) -> SegmentIndex:
    rows = [(i, f"pkg{i:02d}/server.py", ORDINARY) for i in range(30)]
    rows += [(100, "uvicorn/config.py", "timeout_keep_alive: int = 5  # uvicorn idle\n"),
             (101, "uvicorn/main.py", "import uvicorn\nuvicorn.run(app)\n"),
             (102, "requests/sessions.py", "class Session:  # requests session\n"),
             (103, "http/client.py", "_MAXHEADERS = 100\n"),
             (104, "email/mime/text.py", "class MIMEText: pass\n"),
             (105, "pandas/compat/numpy/__init__.py", "import numpy\n"),
             (106, "numpy/core/printoptions.py", "threshold = 1000  # numpy\n"),
             (107, "yaml/loader.py", "class Loader: pass  # yaml\n"),
             (108, "pyyaml-6.0.dist-info/top_level.txt", "_yaml\nyaml\n"),
             (109, "huggingface_hub/constants.py", "HF_HUB_OFFLINE = False  # hub\n"),
             *[(200 + i, row[0], row[1]) for i, row in enumerate(extra)]]
    return SegmentIndex.build(rows)


def _files(index: SegmentIndex, scope) -> set[str]:
    return {index.files[i] for i in scope.files}


def test_a_package_named_in_plain_words_scopes_the_question():
    index = _index()
    scope = named_scope("How long does uvicorn keep an idle connection open?", index)
    assert scope.names == ["uvicorn"]
    assert _files(index, scope) == {"uvicorn/config.py", "uvicorn/main.py"}
    assert not named_scope("How long is an idle connection kept open?", index)


def test_an_ordinary_word_used_everywhere_does_not_scope_unless_called_a_name():
    index = _index()
    assert not named_scope("How many requests are retried?", index)
    marked = named_scope("How does the requests library keep a session?", index)
    assert _files(index, marked) == {"requests/sessions.py"}
    assert _files(index, named_scope("What does Requests' session keep?", index)) == \
        {"requests/sessions.py"}


def test_dotted_modules_top_level_packages_distributions_and_several_words():
    index = _index()
    assert _files(index, named_scope("How many headers may http.client read?", index)) == \
        {"http/client.py"}
    # a top-level package stands alone: not the folder of that name inside another one
    assert _files(index, named_scope("When does numpy abbreviate a printed array?", index)) \
        == {"numpy/core/printoptions.py"}
    # a distribution's name, through its top_level.txt (read by the caller)
    text = {"pyyaml-6.0.dist-info/top_level.txt": "_yaml\nyaml\n"}
    scope = named_scope("Which loader does PyYAML use by default?", index, text.get)
    assert _files(index, scope) == {"yaml/loader.py"}
    # two words said together, the one name they make taking their place
    scope = named_scope("Does the Hugging Face hub library go offline?", index)
    assert scope.names == ["Hugging Face hub"]
    assert _files(index, scope) == {"huggingface_hub/constants.py"}


def test_names_in_too_many_places_or_most_of_the_corpus_narrow_nothing():
    extra = [(f"lib{i}/server.py", "x = 1\n") for i in range(4)]
    index = _index(extra)
    assert not named_scope("What does the server module do?", index)  # 34 places
    table = places(["a/b/c.py", "a/d.py", "e/__init__.py"])
    assert set(table.by_name) == {"a", "b", "c", "d", "e"}  # __init__ names nothing
    assert table.by_name["a"] == {"a": [0, 1]} and table.by_name["c"] == {"a/b/c.py": [0]}


def test_whole_parts_capitals_that_say_nothing_and_many_words_before_the_name():
    index = _index([("aiohttp/client.py", "x = 1\n"), ("server/mod.py", "x = 1\n")])
    assert _files(index, named_scope("How does http.client send a request?", index)) == \
        {"http/client.py"}  # not aiohttp/client.py
    assert not named_scope("How does p.client send a request?", index)
    # in capitals or Title Case a capital marks no name: `server` stays an ordinary word
    assert "SERVER" not in named_scope("WHERE IS THE LIMIT ON THE SERVER", index).names
    assert "Server" not in named_scope("How Does The Server Handle The Limit", index).names
    busy = ("my app has a server, a client, a config, core utils, a view, main and data; "
            "how long does uvicorn keep a connection")
    assert "uvicorn" in named_scope(busy, index).names


def test_an_index_without_its_file_table_is_rebuilt(tmp_path):
    index = _index()
    index.save(tmp_path / "idx")
    (tmp_path / "idx" / "files.json").unlink()
    assert SegmentIndex.load(tmp_path / "idx") is None  # the caller rebuilds it, with a note


def test_a_corpus_of_very_many_files_is_not_scoped(monkeypatch):
    import app.services.scope as scope

    index = _index()
    assert named_scope("How long does uvicorn keep a connection?", index)
    monkeypatch.setattr(scope, "MAX_FILES", len(index.files) - 1)
    assert not named_scope("How long does uvicorn keep a connection?", index)
