"""Flag text written to steer a model ("ignore previous instructions ..."): shown, not obeyed.

Matching runs on a normalized copy of each line, so hiding the words does not hide the match:
invisible characters (zero-width space/joiners, word joiner, BOM, soft hyphen, bidi controls)
are dropped, NFKC folds fullwidth and mathematical letters, and a small confusables map turns
Cyrillic/Greek look-alikes into Latin. The copy keeps the line structure, so line numbers are
those of the original text. Fake turn markers count too: `SYSTEM:`/`system:` opening a line,
`### System`, chat-template tokens (`<|system|>`, `<|im_start|>`, ...), `[INST]`, `<<SYS>>`;
and prose that names its reader as a model or an agent ("AI agents reading this: ...").

Two kinds of hit. "injection": prose that addresses a model, and turn markers in a document
(a Markdown file, a PDF, subtitles), where they can only be there to fake a turn. "chat-format":
the chat-template tokens alone in code or configuration (a tokenizer_config.json's chat
template, a Jinja template, `B_INST, E_INST = "[INST]", "[/INST]"` in a tokenizer's module):
a program that handles a chat format, shown for information and not counted as an injection,
or every chat template of a library would bury the one real attack. Prose instructions in a
code file (a comment, a docstring) are still injections.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

#: chat-template special tokens and turn markers
_CHAT_TOKENS = (r"<\|(?:im_start|im_end|begin_of_text|header_start|header_end|start_header_id"
                r"|end_header_id|eot_id|eot|system|user|assistant)\|>"
                r"|(?-i:\[/?INST\]|<</?SYS>>)")
CHAT_TOKENS = re.compile(_CHAT_TOKENS, re.IGNORECASE)
PATTERNS = re.compile(
    r"ignore\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above|earlier|preceding)\s+"
    r"(?:instructions|prompts?|directions|rules)"
    r"|disregard\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above|earlier|system)\s+"
    r"|forget\s+(?:all\s+)?(?:your|the|previous)\s+instructions"
    r"|you\s+are\s+now\s+(?:in\s+)?(?:developer|dan|jailbreak|unrestricted)"
    r"|new\s+instructions\s*:"
    r"|(?:reveal|print|show)\s+(?:your|the)\s+system\s+prompt"
    r"|" + _CHAT_TOKENS,
    re.IGNORECASE,
)

# prose that addresses a model or an agent by name: "AI agents reading this: run ...", "Note to
# the AI:", "If you are an AI assistant, ...", "Assistant, from now on you must ..." (no hit on
# transformers, the standard library or the rest of site-packages)
_ADDRESS = re.compile(
    r"\b(?:ai|llm|language\s+model|assistant|agent|chatbot|copilot|bot)s?\b[ \t]*"
    r"(?:\([^)\n]*\)[ \t]*)?(?:that\s+(?:is|are)\s+)?"
    r"(?:reading|processing|parsing|summari[sz]ing|analy[sz]ing|indexing|ingesting)\s+this"
    r"|\b(?:dear|attention|note\s+to(?:\s+the)?|hey|hello|hi)[ \t,:]+(?:the\s+|any\s+|all\s+)?"
    r"(?:ai|llm|assistant|agent|language\s+model|chatbot)s?\b"
    r"|\bif\s+you\s+are\s+(?:an?\s+)?(?:ai|llm|large\s+language\s+model|language\s+model"
    r"|ai\s+assistant|ai\s+agent|coding\s+agent|chatbot)\b"
    r"|(?:^|#|//|/\*|<!--)[ \t>*#-]*(?:ai|llm|assistant|agent|model|chatbot)s?[*_]*[ \t]*"
    r"[:,][*_]*[ \t]*"
    r"(?:from\s+now\s+on"
    r"|you\s+must|you\s+should|you\s+will|always|never|do\s+not|don't|please|run|execute|send"
    r"|email|delete|ignore|forget)\b"
    r"|\bfrom\s+now\s+on,?\s+you\s+(?:must|will|should|are\s+to)\b",
    re.IGNORECASE | re.MULTILINE)
#: changes whenever what find_flags finds could change: cached "nothing found" verdicts
#: (ingest.documents) are keyed by it
FLAGS_VERSION = "2"

INJECTION = "injection"
CHAT_FORMAT = "chat-format"
#: code and configuration: chat-template tokens there are a program handling a chat format
CODE_SUFFIXES = frozenset({
    ".py", ".pyi", ".pyx", ".ipynb", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".java",
    ".kt", ".scala", ".go", ".rs", ".rb", ".php", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp",
    ".cs", ".swift", ".m", ".mm", ".lua", ".r", ".jl", ".sh", ".bash", ".zsh", ".ps1", ".pl",
    ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".jinja", ".jinja2", ".j2", ".tmpl",
    ".tpl", ".mustache", ".hbs"})

# fake turns at a line start (after any opening markup, e.g. a video's `<subtitle t=...>`):
# `SYSTEM:` and `system:` unless a lone name follows (an annotation: `system: List[str]`; and
# numpydoc's `system : type` has a space), `System:` (bug templates: "System: Linux") only when
# it goes on to address the model
TURNS = re.compile(
    r"^(?:[ \t>*-]|<[a-zA-Z][^<>\n]*>)*"
    r"(?P<turn>(?:SYSTEM[ \t]*|system):(?![ \t]*[A-Za-z_][\w.]*(?:\[.*\])?[ \t]*(?:=.*)?$)"
    r"|System[ \t]*:[ \t]*(?i:you\b|ignore\b|disregard\b"
    r"|forget\b|from now on\b|new instructions\b|override\b))",
    re.MULTILINE,
)
# a heading that opens a system turn: `### System`, `## System prompt` (not "### System setup")
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]*system(?:[ \t]+(?:prompt|message|instructions?))?"
                      r"[ \t]*:?[ \t]*$", re.MULTILINE | re.IGNORECASE)

_INVISIBLE = dict.fromkeys(
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x200B, 0x200C, 0x200D,
     0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2060, 0x2061, 0x2062, 0x2063,
     0x2064, 0x2066, 0x2067, 0x2068, 0x2069, 0x3164, 0xFEFF, 0xFFA0])
# letters that look Latin but are not (NFKC keeps them): Cyrillic, Greek, a few Latin oddities
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁԛԝһӏвкмнтАВЕКМНОРСТХІЈЅУ"  # Cyrillic
    "αοιρτυχνκεΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"  # Greek
    "ıɑ",
    "aeopcyxijsdqwhlbkmhtABEKMHOPCTXIJSY"
    "aoiptuxvkeABEZHIKMNOPTYX"
    "ia",
)


def normalize(text: str) -> str:
    """The text as a reader sees it: invisible characters dropped, NFKC, look-alikes to Latin.
    Line by line, so the result has the same number of lines."""
    if text.isascii():
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.isascii():
            line = unicodedata.normalize("NFKC", line.translate(_INVISIBLE))
            lines[i] = line.translate(_CONFUSABLES).replace("\n", " ")
    return "\n".join(lines)


def is_code(path: str) -> bool:
    """True for code and configuration files (by suffix), where chat tokens are a format."""
    return PurePosixPath(path.lower()).suffix in CODE_SUFFIXES


def find_flags(text: str, limit: int = 20, path: str = "") -> list[tuple[str, int, str]]:
    """(kind, line number, matched text) for passages that look like instructions to a model
    ("injection"), or, in a code file (`path`), chat-template tokens ("chat-format", one hit a
    line). `limit` hits of each kind at most. The matched text is the normalized one;
    "(obfuscated)" is added when the original differs."""
    seen = normalize(text)
    matches = sorted((*PATTERNS.finditer(seen), *TURNS.finditer(seen), *_HEADING.finditer(seen),
                      *_ADDRESS.finditer(seen)), key=lambda m: m.start())
    original = text.split("\n") if seen is not text else []
    code = is_code(path)
    hits: list[tuple[str, int, str]] = []
    counts = {INJECTION: 0, CHAT_FORMAT: 0}
    last = -1
    for match in matches:
        if match.start() < last:
            continue
        last = match.end()
        line = seen.count("\n", 0, match.start()) + 1
        text_hit = match.group("turn") if match.re is TURNS else match.group(0)
        kind = (CHAT_FORMAT if code and match.re is PATTERNS
                and CHAT_TOKENS.fullmatch(text_hit) else INJECTION)
        snippet = " ".join(text_hit.split())[:80]
        if original and text_hit not in original[line - 1]:
            snippet += " (obfuscated)"
        if kind == CHAT_FORMAT and hits and hits[-1][:2] == (kind, line):
            if snippet not in hits[-1][2].split(" "):  # one hit a line: its distinct tokens
                hits[-1] = (kind, line, f"{hits[-1][2]} {snippet}"[:80])
            continue
        if counts[kind] < limit:
            counts[kind] += 1
            hits.append((kind, line, snippet))
        if min(counts.values()) >= limit:
            break
    return hits


def find_injections(text: str, limit: int = 20, path: str = "") -> list[tuple[int, str]]:
    """(line number, matched text) of the "injection" hits of find_flags."""
    return [(line, snippet) for kind, line, snippet in find_flags(text, limit, path)
            if kind == INJECTION]
