"""The second look: a candidate by its best few lines; plain words meeting code words."""

from __future__ import annotations

from app.services.codewords import code_words
from app.services.passages import best_window, rank_by_lines
from ingest.retrieval import Stems, query_terms, terms

STEMS = Stems()
SPREAD = "\n".join(["# headers are parsed here"] + ["pass"] * 20 + ["# the response"] * 3
                   + ["pass"] * 20 + ["# refuse bad input"])
TOGETHER = "\n".join(["pass"] * 10 + ["# refuse a response with too many headers",
                                      "_MAXHEADERS = 100"] + ["pass"] * 10)


def _weights(question: str) -> dict[str, float]:
    return {STEMS(t): 1.0 for t in query_terms(question)}


def test_the_segment_whose_few_lines_hold_the_question_together_wins():
    w = _weights("How many headers may a response have before it is refused?")
    assert best_window(TOGETHER, w, STEMS).score > best_window(SPREAD, w, STEMS).score
    ranked = rank_by_lines([(1, SPREAD), (2, TOGETHER), (3, "nothing here")], w, STEMS)
    assert [sid for sid, _ in ranked] == [2, 1]
    assert (ranked[0][1].first, ranked[0][1].last) == (9, 11)  # around lines 11 and 12


def test_a_word_inside_a_longer_identifier_counts_half():
    w = {"header": 1.0}
    assert best_window("_MAXHEADERS = 100", w, STEMS).score == 0.5
    assert best_window("headers = 100", w, STEMS).score == 1.0
    assert best_window("max = 100", w, STEMS).score == 0.0


def test_identifiers_split_into_the_words_a_question_uses():
    t = set(terms("return RedirectResponse(url); c = HTTPConnection(); getValue()"))
    assert {"redirect", "response", "http", "connection", "get", "value",
            "redirectresponse", "httpconnection"} <= t
    assert STEMS("connections") == STEMS("connection") and STEMS("redirects") == "redirect"
    assert STEMS("timeout_keep_alive") == "timeout_keep_alive"  # identifiers kept whole


def test_plain_words_bring_the_code_words_programmers_write_for_them():
    extra = code_words(["largest", "websocket", "message", "environment", "variable"])
    assert {"max", "ws", "msg", "env", "environ", "var"} <= set(extra)
    assert "largest" not in extra and code_words(["zebra"]) == []
