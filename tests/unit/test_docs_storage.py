"""Issue 24's storage: a segment's locator survives the database (migration 0006 on a database
of 0005, rows kept), and a citation of a part is checked the way lines and pages are."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from app.database import MIGRATIONS, upgrade
from app.services.citations import ContextSource, matched_evidence, parse_parts, verify
from ingest.pack import Packer
from ingest.tokenizers import load_tokenizer
from ingest.types import Document, Segment


def _downgrade(engine, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_migration_0006_adds_the_locator_and_keeps_rows(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO corpora (id, name, tokenizer, version_hash, created_at, "
                          "updated_at, owner, visibility) VALUES (1, 'c', 'tok', 'v', "
                          "'2026-01-01', '2026-01-01', 'admin', 'private')"))
        conn.execute(text("INSERT INTO sources (id, corpus_id, path, root, kind, bytes, tokens, "
                          "status, position, flags, meta) VALUES (1, 1, 'a.txt', '/r', 'text', "
                          "3, 1, 'ok', 1, '[]', '{}')"))
        conn.execute(text('INSERT INTO segments (id, source_id, "order", span_kind, start, '
                          '"end", tokens, text) VALUES (1, 1, 0, \'lines\', 1, 1, 1, \'hi\n\')'))
    upgrade(engine, "0006")
    assert "locator" in {c["name"] for c in inspect(engine).get_columns("segments")}
    with engine.begin() as conn:
        assert conn.execute(text("SELECT text, locator FROM segments")).one() == ("hi\n", None)
        conn.execute(text("UPDATE segments SET locator = 'slide 5 (notes)'"))
    _downgrade(engine, "0005")  # and back down, the row kept
    assert "locator" not in {c["name"] for c in inspect(engine).get_columns("segments")}
    with engine.begin() as conn:
        assert conn.execute(text("SELECT text FROM segments")).scalar() == "hi\n"


def _part(sid: str, locator: str, text: str) -> ContextSource:
    return ContextSource(sid, "review.pptx", "part", text, part=locator)


def test_a_part_citation_is_verified_by_its_locator():
    sources = [_part("S1", "slide 4", "Revenue grew 12%.\n"),
               _part("S2", "slide 5 (notes)", "Say the launch slips to May.\n")]
    refs = verify('The launch "slips to May" [S2 slide 5 (notes)].', sources)
    assert len(refs) == 1 and refs[0].verified and refs[0].part == "slide 5 (notes)"
    assert refs[0].label() == "review.pptx slide 5 (notes)"
    assert refs[0].to_json()["part"] == "slide 5 (notes)"
    wrong = verify("It slips [S2 slide 9].", sources)
    assert not wrong[0].verified and "slide 9" in wrong[0].why
    lines = verify("It slips [S2 L4-L6].", sources)
    assert not lines[0].verified and "cite the part" in lines[0].why
    bare = verify("It slips [S2].", sources)
    assert bare[0].verified and bare[0].part == "slide 5 (notes)"
    quote = verify('"Revenue fell by half" [S1 slide 4]', sources)
    assert not quote[0].verified  # the quote is checked in the part, as for lines
    assert parse_parts("[S9 Opex!A1:C5, S3 p.4]") == {"S9": ["Opex!A1:C5"]}


def test_matched_evidence_names_the_part():
    sources = [_part("S1", "Opex!A1:C5", "| Item | Q3 |\n| Travel | 7291 |\n")]
    found = matched_evidence("Travel cost 7291 in Q3.", sources)
    assert found and found[0].part == "Opex!A1:C5" and found[0].lines is None


def test_pack_wraps_each_part_with_its_locator():
    doc = Document("budget.xlsx", "/r", "sheet", None, "s", 10, [
        Segment(0, "| a | b |\n", "part", 1, 1, 3, locator="Opex!A1:B1"),
        Segment(1, "| c | d |\n", "part", 2, 2, 3, locator="Opex!A2:B2")])
    packer = Packer(load_tokenizer("cl100k"), "xml", "c")
    plan = packer.plan([doc])
    assert [b.attrs for b in plan.blocks] == [{"part": "Opex!A1:B1"}, {"part": "Opex!A2:B2"}]
    assert plan.manifest_json()["sources"][1]["part"] == "Opex!A2:B2"
