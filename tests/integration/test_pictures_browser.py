"""Issue 25's browser target in a real browser (Debian's Chromium, headless, by Playwright)
against `scoutlens ui` talking to a scripted OpenAI-compatible server (tests/fakes.py): an
analyst uploads a PNG network diagram and a screenshot holding a key, asks, and the model
answers with a box over each. The diagram is shown in the source viewer with the box drawn where
the answer put it (the PNG the browser received is checked pixel by pixel, and the screenshot
of the page shows the box's colour) and its OCR words beside it; the screenshot with the key is
not drawn at all, as a PDF page whose secret cannot be hidden is not."""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path

import pytest
from helpers import ui_process
from PIL import Image, ImageDraw, ImageFont

from app.services.grounding import BOX_COLOUR

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KEY = "ghp_" + "Zx9" * 12
BOX = (336, 50, 488, 165)  # [0.42, 0.10, 0.61, 0.33] of an 800 x 500 picture
ANSWER = ('Uplink-7 shows the packet loss [S1] [0.42, 0.10, 0.61, 0.33] "uplink-7". '
          "The key is on the screenshot [S2] [0.05, 0.2, 0.95, 0.7].")

pytestmark = pytest.mark.slow


def _pictures(folder: Path) -> tuple[Path, Path]:
    folder.mkdir()
    font = ImageFont.load_default(size=28)
    diagram = Image.new("RGB", (800, 500), "white")
    pen = ImageDraw.Draw(diagram)
    pen.rectangle(BOX, outline="black", width=2)
    pen.text((360, 90), "uplink-7", fill="black", font=font)
    pen.text((60, 330), "core switch packet loss", fill="black", font=font)
    diagram.save(folder / "network-diagram.png")
    shot = Image.new("RGB", (900, 200), "white")
    ImageDraw.Draw(shot).text((20, 60), f"backup token {KEY}", fill="black", font=font)
    shot.save(folder / "shot.png")
    return folder / "network-diagram.png", folder / "shot.png"


@pytest.fixture
def scripted():
    from fakes import FakeOpenAI, Reply

    server = FakeOpenAI(max_model_len=32768).start()
    server.script(Reply(deltas=(ANSWER,)))
    yield server
    server.close()


@pytest.fixture
def ui_server(tmp_path, scoutlens_home, scripted):
    env = {**os.environ, "SCOUTLENS_HOME": str(scoutlens_home), "SCOUTLENS_BACKEND": "openai",
           "SCOUTLENS_ENDPOINT": scripted.url, "SCOUTLENS_MODEL": "fake-model"}
    with ui_process(tmp_path / "ui.log", env) as (url, _proc):
        yield url


def _box_share(png: bytes, xs: range, ys: range) -> float:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(image.getpixel((x, y)) == BOX_COLOUR for x in xs for y in ys) / (len(xs) * len(ys))


def _near_box_colour(png: bytes) -> int:
    """Magenta pixels of a browser screenshot (the page shows the picture smaller than its
    pixels, blending the box's edges with the white around them)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(1 for r, g, b in image.get_flattened_data() if r > 200 and g < 150 and b > 150)


def test_upload_a_png_ask_and_see_the_box_on_the_picture(tmp_path, ui_server, scripted):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import expect, sync_playwright

    diagram, shot = _pictures(tmp_path / "uploads")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(ui_server)
        page.get_by_label("Name of the new corpus").fill("net")
        page.get_by_label("Name of the new corpus").press("Enter")
        page.locator('input[type="file"]').set_input_files([str(diagram), str(shot)])
        expect(page.get_by_text("shot.png").first).to_be_visible()
        page.get_by_role("button", name="Ingest uploaded files").click()
        expect(page.get_by_text("ingest into net: 2 added")).to_be_visible(timeout=120_000)

        page.get_by_role("link", name="Ask").click()
        chat = page.get_by_placeholder("Ask about net")
        chat.fill("Which uplink shows packet loss?")
        chat.press("Enter")
        answer = page.locator('[data-testid="stChatMessage"]').nth(1)
        expect(answer).to_contain_text("KV cache hit", timeout=120_000)
        source = page.locator('[data-testid="stExpander"]').filter(
            has_text="network-diagram.png").first
        picture = source.locator('img[alt^="network-diagram.png"]')
        expect(picture).to_be_visible()
        expect(source).to_contain_text('box [S1 network-diagram.png] (0.42, 0.10)-(0.61, 0.33)')
        expect(source).to_contain_text("core switch packet loss")  # OCR words beside it
        src = picture.get_attribute("src") or ""
        seen = picture.screenshot()
        keep = os.environ.get("SCOUTLENS_SCREENSHOTS")
        if keep:  # the README's picture of grounding
            source.screenshot(path=str(Path(keep) / "grounding.png"))
        page.locator('[data-testid="stExpander"]').filter(has_text="shot.png").first.click()
        expect(page.get_by_text("picture withheld: it shows a redacted secret")).to_be_visible()
        body = page.content()
        browser.close()
    png = base64.b64decode(re.sub(r"^data:image/png;base64,", "", src))
    assert Image.open(io.BytesIO(png)).size == (800, 500)  # the picture's own pixels
    x1, y1, x2, y2 = BOX
    assert _box_share(png, range(x1 + 4, x2 - 4), range(y1, y1 + 3)) > 0.95  # top edge
    assert _box_share(png, range(x1, x1 + 3), range(y1 + 20, y2 - 4)) > 0.95  # left edge
    assert _box_share(png, range(x1 + 8, x2 - 8), range(y2 - 40, y2 - 8)) == 0  # inside
    assert _near_box_colour(seen) > 400  # and the browser shows it
    assert KEY not in body
    assert not re.search(r'<img[^>]+alt="shot\.png', body)  # the key's picture: not drawn
    (request,) = scripted.completions
    assert "fractions (0 to 1)" not in (request.body or {}).get("messages", [{}])[0].get(
        "content", "")  # a text-only corpus sends no picture: the format is not asked for
