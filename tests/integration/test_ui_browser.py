"""The web UI in a real browser: Debian's Chromium driven headless by Playwright against
`scoutlens ui` running the embedded model. An analyst uploads a PDF, asks a question whose answer
is on page 2, and sees the answer and a citation of that page drawn as an image."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import make_pdf, ui_process

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.slow




@pytest.fixture
def ui_server(tmp_path, model_dir, scoutlens_home):
    env = {**os.environ, "SCOUTLENS_HOME": str(scoutlens_home), "SCOUTLENS_MODEL": str(model_dir)}
    with ui_process(tmp_path / "ui.log", env) as (url, _proc):
        yield url


def test_upload_a_pdf_ask_and_see_the_cited_page(tmp_path, ui_server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import expect, sync_playwright

    pdf = make_pdf(tmp_path / "report.pdf", [
        "Introduction. This report covers the harbour project.",
        "Findings. The bridge inspection date is 14 March 2031.",
        "Appendix. Tables follow."])
    shot = tmp_path / "ask.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(ui_server)
        page.get_by_label("Name of the new corpus").fill("harbour")
        page.get_by_label("Name of the new corpus").press("Enter")
        page.locator('input[type="file"]').set_input_files(str(pdf))
        expect(page.get_by_text("report.pdf").first).to_be_visible()
        page.get_by_role("button", name="Ingest uploaded files").click()
        expect(page.get_by_text("ingest into harbour: 1 added")).to_be_visible()

        page.get_by_role("link", name="Ask").click()
        chat = page.get_by_placeholder("Ask about harbour")
        chat.fill("What is the bridge inspection date?")
        chat.press("Enter")
        answer = page.locator('[data-testid="stChatMessage"]').nth(1)
        expect(answer).to_contain_text("KV cache hit", timeout=240_000)
        text = answer.inner_text()
        assert "14 March 2031" in text or "March 14" in text, text
        cited = page.locator('[data-testid="stExpander"]').filter(has_text="report.pdf p.2")
        expect(cited.first).to_be_visible()
        expect(cited.first.locator("img").first).to_be_visible()  # the page, drawn
        page.screenshot(path=str(shot), full_page=True)
        icon = page.locator("link[rel='shortcut icon']").get_attribute("href") or ""
        browser.close()
    assert shot.stat().st_size > 20_000
    # nothing is fetched from anywhere but the UI's own server (no CDN fonts or favicons)
    elsewhere = [u for u in requested
                 if not u.startswith((ui_server, "data:", "blob:", "ws://127.0.0.1"))]
    assert not elsewhere, elsewhere
    assert not icon.startswith(("http://", "https://")) or icon.startswith(ui_server), icon
    keep = os.environ.get("SCOUTLENS_SCREENSHOTS")
    if keep:
        shutil.copy(shot, Path(keep) / "ask.png")
