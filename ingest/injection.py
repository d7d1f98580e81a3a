"""Flag text written to steer a model ("ignore previous instructions ..."): shown, not obeyed."""

from __future__ import annotations

import re

PATTERNS = re.compile(
    r"ignore\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above|earlier|preceding)\s+"
    r"(?:instructions|prompts?|directions|rules)"
    r"|disregard\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above|earlier|system)\s+"
    r"|forget\s+(?:all\s+)?(?:your|the|previous)\s+instructions"
    r"|you\s+are\s+now\s+(?:in\s+)?(?:developer|dan|jailbreak|unrestricted)"
    r"|new\s+instructions\s*:"
    r"|(?:reveal|print|show)\s+(?:your|the)\s+system\s+prompt"
    r"|<\|(?:im_start|begin_of_text|header_start|eot|system)\|>",
    re.IGNORECASE,
)


def find_injections(text: str, limit: int = 20) -> list[tuple[int, str]]:
    """(line number, matched text) for passages that look like instructions to a model."""
    hits: list[tuple[int, str]] = []
    for match in PATTERNS.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        hits.append((line, match.group(0)[:80]))
        if len(hits) >= limit:
            break
    return hits
