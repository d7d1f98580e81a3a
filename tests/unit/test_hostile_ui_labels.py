"""A source's path and a citation's reason are shown in Streamlit labels and captions, which
render Markdown: links, images (fetched by the reader's browser), `$math$`, `:icons:`. A name a
document controls must read as written. Rendered here with markdown-it (CommonMark, as the
browser's renderer reads backslash escapes)."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from ui.render import md_plain
from ui.sources_panel import _badge, _label

HOSTILE = ["![t](https://evil.example/p.png?who=me).md", "[click](https://evil.example).md",
           "<img src=x onerror=alert(1)>.md", "$\\href{x}{y}$ *b* __u__ `c` ~~s~~ :material/home:",
           "a\nb\r\n# heading"]


def _html(text: str) -> str:
    return MarkdownIt("commonmark").render(text)


@pytest.mark.parametrize("path", HOSTILE)
def test_a_source_label_reads_as_written(path):
    label = _label({"id": "S1", "path": path, "lines": "1-2"})
    out = _html(label)
    for tag in ("<img", "<a ", "<em>", "<strong>", "<code>", "<h1>"):
        assert tag not in out, (label, out)
    assert "\n" not in label
    # the text a reader sees: the path, whitespace folded to one line
    assert " ".join(path.split()) in " ".join(_plain(out).split())


def _plain(rendered: str) -> str:
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


def test_an_unverified_reason_is_plain_text():
    out = _html(_badge({"verified": False, "why": "quote ![x](https://evil.example/p.png)"}))
    assert "<img" not in out and "<a " not in out


def test_plain_text_is_left_readable():
    assert _plain(_html(md_plain("src/app.py:L1-L9"))) == "src/app.py:L1-L9"
