"""Issue 23, item 2, attacked through the UI in a real browser (Debian's Chromium, headless, by
Playwright) against `scoutlens ui`: an answer cites a PDF page that holds a key, and another
whose key was found by OCR. The first is drawn with the key under a black box (the PNG the
browser received is checked pixel by pixel); the second is not drawn at all."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pymupdf
import pytest
from helpers import ui_process

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
GITHUB = "ghp_" + "Zx9" * 12
ZOOM = 1.5

pytestmark = pytest.mark.slow




def _runbook(folder: Path) -> Path:
    folder.mkdir()
    shot = pymupdf.open()  # page 3 is a scan: the key is pixels only
    shot.new_page().insert_text((72, 100), f"backup token {GITHUB}", fontsize=14)
    pix = shot.load_page(0).get_pixmap()
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "Runbook. Restart the workers nightly.", fontsize=14)
    page = doc.new_page()
    page.insert_text((72, 72), "Appendix. Deploy with:", fontsize=14)
    page.insert_text((72, 100), f"token {GITHUB}", fontsize=14)
    scan = doc.new_page()
    scan.insert_image(scan.rect, pixmap=pix)
    doc.save(folder / "runbook.pdf")
    return folder / "runbook.pdf"


def _answer_citing(pages: list[int]) -> None:
    """A stored answer citing those pages (as ask stores one; no model needed to show it), and
    page 3 flagged as OCR found its key (this machine may have no tesseract)."""
    from sqlalchemy import select

    from app.database import session_scope
    from app.models import Question, Source
    from app.settings import get_settings

    with session_scope(get_settings().db_url) as session:
        source = session.scalar(select(Source).where(Source.path == "runbook.pdf"))
        source.flags = [*(f for f in source.flags if f != "no-text-layer:p3"), "ocr:p3",
                        "secret:p3:github-token"]
        session.add(Question(
            corpus_name="ops", conversation="c-secret", turn=1, question="How to deploy?",
            answer="Use the deploy token [S1] [S2].", mode="full", backend="embedded",
            model="m", sources=[{"id": f"S{i + 1}", "path": "runbook.pdf", "page": p,
                                 "quote": "Deploy", "verified": True}
                                for i, p in enumerate(pages)]))


@pytest.fixture
def ui_server(tmp_path, scoutlens_home):
    env = {**os.environ, "SCOUTLENS_HOME": str(scoutlens_home)}
    with ui_process(tmp_path / "ui.log", env) as (url, _proc):
        yield url


def _dark_share(png: bytes, rect: pymupdf.Rect) -> float:
    pix = pymupdf.Pixmap(png)
    inner = rect * ZOOM + (2, 2, -2, -2)
    xs, ys = range(int(inner.x0), int(inner.x1)), range(int(inner.y0), int(inner.y1))
    dark = sum(sum(pix.pixel(x, y)[:3]) < 150 for x in xs for y in ys)
    return dark / max(1, len(xs) * len(ys))


def test_a_cited_page_shows_its_key_only_as_a_black_box(tmp_path, ui_server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import expect, sync_playwright

    from app.services.ingesting import ingest

    pdf = _runbook(tmp_path / "docs")
    ingest([pdf.parent], "ops")
    _answer_citing([2, 3])
    with pymupdf.open(pdf) as doc:
        (key_rect,) = doc.load_page(1).search_for(GITHUB)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(f"{ui_server}/ask_page?conversation=c-secret")
        picture = page.locator('img[alt^="runbook.pdf, page 2"]')
        expect(picture).to_be_visible(timeout=120_000)
        src = picture.get_attribute("src") or ""
        page.get_by_text("[S2] runbook.pdf p.3").click()
        expect(page.get_by_text("picture withheld: the page holds a redacted secret",
                                exact=False)).to_be_visible(timeout=60_000)
        body = page.content()
        browser.close()
    png = base64.b64decode(re.sub(r"^data:image/png;base64,", "", src))
    assert _dark_share(png, key_rect) > 0.9
    assert GITHUB not in body
    assert len(re.findall(r'<img[^>]+alt="runbook\.pdf, page', body)) == 1  # page 3: no picture
