"""Citation parsing and verification, and matched evidence when nothing valid is cited."""

from __future__ import annotations

from app.services.citations import ContextSource, matched_evidence, parse_citations, verify

CODE = "\n".join(f"line {i}" for i in range(1, 41)) + "\nRETRY_LIMIT = 7\n"
SOURCES = [
    ContextSource("S1", "src/config.py", "code", CODE, 1, 41),
    ContextSource("S2", "report.pdf", "pdf", "Revenue grew 12% in 2025.", page=3),
    ContextSource("S2", "report.pdf", "pdf", "The auditor was Smith & Co.", page=4),
    ContextSource("S3", "README.md", "text", "The vault code is 7291.\nDeploy to eu-west-3.\n",
                  1, 2),
]


def test_parse_forms():
    found = parse_citations('See [S1], [S3 L1-L2], [S12:40-62], [S2 p.4] and [S1, S3]. '
                            '"The vault code is 7291." [S3]')
    ids = [(sid, a, b, page) for sid, a, b, page, _ in found]
    assert ids == [("S1", None, None, None), ("S3", 1, 2, None), ("S12", 40, 62, None),
                   ("S2", None, None, 4), ("S1", None, None, None), ("S3", None, None, None),
                   ("S3", None, None, None)]
    assert found[-1][4] == "The vault code is 7291."


def test_verification_checks_ids_locations_and_quotes():
    answer = ('The limit is 7 [S1 L41-L41]. "The vault code is 7291." [S3] '
              'Revenue grew [S2 p.3]. Made up [S9]. Wrong lines [S3 L5-L9]. '
              '"The vault code is 1234." [S3] Missing page [S2 p.7].')
    refs = verify(answer, SOURCES)
    by = [(r.id, r.verified, r.label()) for r in refs]
    assert by[0] == ("S1", True, "src/config.py:L41-L41")
    assert by[1] == ("S3", True, "README.md:L1-L2")
    assert by[2] == ("S2", True, "report.pdf p.3")
    assert by[3][:2] == ("S9", False) and refs[3].why == "no such source in context"
    assert by[4][:2] == ("S3", False) and "outside" in refs[4].why
    assert by[5][:2] == ("S3", False) and "quoted text" in refs[5].why
    assert by[6][:2] == ("S2", False) and "page 7" in refs[6].why
    assert all(r.kind == "cited" for r in refs)


def test_matched_evidence_finds_the_distinctive_span():
    ev = matched_evidence("The code for the vault is 7291", SOURCES)
    assert ev and ev[0].id == "S3" and ev[0].kind == "matched"
    assert "7291" in ev[0].quote
    assert ev[0].lines == "1-2"
    assert matched_evidence("", SOURCES) == []
    assert matched_evidence("zebra quantum", SOURCES) == []  # nothing shared: no evidence
