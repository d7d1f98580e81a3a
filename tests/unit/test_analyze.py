"""`analyze`: a briefing, an extraction and a comparison over a whole corpus, read part by part
when it does not fit one call, every citation checked, resumable, refused in one line when
asked wrongly. The model is scripted here (its answers are the pipeline's input, so what is
tested is the pipeline: coverage, citations, resume); the embedded model runs it in
tests/integration/test_analyze_model.py."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from fakes import ScriptedBackend
from helpers import make_contracts
from openpyxl import load_workbook

from app.services.access import CorpusNotFound, Principal
from app.services.analysis import store
from app.services.analysis.export import write
from app.services.analysis.run import analyze
from app.services.analysis.types import AnalyzeInput, BadAnalysis
from app.services.ingesting import ingest
from common.errors import UserError
from engine.types import Completion, Stream, Usage

SOURCE = re.compile(r'<source id="(S\d+)" path="([^"]+)"')


class Fitting(ScriptedBackend):
    """Refuses a request that does not fit its window with its answer, as a server does."""

    def stream(self, request):
        need = self.tokenizer().count_request(request).tokens + request.max_tokens
        assert need <= self.window, f"{need} > {self.window}"
        return super().stream(request)


class Briefer(Fitting):
    """Notes citing every source it was shown, one guide line each; a merge keeps them."""

    def stream(self, request):
        ids = SOURCE.findall(request.prefix + request.prompt)
        if ids:
            self.reply = "\n".join(f"[{sid}] {path}: a supply contract. Ask: who pays?"
                                   for sid, path in ids)
        else:  # a reduce: the notes' citations, kept
            self.reply = "Themes: supply. " + " ".join(
                dict.fromkeys(re.findall(r"\[S\d+\]", request.prompt)))
        return super().stream(request)


class Extractor(Fitting):
    """Answers each row from the text it was shown, as a perfect model would."""

    def __init__(self, lie: bool = False, **kw):
        super().__init__(**kw)
        self.lie = lie

    def stream(self, request):
        rows = []
        for sid, path in SOURCE.findall(request.prefix + request.prompt):
            n = int(path[1:3])
            party = f"Globex {n}" if self.lie and n == 3 else f"Acme {n} Ltd"
            rows.append(json.dumps({"source": sid,
                                    "party": {"value": party, "cite": f"{sid} L2"},
                                    "amount": {"value": f"{1000 + n} EUR", "cite": f"[{sid}]"},
                                    "signed by": None}))
        self.reply = "\n".join(rows) + "\nnot json {"
        return super().stream(request)


def test_a_corpus_over_the_window_is_read_whole_in_parts_then_merged(tmp_path):
    make_contracts(tmp_path, n=24, filler=40)
    backend = Briefer(window=6000)
    result = analyze(AnalyzeInput("contracts", "brief", max_tokens=128), backend)
    data = result.to_json()
    assert data["coverage"] == 1.0 and data["sources_read"] == data["sources"] == 24
    maps = [r for r in backend.requests if SOURCE.search(r.prompt)]
    assert len(maps) > 1 and result.levels >= 1 and result.calls == len(backend.requests)
    # every map call shares one instruction prefix: a prefix cache serves it once
    assert len({r.prefix for r in maps}) == 1 and "briefing" in maps[0].prefix
    # each source was in exactly one part, under one global id
    shown = [sid for r in maps for sid, _ in SOURCE.findall(r.prompt)]
    assert len(shown) == len(set(shown)) == 24
    for r in maps:  # a part's manifest lists its sources by the ids their wrappers carry
        manifest = r.prompt[r.prompt.index("<manifest"):r.prompt.index("</manifest>")]
        assert re.findall(r"^(S\d+) ", manifest, re.M) == [s for s, _ in SOURCE.findall(r.prompt)]
    assert len(result.guide) == 24 and all("supply contract" in g for g in result.guide.values())
    assert result.citations and all(c.verified for c in result.citations)
    stored = store.analysis(result.analysis_id)
    assert stored.status == "done" and stored.result["coverage"] == 1.0


def test_a_corpus_that_fits_is_one_call_over_the_prefix_ask_and_prewarm_send(tmp_path):
    from helpers import context_of

    make_contracts(tmp_path, n=3, filler=2)
    backend = Briefer(window=100_000)
    result = analyze(AnalyzeInput("contracts", "brief", max_tokens=128), backend)
    assert result.calls == 1 and result.levels == 0 and result.to_json()["coverage"] == 1.0
    warm = context_of("contracts", "", "full", backend, 128).request  # what prewarm sends
    assert backend.requests[0].prefix == warm.prefix and backend.requests[0].system == warm.system
    assert len(result.guide) == 3 and all(c.verified for c in result.citations)


def test_extraction_is_one_row_per_source_each_cell_checked(tmp_path):
    make_contracts(tmp_path, n=8, filler=5)
    asked = AnalyzeInput("contracts", "extract", ("party", "amount", "signed by: who signed"),
                         max_tokens=512)
    rows = analyze(asked, Extractor(window=3000)).rows
    assert [r["source"] for r in rows] == [f"c{i:02}.txt" for i in range(8)]
    cells = [c for r in rows for c in r["cells"].values()]
    assert all(c["verified"] for c in cells if c["found"])
    assert all(not r["cells"]["signed by"]["found"] for r in rows)  # null: empty, marked
    assert rows[5]["cells"]["party"]["value"] == "Acme 5 Ltd"
    lied = analyze(asked, Extractor(lie=True, window=3000)).rows[3]["cells"]["party"]
    assert lied["value"] == "Globex 3" and not lied["verified"]
    assert "does not hold" in lied["why"]


def test_a_model_citing_what_was_not_shown_or_answering_nonsense_invents_nothing(tmp_path):
    make_contracts(tmp_path, n=3, filler=2)
    asked = AnalyzeInput("contracts", "extract", ("party",))
    junk = ScriptedBackend(reply='{"source": "S99", "party": {"value": "X", "cite": "S99"}}\n'
                                 '{"source": "S1", "party": {"value": "Acme 0 Ltd", "cite": '
                                 '"S2 L2"}}\n{broken')
    rows = analyze(asked, junk).rows
    assert rows[0]["cells"]["party"]["found"] and not rows[0]["cells"]["party"]["verified"]
    assert not rows[1]["cells"]["party"]["found"] and not rows[2]["cells"]["party"]["found"]
    brief = analyze(AnalyzeInput("contracts", "brief"),
                    ScriptedBackend(reply="All is well [S42]."))
    assert brief.citations and not brief.citations[0].verified


def test_an_interrupted_analysis_resumes_from_the_calls_it_finished(tmp_path):
    make_contracts(tmp_path, n=24, filler=40)
    asked = AnalyzeInput("contracts", "brief", max_tokens=128)

    class Dies(Briefer):
        def __init__(self, after, **kw):
            super().__init__(**kw)
            self.after = after

        def stream(self, request):
            if len(self.requests) >= self.after:
                self.requests.append(request)
                return Stream(iter(()), lambda: Completion(
                    "", Usage(), finish_reason="incomplete", error="connection reset"))
            return super().stream(request)

    with pytest.raises(UserError, match=r"keeps its finished calls: --resume \w+ goes on"):
        analyze(asked, Dies(3, window=6000, concurrent=False))
    [interrupted] = store.analyses("contracts")
    assert interrupted.status == "interrupted" and "connection reset" in interrupted.error
    again = Briefer(window=6000)
    result = analyze(asked, again, resume=interrupted.analysis_id)
    assert result.analysis_id == interrupted.analysis_id and result.resumed == 3
    assert result.calls == len(again.requests) and result.to_json()["coverage"] == 1.0
    with pytest.raises(UserError, match="something else"):
        analyze(AnalyzeInput("contracts", "brief", max_tokens=64), again,
                resume=interrupted.analysis_id)


def test_map_calls_run_together_on_a_server_and_in_turn_in_process(tmp_path):
    make_contracts(tmp_path, n=24, filler=40)
    class Slow(Briefer):
        """Counts the calls in flight at once."""

        def __init__(self, **kw):
            super().__init__(**kw)
            self.lock, self.now, self.most = threading.Lock(), 0, 0

        def stream(self, request):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(0.05)
            with self.lock:
                self.now -= 1
            return super().stream(request)

    for concurrent in (True, False):
        backend = Slow(window=6000, concurrent=concurrent)
        analyze(AnalyzeInput("contracts", "brief", max_tokens=128), backend)
        assert (backend.most > 1) == concurrent, (concurrent, backend.most)


def test_compare_gives_the_exact_changes_on_both_sides_then_explains(tmp_path):
    src = tmp_path / "policy"
    src.mkdir()
    (src / "v1.md").write_text("# Policy\nRefunds within 30 days.\nShipping is free.\nEnd\n")
    (src / "v2.md").write_text("# Policy\nRefunds within 14 days.\nShipping is free.\n"
                               "Returns need a receipt.\nEnd\n")
    (src / "same.md").write_text("# Policy\nRefunds within 30 days.\nShipping is free.\nEnd\n")
    ingest([src], "policy")
    backend = ScriptedBackend(reply="Refunds shortened [S1]; a receipt is now needed [S2].")
    result = analyze(AnalyzeInput("policy", "compare", left="v1.md", right="v2.md"), backend)
    ops = [(c["op"], c["left"]["lines"], c["right"]["lines"]) for c in result.changes]
    assert ops == [("changed", [2, 2], [2, 2]), ("added", [4, 3], [4, 4])]
    assert result.changes[0]["before"] == "Refunds within 30 days."
    assert "LEFT policy:v1.md lines 2-2" in backend.requests[0].prompt
    assert all(c.verified for c in result.citations) and len(result.citations) == 2
    same = analyze(AnalyzeInput("policy", "compare", left="v1.md", right="same.md"), backend)
    assert same.changes == [] and "no changes" in same.text
    with pytest.raises(BadAnalysis, match="two different sources"):
        AnalyzeInput("policy", "compare", left="v1.md", right="v1.md")
    with pytest.raises(UserError, match="no source 'nope.md'"):
        analyze(AnalyzeInput("policy", "compare", left="v1.md", right="nope.md"), backend)


def test_compare_of_two_corpora_names_added_removed_and_changed_files(tmp_path):
    for name, files in (("old", {"a.md": "one\ntwo\n", "gone.md": "bye\n"}),
                        ("new", {"a.md": "one\n2\n", "fresh.md": "hi\n"})):
        (tmp_path / name).mkdir()
        for f, text in files.items():
            (tmp_path / name / f).write_text(text)
        ingest([tmp_path / name], name)
    result = analyze(AnalyzeInput("old", "compare", other="new"), ScriptedBackend(reply="ok"))
    assert [(c["op"], c["path"]) for c in result.changes] == [
        ("changed", "a.md"), ("added file", "fresh.md"), ("removed file", "gone.md")]


def test_bad_requests_are_one_line_and_store_nothing(tmp_path):
    with pytest.raises(BadAnalysis, match="at most 40"):
        AnalyzeInput("c", "extract", tuple(f"f{i}" for i in range(500)))
    with pytest.raises(BadAnalysis, match="needs the fields"):
        AnalyzeInput("c", "extract")
    with pytest.raises(BadAnalysis, match="unknown analysis"):
        AnalyzeInput("c", "summarise")  # type: ignore[arg-type]
    with pytest.raises(BadAnalysis, match="named twice"):
        AnalyzeInput("c", "extract", ("party", "Party: who"))
    with pytest.raises(CorpusNotFound):
        analyze(AnalyzeInput("nope", "brief"), ScriptedBackend())
    make_contracts(tmp_path, n=2, filler=1)
    bob = Principal.of("bob")
    with pytest.raises(CorpusNotFound):  # not Bob's, and not shared with him
        analyze(AnalyzeInput("contracts", "brief"), ScriptedBackend(), who=bob)
    assert store.analyses() == []
    import pymupdf as fitz

    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.md").write_text("Refunds within 30 days.\n")
    pdf = fitz.open()
    pdf.new_page().insert_text((72, 72), "Refunds within 14 days.")
    pdf.save(tmp_path / "mixed" / "b.pdf")
    ingest([tmp_path / "mixed"], "mixed")
    with pytest.raises(UserError, match="b.pdf is read in pages"):
        analyze(AnalyzeInput("mixed", "compare", left="a.md", right="b.pdf"), ScriptedBackend())
    assert store.analyses() == []


def test_exports_write_the_table_and_never_a_formula(tmp_path):
    make_contracts(tmp_path, n=3, filler=1)

    class Formula(Extractor):
        def stream(self, request):
            stream = super().stream(request)
            self.reply = self.reply.replace('"Acme 1 Ltd"', '"=HYPERLINK(1)"')
            return stream

    result = analyze(AnalyzeInput("contracts", "extract", ("party", "amount")),
                     Formula()).to_json()
    write(result, tmp_path / "rows.csv")
    write(result, tmp_path / "rows.xlsx")
    write(result, tmp_path / "rows.json")
    write(result, tmp_path / "rows.md")
    csv_text = (tmp_path / "rows.csv").read_text()
    assert csv_text.splitlines()[0] == "source,party,amount,unchecked"
    assert "Acme 0 Ltd,1000 EUR," in csv_text
    sheet = load_workbook(tmp_path / "rows.xlsx").active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0] == ["source", "party", "amount", "unchecked"]
    assert all(not str(v).startswith("=") for row in values for v in row if v)
    assert json.loads((tmp_path / "rows.json").read_text())["rows"] == result["rows"]
    assert "| c00.txt | Acme 0 Ltd | 1000 EUR |" in (tmp_path / "rows.md").read_text()
    with pytest.raises(UserError, match="write .json"):
        write(result, tmp_path / "rows.txt")


def test_merges_leave_room_for_their_answer_with_long_notes(tmp_path):
    """Notes as long as a call's answer may be, merged under a window that holds few of them:
    every merge request fits with its answer (a server would refuse it otherwise)."""
    make_contracts(tmp_path, n=24, filler=40)

    class Wordy(Briefer):
        def stream(self, request):
            stream = super().stream(request)
            self.reply = (self.reply + " Detail.") * 3
            return stream

    result = analyze(AnalyzeInput("contracts", "brief", max_tokens=900), Wordy(window=6000))
    assert result.levels >= 1 and result.to_json()["coverage"] == 1.0


def test_an_answer_cut_off_or_unreadable_is_not_read_as_the_document_saying_nothing(tmp_path):
    make_contracts(tmp_path, n=4, filler=1)
    asked = AnalyzeInput("contracts", "extract", ("party",), max_tokens=64)
    cut = analyze(asked, Extractor(finish="length", window=20_000))
    assert any("stopped at --max-tokens" in n for n in cut.notes)
    junk = analyze(asked, ScriptedBackend(reply="I cannot do tables. {broken"))
    whys = {r["cells"]["party"]["why"] for r in junk.rows}
    assert whys == {"the model's answer for this part had no readable rows"}


def test_a_value_cited_as_a_whole_source_must_be_a_word_of_it(tmp_path):
    make_contracts(tmp_path, n=1, filler=1)
    reply = '{"source": "S1", "party": {"value": "e", "cite": "S1"}}'
    [row] = analyze(AnalyzeInput("contracts", "extract", ("party",)),
                    ScriptedBackend(reply=reply)).rows
    assert row["cells"]["party"]["found"] and not row["cells"]["party"]["verified"]


def test_a_long_change_says_what_the_model_did_not_read(tmp_path):
    src = tmp_path / "big"
    src.mkdir()
    (src / "a.md").write_text("".join(f"line {i}\n" for i in range(5)))
    (src / "b.md").write_text("".join(f"line {i}\n" for i in range(5))
                              + "".join(f"new {i}\n" for i in range(300)))
    ingest([src], "big")
    result = analyze(AnalyzeInput("big", "compare", left="a.md", right="b.md"),
                     ScriptedBackend(reply="Much was added [S1]."))
    data = result.to_json()
    assert data["coverage"] < 1 and "of its 300 lines" in data["cut"][0]["why"]
    assert result.changes[0]["after"].count("\n") == 299  # the exact change stays whole


def test_bad_table_names_schemas_and_outputs_are_refused_before_any_model_call(tmp_path,
                                                                               monkeypatch):
    from typer.testing import CliRunner

    from app.cli import app
    from app.services.analysis.types import schema_fields

    with pytest.raises(BadAnalysis, match="may not be called 'source'"):
        AnalyzeInput("c", "extract", ("Source", "party"))
    with pytest.raises(BadAnalysis, match="nested too deeply"):
        schema_fields("[" * 200_000)
    make_contracts(tmp_path, n=1, filler=1)
    loads = []
    monkeypatch.setattr("app.services.backends.make_backend",
                        lambda *a, **k: loads.append(a) or ScriptedBackend())
    for out, says in (("rows.csv", "a table is an extraction's"), ("x.txt", "write .json"),
                      ("nope/x.json", "does not exist"), (".", "write .json")):
        done = CliRunner().invoke(app, ["analyze", "contracts", "brief", "--out",
                                        str(tmp_path / out)])
        assert done.exit_code != 0 and says in str(done.exception), (out, done.exception)
    assert loads == [] and store.analyses() == []


def test_a_workbook_takes_control_characters_and_formula_headers_as_text(tmp_path):
    make_contracts(tmp_path, n=2, filler=1)
    reply = ('{"source": "S1", "=1+1": {"value": "Acme\\u001b[31m 0", "cite": "S1 L2"}}')
    result = analyze(AnalyzeInput("contracts", "extract", ("=1+1",)),
                     ScriptedBackend(reply=reply)).to_json()
    write(result, tmp_path / "t.xlsx")
    sheet = load_workbook(tmp_path / "t.xlsx").active
    assert sheet["B1"].value == "'=1+1" and sheet["B1"].data_type == "s"


def test_a_stopped_analysis_does_not_wait_for_the_calls_in_flight(tmp_path):
    """Stopped (Ctrl-C; here the progress callback raises) while calls hang on a server: it
    stops at once, begins no call after, and is left resumable."""
    make_contracts(tmp_path)
    release = threading.Event()

    class Hangs(Briefer):
        def stream(self, request):
            if len(self.requests) >= 1:  # every call after the first waits on the server
                self.requests.append(request)
                release.wait(30)
                return super().stream(request)
            return super().stream(request)

    class Stop(BaseException):
        pass

    def progress(stage, done, total, detail):
        if done:
            raise Stop

    backend = Hangs(window=6000)
    try:
        with pytest.raises(Stop):
            analyze(AnalyzeInput("contracts", "brief", max_tokens=128), backend,
                    progress=progress)
        assert not release.is_set()  # returned while calls were still in flight
        begun = len(backend.requests)
        assert begun <= 1 + 8  # the first, and at most one wave in flight
    finally:
        release.set()
        for t in threading.enumerate():  # the abandoned calls end before this test's database
            if t.name == "scoutlens-analyze":
                t.join(30)
    [stopped] = store.analyses("contracts")
    assert stopped.status == "interrupted"


def test_a_source_larger_than_a_call_is_read_whole_in_pieces_that_keep_their_place(tmp_path):
    """A line of 40,000 characters and a long file: cut at lines, and a line mid-text,
    until each piece fits one call; every source read, each piece's citation checks out."""
    src = tmp_path / "big"
    src.mkdir()
    from app.services.ingest_options import ingest_options

    (src / "one-line.txt").write_text("a word and another " * 2_200 + "\n")
    (src / "long.md").write_text("".join(f"Line {i} of a long note.\n" for i in range(3_000)))
    ingest([src], "big", options=ingest_options(["generated"]))  # keep the minified-looking one
    backend = Briefer(window=6000)
    result = analyze(AnalyzeInput("big", "brief", max_tokens=128), backend)
    data = result.to_json()
    assert data["coverage"] == 1.0 and data["cut"] == [] and data["sources_read"] == 2
    shown = [p for r in backend.requests for _, p in SOURCE.findall(r.prefix + r.prompt)]
    assert shown.count("one-line.txt") > 1 and shown.count("long.md") > 1
    assert result.citations and all(c.verified for c in result.citations)
