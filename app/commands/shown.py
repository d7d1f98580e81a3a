"""Text a document, a file name or a person controls, made safe to print through rich.

rich reads `[...]` in a printed string as markup: a flagged line quoting `[INST] ... [/INST]`
raised MarkupError at the end of a long ingest, and `[link=...]` in a file name would become a
link. Every such value passes through `shown` (or `cell` for a table) before it meets an
f-string that rich prints; the commands' own markup stays outside it.
"""

from __future__ import annotations

import re

from rich.markup import escape

#: C0/C1 controls (ESC starts terminal sequences, CR overwrites the line) and bidi overrides
#: (they reorder what is shown): stored text is data, never terminal instructions
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """Control characters as visible escapes (\\x1b, \\r, \\u202e)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def json_safe(text: str) -> str:
    """JSON escapes what it must (below U+0020); DEL, C1 and bidi controls as \\uXXXX too."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


#: the controls a terminal obeys, less line breaks and tabs (text streamed as it is written)
_TERMINAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def for_terminal(text: str, stream: object) -> str:
    """`text` as written to `stream`: unchanged for a pipe or a file (a pack, an answer, is
    data), its controls visible for a terminal, where a document or a model's answer quoting
    one could clear the screen, set the title, write the clipboard (OSC 52) or forge a link."""
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()):
        return text
    return _TERMINAL.sub(lambda m: repr(m.group())[1:-1], text)


class TerminalSafe:
    """A text stream that writes through `for_terminal` (the packer writes to a stream)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(for_terminal(text, self._stream))

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def shown(text: object) -> str:
    """`text` for a rich f-string: controls visible, markup escaped (printed as written)."""
    return escape(visible(str(text)))


def short(text: str, n: int) -> str:
    """One line of at most `n` characters (runs of white space as one space)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def cell(text: str, n: int | None = None) -> str:
    """One table cell: one line (line breaks and tabs as spaces, every other control escaped:
    a lone CR is shown as \\r, not obeyed), cut to `n` characters, no markup read from it."""
    flat = visible(re.sub(r"(?:\r\n|[\n\t])+", " ", text))
    return escape(short(flat, n) if n else flat)
