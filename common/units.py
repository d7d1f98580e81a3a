"""Token counts and byte sizes as users write them, parsed by one set of rules.

A number is digits, optionally grouped (`1,048,576` in thousands, or `1_048_576`), with an
optional decimal part (`1.5`); a unit may follow, with or without a space. No signs other than
a leading minus (refused, with its own message), no exponents, no inf or nan. Units are binary:

- tokens: `k` = 1,024 and `M` = 1,048,576 (either case), as context windows go (Scout's "10M"
  is 10,485,760 tokens); at least 1.
- sizes: `B`, `KB`/`K` = 1,024, `MB`/`M` = 1,048,576, `GB`/`G` = 1,073,741,824 bytes (any
  case); 0 or more.

A fraction left after the unit is applied is rounded down; a count that rounds down to nothing
(`0.5` tokens, `0.5B`) is refused rather than read as 0. A bare int is taken as it is (a bool is
not a number here). Values past 2**63 - 1 are refused: they would overflow the 64-bit integers
that databases and servers take. Every refusal is one line naming what was being parsed.
"""

from __future__ import annotations

import re
from fractions import Fraction

from common.errors import UserError

MAX_VALUE = 2**63 - 1
TOKEN_UNITS = {"": 1, "k": 1024, "m": 1024**2}
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2,
              "g": 1024**3, "gb": 1024**3}
_NUMBER = re.compile(r"\s*(-?)(\d{1,3}(?:,\d{3})+|\d+(?:_\d+)*)(\.\d+)?\s*([a-zA-Z]*)\s*",
                     re.ASCII)
_TOKENS_HINT = "use e.g. 8192, 128k, 1.5M, 10M; k = 1,024, M = 1,048,576"
_SIZE_HINT = "use e.g. 500KB, 10MB, 1.5GB; KB = 1,024 bytes"


def _shown(text: object) -> str:
    r = repr(text)
    return r if len(r) <= 60 else r[:57] + "..."


def _parse(text: str | int, units: dict[str, int]) -> tuple[bool, Fraction] | None:
    """(negative, magnitude) or None when `text` is not a number with one of `units`."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text < 0, Fraction(abs(text))
    if not isinstance(text, str) or len(text) > 100:
        return None
    m = _NUMBER.fullmatch(text)
    if not m or m.group(4).lower() not in units:
        return None
    sign, whole, frac, unit = m.groups()
    value = Fraction(whole.replace(",", "").replace("_", "") + (frac or ""))
    return sign == "-", value * units[unit.lower()]


def parse_tokens(text: str | int, what: str = "token count", *,
                 error: type[UserError] = UserError) -> int:
    """Tokens from `8192`, `128k`, `1.5M`, `10M`, `1,048,576`: an int of at least 1. A refusal
    raises `error` with the message `not a WHAT: ...`."""
    parsed = _parse(text, TOKEN_UNITS)
    if parsed is None:
        raise error(f"not a {what}: {_shown(text)} ({_TOKENS_HINT})")
    negative, value = parsed
    if negative or value < 1:
        raise error(f"not a {what}: {_shown(text)} (it must be at least 1 token)")
    if value > MAX_VALUE:
        raise error(f"not a {what}: {_shown(text)} (at most {MAX_VALUE:,} tokens)")
    return int(value)


def parse_size(text: str | int, what: str = "size", *,
               error: type[UserError] = UserError) -> int:
    """Bytes from `500KB`, `10MB`, `1.5GB` or a plain number: an int of 0 or more. A refusal
    raises `error` with the message `not a WHAT: ...`."""
    parsed = _parse(text, SIZE_UNITS)
    if parsed is None:
        raise error(f"not a {what}: {_shown(text)} ({_SIZE_HINT})")
    negative, value = parsed
    if negative:
        raise error(f"not a {what}: {_shown(text)} (sizes are 0 or more)")
    if 0 < value < 1:
        raise error(f"not a {what}: {_shown(text)} (less than 1 byte)")
    if value > MAX_VALUE:
        raise error(f"not a {what}: {_shown(text)} (at most {MAX_VALUE:,} bytes)")
    return int(value)
