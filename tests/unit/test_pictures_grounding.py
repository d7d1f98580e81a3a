"""Grounding (issue 25, item 4): the boxes and points a model writes over a picture are found in
its answer whatever convention it used, put on the picture they belong to, drawn on that picture
as the user sees it (its own pixels, EXIF orientation applied), printed by `ask` with the
picture's citation, and a picture whose words held a secret is not drawn."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from app.services.grounding import (
    BOX_COLOUR,
    MAX_MARKS,
    Grounded,
    PictureRef,
    find_marks,
    ground,
)
from app.services.viewing import SourcePart, SourceView

DIAGRAM = PictureRef("S3", "network-diagram.png", 800, 500)
SCAN = PictureRef("S1", "invoices-scan.tiff p.2", 1000, 2000)
EXPECTED = (0.42, 0.10, 0.61, 0.33)


def _boxes(answer: str, pictures=(DIAGRAM, SCAN)) -> list[tuple]:
    return [(g.picture.id, g.kind, tuple(round(v, 3) for v in g.box), g.label)
            for g in ground(answer, list(pictures))]


@pytest.mark.parametrize("answer", [
    'Uplink-7 drops packets [S3] [0.42, 0.10, 0.61, 0.33] "uplink-7".',  # the format asked for
    'See [S3]:\n```json\n[{"bbox_2d": [336, 50, 488, 165], "label": "uplink-7"}]\n```',  # pixels
    '[S3] {"box_2d": [100, 420, 330, 610], "label": "uplink-7"}',  # Gemini: y first, 0-1000
    "[S3 network-diagram.png] uplink-7: (42%, 10%, 61%, 33%)",
    'The box (0.42, 0.10)-(0.61, 0.33) "uplink-7" is on [S3 network-diagram.png].',
    'In [S3] the bounding box of "uplink-7" is [0.61, 0.33, 0.42, 0.10].',  # corners swapped
])
def test_each_convention_a_model_writes_lands_on_the_same_box(answer):
    ((source, kind, box, label),) = _boxes(answer)
    assert (source, kind, box) == ("S3", "box", EXPECTED)
    assert label in ("uplink-7", "")


def test_a_point_is_a_box_of_no_size_and_per_mille_is_read_when_pixels_do_not_fit():
    assert _boxes("In [S1] the total is at point (0.5, 0.25).") == [
        ("S1", "point", (0.5, 0.25, 0.5, 0.25), "")]
    # 1500 > the 1000-px width: not pixels; but within 0-1000? no: dropped, nothing invented
    assert _boxes("[S1] box [100, 200, 1500, 900]") == []
    assert _boxes("[S3] box [100, 200, 900, 950]") == [("S3", "box", (0.1, 0.2, 0.9, 0.95), "")]


def test_numbers_that_are_not_coordinates_draw_nothing():
    assert _boxes("Revenue for (2021, 2022, 2023, 2024) rose; see (1, 2, 3, 4) [S3].") == []
    assert _boxes("Lines [S3] L10-L20 and (3, 4) say so.", [DIAGRAM]) == []
    assert find_marks("") == []


def test_a_mark_goes_to_the_picture_it_names_else_the_only_one():
    assert _boxes("box [0.1, 0.1, 0.2, 0.2]", [DIAGRAM])[0][0] == "S3"
    assert _boxes("box [0.1, 0.1, 0.2, 0.2]") == []  # two pictures, none named: not guessed
    assert _boxes("[S9] box [0.1, 0.1, 0.2, 0.2]") == []  # a source that is no picture


def test_hostile_answers_are_only_read_never_run(tmp_path):
    marker = tmp_path / "ran"
    run = f"__import__('os').system('touch {marker}')"
    answer = ('[S3] {"bbox": "' + run + '", "label": "x"} '
              '{"bbox": [1e309, 0, 1, 1]} {"point": [true, false]}')
    assert _boxes(answer) == []
    assert not marker.exists()
    flood = "[S3] box " + " ".join("[0.1, 0.1, 0.2, 0.2]" for _ in range(5000))
    assert len(ground(flood, [DIAGRAM])) == MAX_MARKS


def test_the_cli_line_names_the_picture_as_it_is_cited():
    (mark,) = ground('[S3] [0.42, 0.10, 0.61, 0.33] "uplink-7"', [DIAGRAM])
    assert mark.line() == 'box [S3 network-diagram.png] (0.42, 0.10)-(0.61, 0.33): "uplink-7"'
    assert mark.pixels(800, 500) == (336, 50, 488, 165)
    (point,) = ground("[S1] at point (0.5, 0.25)", [SCAN])
    assert point.line() == "point [S1 invoices-scan.tiff p.2] (0.50, 0.25)"


# --- drawn on the picture as the user sees it ---------------------------------------------------


def _png(size=(800, 500)) -> bytes:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle((336, 50, 488, 165), outline="black", width=2)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _colour_share(png: bytes, xs: range, ys: range) -> float:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    hits = sum(image.getpixel((x, y)) == BOX_COLOUR for x in xs for y in ys)
    return hits / (len(xs) * len(ys))


def test_the_box_is_drawn_where_it_says_on_the_original_pixels():
    from ui.render import picture_png

    mark = Grounded(DIAGRAM, "box", EXPECTED, "")
    png = picture_png(_png(), 1, (mark,))
    assert Image.open(io.BytesIO(png)).size == (800, 500)
    assert _colour_share(png, range(340, 480), range(50, 52)) > 0.95  # the top edge
    assert _colour_share(png, range(336, 338), range(60, 160)) > 0.95  # the left edge
    assert _colour_share(png, range(360, 460), range(80, 140)) == 0  # inside: the picture
    assert _colour_share(picture_png(_png(), 1, ()), range(0, 800, 7), range(0, 500, 7)) == 0


def test_a_rotated_photo_is_drawn_upright_as_ingest_read_it():
    """A phone photo stored sideways with EXIF orientation 6: ingest reads it upright (500 x
    800) and the model was told that size; the drawing is upright too."""
    from ui.render import picture_image

    raw = Image.new("RGB", (800, 500), "white")
    exif = raw.getexif()
    exif[0x0112] = 6
    out = io.BytesIO()
    raw.save(out, "JPEG", exif=exif)
    assert picture_image(out.getvalue()).size == (500, 800)


def test_a_tiff_page_is_drawn_from_its_own_page():
    from ui.render import picture_image

    pages = [Image.new("RGB", (300, 200), "white"), Image.new("RGB", (200, 400), "black")]
    out = io.BytesIO()
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:])
    assert picture_image(out.getvalue(), 2).size == (200, 400)
    with pytest.raises(ValueError, match="no page 3"):
        picture_image(out.getvalue(), 3)


# --- withheld as pages with secrets are -----------------------------------------------------------


def _view(text: str, flags=(), kind="image") -> tuple[SourceView, SourcePart]:
    part = SourcePart("part", 1, 1, text, "")
    return SourceView("c", "shot.png", kind, None, [part], tuple(flags)), part


def test_a_picture_whose_words_held_a_secret_is_withheld():
    view, part = _view('<picture size="900x200">token [REDACTED:github-token]</picture>\n',
                       ["secret:[file]:github-token"])
    assert "secret" in view.picture_withheld(part)
    kept, part = _view('<picture size="900x200">token ghp_x</picture>\n',  # --keep secrets
                       ["secret:[file]:github-token"])
    assert "secret" in kept.picture_withheld(part)
    unread, part = _view('<picture size="900x200"></picture>\n', ["no-ocr"])
    assert "not OCRed" in unread.picture_withheld(part)
    clean, part = _view('<picture size="900x200">uplink-7</picture>\n')
    assert clean.picture_withheld(part) is None
    assert clean.picture_part({"id": "S1", "part": "part 1"}) is part


# --- through the corpus: the viewer's refs and `ask` on the command line --------------------------


@pytest.fixture
def diagram_corpus(tmp_path, scoutlens_home):
    from app.services.ingest_options import ingest_options
    from app.services.ingesting import ingest

    folder = tmp_path / "net"
    folder.mkdir()
    (folder / "network-diagram.png").write_bytes(_png())
    (folder / "notes.md").write_text("# Notes\n\nThe core switch has eight uplinks.\n")
    ingest([folder], "net", options=ingest_options(ocr=False))
    return folder


def test_the_answers_picture_sources_carry_the_size_the_model_was_told(diagram_corpus):
    from app.services.grounding import answer_marks, picture_refs

    sources = [{"id": "S1", "path": "network-diagram.png", "part": "part 1"},
               {"id": "S2", "path": "notes.md", "lines": "1-3"},
               {"id": "S3", "path": "gone.png", "part": "part 1"}]
    assert picture_refs("net", sources) == [PictureRef("S1", "network-diagram.png", 800, 500)]
    (mark,) = answer_marks("net", '[S1] box [0.42, 0.10, 0.61, 0.33] "uplink-7" [S2]', sources)
    assert mark.picture.id == "S1" and mark.label == "uplink-7"


def test_ask_prints_each_box_with_the_pictures_citation(diagram_corpus):
    from fakes import FakeOpenAI, Reply
    from typer.testing import CliRunner

    from app.cli import app

    answer = 'Uplink-7 [S1] box [0.42, 0.10, 0.61, 0.33] "uplink-7".'
    server = FakeOpenAI().start()
    try:
        runs = []
        for extra in ([], ["--json"]):
            server.script(Reply(deltas=(answer,)))
            runs.append(CliRunner().invoke(app, ["ask", "net", "which uplink?", "-b", "openai",
                                                 "-e", server.url, "-m", "fake-model", *extra]))
    finally:
        server.close()
    text, as_json = runs
    assert text.exit_code == 0, text.output
    assert 'box [S1 network-diagram.png] (0.42, 0.10)-(0.61, 0.33): "uplink-7"' in text.stdout
    grounding = json.loads(as_json.stdout)["grounding"]
    assert grounding == [{"source": "S1", "citation": "network-diagram.png", "kind": "box",
                          "box": [0.42, 0.1, 0.61, 0.33], "label": "uplink-7"}]


def test_the_grounding_format_is_asked_for_only_when_pictures_go_in():
    from app.services.prompting import GROUNDING, SYSTEM, corpus_request

    with_picture = '<picture size="8x5" image_tokens="9" tiles="1x1" image="a/1.jpg">x</picture>'
    assert corpus_request(with_picture, "q").system == SYSTEM + GROUNDING
    assert corpus_request('<picture size="8x5">x</picture>', "q").system == SYSTEM
    assert corpus_request("plain text", "q").system == SYSTEM
    assert Path(__file__).name.startswith("test_pictures_")


def test_a_box_on_a_pdf_figure_page_lands_on_the_drawn_page(monkeypatch):
    """A figure page went to the model as the whole page drawn: its picture tag's size is the
    page's, the citation names the page, and the box is drawn on the page as the viewer shows
    it (pdf_page_png), whatever the zoom."""
    from app.services import grounding
    from ui.render import marked_png

    page = SourcePart("page", 2, 2, 'Figure 3.\n<picture size="612x792">2025 41.7</picture>\n')
    view = SourceView("c", "report.pdf", "pdf", None,
                      [SourcePart("page", 1, 1, "Intro"), page])
    monkeypatch.setattr(grounding, "source_view", lambda corpus, path, who=None: view)
    (mark,) = grounding.answer_marks("c", "[S2] box [0.5, 0.5, 0.75, 0.75]",
                                     [{"id": "S2", "path": "report.pdf", "page": 2}])
    assert mark.picture == PictureRef("S2", "report.pdf p.2", 612, 792)
    drawn = io.BytesIO()
    Image.new("RGB", (918, 1188), "white").save(drawn, "PNG")  # the page at zoom 1.5
    png = marked_png(drawn.getvalue(), (mark,))
    assert _colour_share(png, range(470, 680), range(594, 596)) > 0.95
    assert marked_png(drawn.getvalue(), ()) == drawn.getvalue()


def test_uploads_keep_pictures_and_the_viewer_falls_back_to_the_kept_jpeg(tmp_path,
                                                                        scoutlens_home):
    """An uploaded PNG and TIFF are saved for ingest as any file is; a picture whose original
    is gone (inside an archive) is drawn from the JPEG kept for the vision model."""
    from app.settings import get_settings
    from ui import sources_panel
    from ui.uploads import save_batch

    class Upload:
        def __init__(self, name: str, data: bytes):
            self.name, self.size, self._data = name, len(data), data

        def getvalue(self) -> bytes:
            return self._data

    paths, refused = save_batch("net", [Upload("network-diagram.png", _png()),
                                        Upload("scan.tiff", b"II*\x00" + b"\x00" * 60)], 5)
    assert [p.name for p in paths] == ["network-diagram.png", "scan.tiff"] and not refused
    assert paths[0].read_bytes() == _png()
    kept = get_settings().frames_dir / "0123456789abcdef" / "1.jpg"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"jpeg")
    tag = '<picture size="800x500" image_tokens="9" tiles="1x1" image="0123456789abcdef/1.jpg">'
    view, part = _view(tag + "x</picture>\n")
    assert sources_panel._picture_file(view, part) == (kept, 1)
    hostile, part = _view(tag.replace("0123456789abcdef/1.jpg", "../../etc/passwd") + "</picture>")
    assert sources_panel._picture_file(hostile, part) is None
