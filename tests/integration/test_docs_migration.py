"""Migration 0006 (a segment's locator) on SQLite and PostgreSQL: a database of 0005 with rows
goes to head with its rows kept, and a part's locator is stored and read back."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import inspect, text

from app.database import HEAD_REVISION, MIGRATIONS, get_db, upgrade
from app.services import ingesting, snapshot
from app.settings import get_settings

pytestmark = pytest.mark.usefixtures("db_url")


def _downgrade(engine, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _xlsx() -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.title = "Opex"
    wb.active.append(["Travel", 7291])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_0005_database_goes_to_head_rows_kept_and_locators_stored(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("plain notes\n")
    ingesting.ingest([folder], "docs")
    engine = get_db(get_settings().db_url)
    _downgrade(engine, "0005")
    assert "locator" not in {c["name"] for c in inspect(engine).get_columns("segments")}
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
            == HEAD_REVISION
        assert conn.execute(text("SELECT text, locator FROM segments")).one() \
            == ("plain notes\n", None)
    (folder / "budget.xlsx").write_bytes(_xlsx())
    ingesting.ingest([folder], "docs")
    _, docs = snapshot.load_documents("docs")
    sheet = next(d for d in docs if d.path.endswith("budget.xlsx"))
    assert sheet.kind == "sheet" and sheet.segments[0].locator.startswith("Opex!A1")
    notes = next(d for d in docs if d.path.endswith("notes.txt"))
    assert notes.segments[0].locator == ""
