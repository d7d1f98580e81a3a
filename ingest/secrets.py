"""Find credentials in a document's text and redact their values, so packs never carry them.

Detection is Yelp's detect-secrets (1.5.0, offline): its precise plugins only (cloud and SaaS
token formats, private keys, JWTs, basic-auth URLs and the keyword plugin for `password=`-style
assignments). The high-entropy plugins and the public-IP plugin are left out: on the Python
standard library they flag ~400 alphabets, digests and test vectors and ~600 documentation IPs,
none of them secrets. Two rules of scoutlens's own close gaps detect-secrets leaves:

- prose assignments (`password: hunter2`, `**API key:** abc123` in Markdown, plain text, PDF
  pages, subtitles, metadata), which detect-secrets only sees quoted; a value must look like a
  credential (placeholders, masks, references and ordinary words are not);
- keys broken over lines (a wrapped line, a PDF page break, a hyphenated break in prose, the
  next cue of a subtitle file): the plugins also see the text with the break taken out, and
  both parts of a key are redacted.

Running every plugin on every line costs ~130 s for the standard library (~10M tokens), so each
plugin has a cheap anchor: a regex or a literal that must occur on a line for the plugin to
match there, run over the whole text at C speed. Only the lines an anchor hits go through that
plugin (the detect-secrets call decides). Anchors are necessary conditions of the plugins' own
patterns, so no finding is lost; `tests/unit/test_secrets.py` checks this against a full scan.

A value is replaced in place by `[REDACTED:<kind>]`; a private key block becomes that many
`[REDACTED:private-key]` lines: the text keeps its newlines, so line numbers and citations hold.
Locations in findings are 1-based lines of the scanned text; `SecretScan.spans` says where each
redacted piece was, so a picture of the page can hide it too (ingest.pdf).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache, partial
from itertools import accumulate
from pathlib import PurePosixPath
from typing import NamedTuple

from ingest.languages import is_code, language_for
from ingest.offline import without_requests

with without_requests():  # never checks a secret online: requests is not loaded (0.1 s)
    from detect_secrets.filters import heuristic
    from detect_secrets.plugins import keyword as kw
    from detect_secrets.plugins.artifactory import ArtifactoryDetector
    from detect_secrets.plugins.aws import AWSKeyDetector
    from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
    from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector
    from detect_secrets.plugins.basic_auth import BasicAuthDetector
    from detect_secrets.plugins.cloudant import CloudantDetector
    from detect_secrets.plugins.discord import DiscordBotTokenDetector
    from detect_secrets.plugins.github_token import GitHubTokenDetector
    from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
    from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
    from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
    from detect_secrets.plugins.jwt import JwtTokenDetector
    from detect_secrets.plugins.mailchimp import MailchimpDetector
    from detect_secrets.plugins.npm import NpmDetector
    from detect_secrets.plugins.openai import OpenAIDetector
    from detect_secrets.plugins.private_key import PrivateKeyDetector
    from detect_secrets.plugins.pypi_token import PypiTokenDetector
    from detect_secrets.plugins.sendgrid import SendGridDetector
    from detect_secrets.plugins.slack import SlackDetector
    from detect_secrets.plugins.softlayer import SoftlayerDetector
    from detect_secrets.plugins.square_oauth import SquareOAuthDetector
    from detect_secrets.plugins.stripe import StripeDetector
    from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
    from detect_secrets.plugins.twilio import TwilioKeyDetector
    from detect_secrets.util.filetype import FileType, determine_file_type

PRIVATE_KEY = "private-key"
KEYWORD = "secret-keyword"


class ProseKeyword:
    """`password: hunter2` written as prose or plain settings (Markdown, text, PDF pages,
    subtitles, metadata): detect-secrets' keyword plugin finds such values only when quoted."""

    secret_type = "Secret Keyword"


@dataclass(frozen=True)
class _Anchor:
    regex: re.Pattern[str]
    lower: bool  # searched in the lower-cased text (for the plugins' case-insensitive patterns)
    #: literals one of which a line must also hold: the regex then runs only on the lines a
    #: literal search (C speed, shared by the anchors that name the same literal) found. For
    #: patterns that are slow over a whole text: a character class that matches nearly
    #: everywhere (0.46 s over the standard library), an alternation of words (0.34 s)
    near: tuple[str, ...] = ()


def _raw(src: str, near: tuple[str, ...] = ()) -> _Anchor:
    return _Anchor(re.compile(src), False, near)


def _low(src: str, near: tuple[str, ...] = ()) -> _Anchor:
    return _Anchor(re.compile(src), True, near)


#: every word of the keyword plugin's DENYLIST holds one of these (lower-cased)
_KEYWORD_LITERALS = ("key", "pass", "pwd", "secret", "contrase")


# the names of a credential in prose (detect-secrets' list, plus spellings prose uses)
_PROSE_WORDS = (r"password|passwd|passwort|passphrase|pwd|secret|contrase(?:ñ|n)a"
                r"|(?:api|auth|access|private|client|service|account|db|database)[ _-]?key"
                r"|(?:db|database|key)[ _-]?pass"
                r"|(?:api|auth|access|bearer|refresh|session|secret)[ _-]?token")

# Each anchor is a necessary condition, within one line, of the plugin's own patterns.
_ANCHORS: list[tuple[type[BasePlugin], tuple[_Anchor, ...]]] = [
    (AWSKeyDetector, (_raw(r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}"),
                      # its secret pattern names "aws" (any case) on the same line
                      _low(r"['\"][0-9a-zA-Z/+]{40}['\"]", ("aws",)))),
    (ArtifactoryDetector, (_raw(r"AKC[a-zA-Z0-9]{10}|AP[\dABCDEF][a-zA-Z0-9]{8}"),)),
    (AzureStorageKeyDetector, (_raw(r"AccountKey="),)),
    (BasicAuthDetector, tuple(_raw(r.pattern) for r in BasicAuthDetector.denylist)),
    (CloudantDetector, (_low(r"(?:cloudant|clou|cl)[-_]?(?:api)?(?:key|pw|pass|token)"
                             r"|cloudant\.com"),)),
    (DiscordBotTokenDetector, (_raw(r"\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}"),)),
    (GitHubTokenDetector, (_raw(r"gh[pousr]_"),)),
    # one anchor per literal start: an alternation at the top has no literal to look for first
    (GitLabTokenDetector, (_raw(r"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-"),
                           _raw("GR1348941"))),
    # its pattern names the value (key|pwd|password|pass|token, any case) on the same line
    (IbmCloudIamDetector, (_low(r"[a-zA-Z0-9_\-]{44}", ("key", "pwd", "pass", "token")),)),
    (IbmCosHmacDetector, (_low(r"secret"),)),
    (JwtTokenDetector, (_raw(r"eyJ"),)),
    (MailchimpDetector, (_raw(r"-us[0-9]"),)),
    (NpmDetector, (_raw(r"_authToken="),)),
    (OpenAIDetector, (_raw(r"T3BlbkFJ"),)),
    (PrivateKeyDetector, (_raw(r"PRIVATE KEY|PuTTY-User-Key-File-2"),)),
    (PypiTokenDetector, (_raw(r"pypi-AgE"),)),
    (SendGridDetector, (_raw(r"SG\."),)),
    (SlackDetector, (_low(r"xox[abposr]-"), _low(r"hooks\.slack\.com"))),
    (SoftlayerDetector, (_low(r"sl[-_]?(?:api)?[-_]?(?:key|pw|pass|token)|softlayer"),)),
    (SquareOAuthDetector, (_raw(r"sq0csp-"),)),
    (StripeDetector, (_raw(r"k_live_"),)),
    (TelegramBotTokenDetector, (_raw(r":[0-9A-Za-z_-]{35}"),)),
    (TwilioKeyDetector, tuple(_raw(r.pattern) for r in TwilioKeyDetector.denylist)),
    # every keyword pattern holds a DENYLIST word (case-insensitive)
    (kw.KeywordDetector, (_low("|".join(kw.DENYLIST), _KEYWORD_LITERALS),)),
    # every name holds one of these (literals are found at C speed; the alternation is slow)
    (ProseKeyword, (_low("", ("pass", "pwd", "secret", "key", "token", "contrase")),)),
]

# keyword values that are settings, not secrets ('MODULE_PWD_STATE': 'yes')
_NOT_SECRETS = frozenset({"yes", "no", "on", "off", "true", "false", "none", "null", "nil",
                          "undefined", "required", "optional", "str", "string"})
# plugins whose match groups are the value (a URL's password, an assignment's right side); for
# the others a group is part of the token (GitHub's "ghp"), so the whole match is redacted
_VALUE_GROUPS = frozenset({AWSKeyDetector, BasicAuthDetector, CloudantDetector, IbmCloudIamDetector,
                           IbmCosHmacDetector, NpmDetector, SoftlayerDetector})
_CONFIG_NAMES = re.compile(r"(?:^|\.)env(?:\.[\w-]+)?$|^\.?envrc$|\.(?:env|envrc)$")

_PEM_END = re.compile(r"-{4,5} ?END [A-Z0-9 ]*-{4,5}|^\s*Private-MAC:.*")
_PEM_START = re.compile(r"-{4,5} ?BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-{4,5}|PuTTY-User-Key-File-2")
_KEY_LINE = re.compile(r"\s*[\"']?(?:[A-Za-z0-9+/=]{16,}|[A-Za-z][A-Za-z-]*: .*|)"
                       r"(?:\\n)?[\"']?\s*[,;+\\]?\s*$")
_KEY_BODY = re.compile(r"[A-Za-z0-9+/=]{16,}")
_MAX_KEY_LINES = 200


# prose rule: a name, `:` or `=` (Markdown emphasis and quotes around either), then the value
_PROSE = re.compile(
    rf"(?<![\w-])[\w-]*?(?:{_PROSE_WORDS})[\w-]*"
    r"[*_`\"')\]]*[ \t]*(?P<sep>[:=])[ \t]*[*_`]*[ \t]*[\"'`]?"
    r"(?P<value>[^\s\"'`=:<>(\[{$%&*#/~.!][^\s\"'`<]*)", re.IGNORECASE)  # `<`: markup after
_PROSE_NAME = re.compile(_PROSE_WORDS, re.IGNORECASE)
# a Markdown table row whose cell is the name and the next cell one word: `| password | hunter2 |`
_TABLE = re.compile(
    rf"\|[ \t]*[*_`]*[\w-]*?(?:{_PROSE_WORDS})[\w-]*[*_`]*[ \t]*\|[ \t]*[*_`]*"
    r"(?P<value>[^\s|*_`][^\s|`]*?)[*_`]*[ \t]*(?=\|)", re.IGNORECASE)
_MASK = re.compile(r"[*xX•·.#?_-]+")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_][\w.]*)?")  # a.b, a.b:c
_PLACEHOLDERS = ("your", "example", "placeholder", "redacted", "dummy", "os.environ", "getenv")
_MIN_PROSE_VALUE = 4
_MIN_WORD_VALUE = 8  # a value of letters only: "swordfish" at a line's end, not "Unknown"

# keys broken over lines: the characters a token is made of, and the break between two of them
_TOKEN = "A-Za-z0-9+/=_.:-"
_SEAM = re.compile(rf"(?<=[{_TOKEN}])\n[ \t]*(?=[{_TOKEN}])")
# a key hyphenated where the line broke (a word processor's or a PDF's hyphenation): the
# hyphen goes with the break, in a pass of its own (a key's own `-` at a line's end stays)
_HYPHEN_SEAM = re.compile(r"(?<=[A-Za-z0-9])-\n[ \t]*(?=[A-Za-z0-9])")
# a key a subtitle file carries over into its next cue: the break is the blank line, the cue's
# number (SRT) and its timing line
_CUE_SEAM = re.compile(rf"(?<=[{_TOKEN}])[ \t]*\n[ \t]*\n+(?:\d+[ \t]*\n)?"
                       r"[\d:.,]+[ \t]+-->[ \t]+[\d:.,]+[^\n]*\n[ \t]*"
                       rf"(?=[{_TOKEN}])")
_SUBTITLES = (".srt", ".vtt")
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_.:-")
_SEAM_AT = re.compile(rf"\n[ \t]*(?=[{_TOKEN}])")
# in code, only the lines a token plugin's anchor hits start a seam; an AWS key's anchor wants
# the whole key on its line, so its prefix is looked for on its own (a literal first: ~10 ms on
# the standard library)
_AWS_HEAD = re.compile(r"A(?:3T|BIA|CCA|KIA|SIA)[0-9A-Z]*\n")
_MAX_SEAM_LINES = 8
# a value found by joining three lines or more must hold a digit, as generated tokens nearly
# always do: a list of capitalised words, one a line, is not an AWS key ("ASIA", "ASSOCIATES")
_DIGIT = re.compile(r"\d")
# token formats a break can hide: a value that is a token of its own, of a bounded shape (npm's
# `_authToken=.+` would run on into the next lines)
_SEAM_PLUGINS = frozenset({
    AWSKeyDetector, AzureStorageKeyDetector, DiscordBotTokenDetector, GitHubTokenDetector,
    GitLabTokenDetector, JwtTokenDetector, MailchimpDetector, OpenAIDetector,
    PypiTokenDetector, SendGridDetector, SlackDetector, SquareOAuthDetector, StripeDetector,
    TelegramBotTokenDetector, TwilioKeyDetector})


@dataclass(frozen=True)
class Finding:
    line: int  # 1-based line of the scanned text
    kind: str  # e.g. "aws-access-key", "github-token", "private-key", "secret-keyword"


class Span(NamedTuple):
    """A redacted piece of the scanned text (never over a newline: a key broken over lines is
    one piece per line)."""

    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class SecretScan:
    findings: tuple[Finding, ...]
    text: str  # the text with each value replaced by [REDACTED:<kind>]; same newlines
    spans: tuple[Span, ...] = ()  # where the redacted values were in the scanned text

    def values(self, text: str) -> list[str]:
        """The redacted pieces of `text` (the scanned text), e.g. to find them on a page."""
        return [text[s.start:s.end] for s in self.spans]


class _Hit(NamedTuple):
    start: int
    end: int
    kind: str
    counted: bool  # a finding of its own; False for a key's later lines and pieces
    group: int  # the pieces of one broken value share it; -1 for a whole value


def kind_of(plugin: type) -> str:
    """The flag-friendly name of a plugin's secret type: "AWS Access Key" -> "aws-access-key"."""
    return re.sub(r"[^a-z0-9]+", "-", str(plugin.secret_type).lower()).strip("-")


@cache
def _plugins() -> list[tuple[BasePlugin | ProseKeyword, str, tuple[_Anchor, ...]]]:
    return [(cls(), kind_of(cls), anchors) for cls, anchors in _ANCHORS]


#: changes whenever what scan() finds could change (plugins, anchors, filters): cached
#: "nothing found" verdicts (ingest.documents) are keyed by it
SCAN_VERSION = "detect-secrets-1.5.0/4"


@lru_cache(maxsize=4096)
def _file_rules(filename: str) -> str:
    """config (`.env`, YAML, ...: detect-secrets' unquoted patterns), prose (Markdown, text,
    PDF, subtitles: scoutlens's prose rule and breaks anywhere) or the file's code type."""
    name = PurePosixPath(filename).name.lower()
    if _CONFIG_NAMES.search(name):
        return "config"
    kind = determine_file_type(name)
    if kind is FileType.OTHER and not is_code(language_for(filename)):
        return "prose"
    return str(kind)


def rules_key(filename: str) -> str:
    """Which rules scan() applies to a file of this name (the keyword plugin's patterns differ
    by file type), for caching its outcome per content."""
    subtitles = filename.lower().endswith(_SUBTITLES)  # cue seams (see _hits)
    return f"{SCAN_VERSION}|{_file_rules(filename)}|{'cues' if subtitles else ''}"


def _keyword_regexes(filename: str) -> dict[re.Pattern[str], int]:
    """The keyword plugin's patterns for this file type; `.env` files count as config."""
    name = PurePosixPath(filename).name.lower()
    if _CONFIG_NAMES.search(name):
        return kw.CONFIG_DENYLIST_REGEX_TO_GROUP
    return kw.REGEX_BY_FILETYPE.get(determine_file_type(name),
                                    kw.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)


def _placeholder(value: str) -> bool:
    """`<your password>`, `********`, `os.environ[...]`: a stand-in, not a credential."""
    v = value.strip().strip("\"'`")
    low = v.lower()
    return bool(_MASK.fullmatch(v)) or v.startswith("<") or any(w in low for w in _PLACEHOLDERS)


def _filtered(value: str, line: str, plugin: BasePlugin | ProseKeyword) -> bool:
    """detect-secrets' default heuristic filters (what its own scans apply), plus setting words
    and placeholders."""
    if heuristic.is_sequential_string(value) or heuristic.is_potential_uuid(value) \
            or heuristic.is_templated_secret(value) or heuristic.is_not_alphanumeric_string(value):
        return True
    if isinstance(plugin, kw.KeywordDetector | ProseKeyword):
        return (heuristic.is_prefixed_with_dollar_sign(value)
                or heuristic.is_likely_id_string(value, line, None)
                or heuristic.is_indirect_reference(line)
                or value.strip().lower() in _NOT_SECRETS
                or _placeholder(value))
    return False


def _credential_like(value: str, sep: str, after: str) -> bool:
    """Whether a prose value reads as a credential: not a word of the sentence, a mask, a
    reference (`settings.DB_PASSWORD`, `os.environ[...]`, `= user_input` in a notebook's code)
    or another name (`SecretStr`). Letters alone make a credential only after `:` and at the
    line's end (`password: swordfish`)."""
    if len(value) < _MIN_PROSE_VALUE or value.lower() in _NOT_SECRETS or _placeholder(value):
        return False
    if any(c in value for c in "([{") or _DOTTED.fullmatch(value):
        return False
    if value.replace("_", "").replace("-", "").isalpha():
        if _PROSE_NAME.search(value) or sep == "=":
            return False
        return len(value) >= _MIN_WORD_VALUE and not after.strip(" \t.,;:!?)*_`\"'")
    return True  # a digit or a sign in it


def _prose_spans(line: str, plugin: ProseKeyword) -> list[tuple[int, int]]:
    found = []
    for m in _PROSE.finditer(line):
        raw = m.group("value")
        value = raw.rstrip(".,;:)]}>*_")
        start = m.start("value")
        after = line[start + len(value):]
        if _credential_like(value, m.group("sep"), after) and not _filtered(value, line, plugin):
            found.append((start, start + len(value)))
    for m in _TABLE.finditer(line):  # the cell's end is the value's end
        value = m.group("value")
        if _credential_like(value, ":", "") and not _filtered(value, line, plugin):
            found.append(m.span("value"))
    return found


def _spans(plugin: BasePlugin | ProseKeyword, line: str, filename: str) -> list[tuple[int, int]]:
    """Where this plugin's values are in the line: the plugin yields values, its patterns'
    match groups give their positions."""
    if isinstance(plugin, ProseKeyword):
        return _prose_spans(line, plugin) if _file_rules(filename) == "prose" else []
    if isinstance(plugin, kw.KeywordDetector):
        regexes = _keyword_regexes(filename)
        values = set(plugin.analyze_string(line, denylist_regex_to_group=regexes))
        found = []
        for regex, group in regexes.items():
            m = regex.search(line)
            if m and m.group(group) in values and not _filtered(m.group(group), line, plugin):
                found.append(m.span(group))
        return found
    assert isinstance(plugin, RegexBasedDetector)
    values = set(plugin.analyze_string(line))
    if not values:
        return []
    found = []
    for regex in plugin.denylist:
        for m in regex.finditer(line):
            groups = [i for i in range(1, (m.re.groups or 0) + 1) if m.group(i)] or [0]
            if any(m.group(i) in values and not _filtered(m.group(i), line, plugin)
                   for i in groups):
                found += [m.span(i) for i in groups] if type(plugin) in _VALUE_GROUPS \
                    else [m.span(0)]
    return found


_FOLDS = str.maketrans({"ſ": "s", "ı": "i"})  # one character each: the lines stay put


def _line_starts(text: str) -> list[int]:
    """Where each line starts (split and sums in C: a loop of find() was 0.4 s a pack)."""
    starts = list(accumulate(map((1).__add__, map(len, text.split("\n"))), initial=0))
    starts.pop()
    return starts


class _Views:
    """The text and, made once when an anchor needs it, its lower-cased copy; each with its line
    starts (lower() can change a string's length, never its newlines)."""

    def __init__(self, text: str) -> None:
        self.text, self.starts = text, _line_starts(text)
        self._lower: tuple[str, list[int]] | None = None
        self._literals: dict[tuple[str, bool], set[int]] = {}

    def view(self, lower: bool) -> tuple[str, list[int]]:
        if not lower:
            return self.text, self.starts
        if self._lower is None:
            low = self.text.lower()
            if "ſ" in low or "ı" in low:  # what re.IGNORECASE takes for s and i: the plugins'
                low = low.translate(_FOLDS)  # patterns match them, so the anchors must too
            self._lower = (low, self.starts if len(low) == len(self.text) else _line_starts(low))
        return self._lower

    def _literal_lines(self, word: str, lower: bool) -> set[int]:
        """The lines that hold `word`, found once per view for all anchors."""
        got = self._literals.get((word, lower))
        if got is None:
            text, starts = self.view(lower)
            # bisect_right(starts, p) - 1 == bisect_right(starts[1:], p): all of it C calls
            # ("key" is on 13,750 lines of the standard library)
            line_of = partial(bisect.bisect_right, starts, lo=1)
            got = self._literals[(word, lower)] = set(
                map((-1).__add__, map(line_of, map(re.Match.start,
                                                   re.finditer(re.escape(word), text)))))
        return got

    def lines_hit(self, anchors: Iterable[_Anchor]) -> set[int]:
        """0-based indexes of the lines an anchor touches (a match over a newline marks all)."""
        lines: set[int] = set()
        for anchor in anchors:
            text, starts = self.view(anchor.lower)
            if anchor.near:
                near = set().union(*(self._literal_lines(w, anchor.lower) for w in anchor.near))
                for n in near - lines:
                    end = starts[n + 1] - 1 if n + 1 < len(starts) else len(text)
                    if anchor.regex.search(text, starts[n], end):
                        lines.add(n)
                continue
            for m in anchor.regex.finditer(text):
                first = bisect.bisect_right(starts, m.start()) - 1
                last = bisect.bisect_right(starts, max(m.start(), m.end() - 1)) - 1
                lines.update(range(first, last + 1))
        return lines


def _key_block(lines: list[str], i: int) -> tuple[int, int] | None:
    """A private key starting on line i: (start column on line i, index of its last line), or
    None for a mere mention (a header with no key material after it)."""
    head = _PEM_START.search(lines[i])
    if head is None:
        return None
    rest = lines[i][head.end():]
    if _PEM_END.search(rest) or _KEY_BODY.search(rest.replace("\\n", " ")):
        return head.start(), i  # the whole key on one line (JSON with \n escapes)
    j, body = i + 1, False
    while j < len(lines) and j - i <= _MAX_KEY_LINES:
        if _PEM_END.search(lines[j]):
            return (head.start(), j) if body else None
        if not _KEY_LINE.fullmatch(lines[j]):
            break
        body = body or bool(_KEY_BODY.search(lines[j]))
        j += 1
    return (head.start(), j - 1) if body else None


def _key_hits(lines: list[str], starts: list[int], i: int, col: int, last: int) -> list[_Hit]:
    """The pieces a key block is redacted as: its header line from the header on, each later
    line but its indent (a blank line stays blank: segments are cut at blank lines)."""
    if last == i:
        end = _PEM_END.search(lines[i], col)
        stop = end.end() if end else len(re.sub(r"[\"',;)\s]*$", "", lines[i]))
        return [_Hit(starts[i] + col, starts[i] + stop, PRIVATE_KEY, True, -1)]
    hits = [_Hit(starts[i] + col, starts[i] + len(lines[i]), PRIVATE_KEY, True, -1)]
    for j in range(i + 1, last + 1):
        line = lines[j]
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        end = _PEM_END.search(line)
        stop = end.end() if end and j == last else len(line)
        hits.append(_Hit(starts[j] + indent, starts[j] + stop, PRIVATE_KEY, False, -1))
    return hits


def _seam_after(text: str, starts: list[int], n: int) -> tuple[int, int] | None:
    """The break that ends line n (the newline and the next line's indent), when a token runs
    over it."""
    if n + 1 >= len(starts):
        return None
    nl = starts[n + 1] - 1
    if nl == 0 or text[nl - 1] not in _TOKEN_CHARS:
        return None
    m = _SEAM_AT.match(text, nl)
    return m.span() if m else None


def _one_token(text: str, starts: list[int], n: int) -> bool:
    end = starts[n + 1] - 1 if n + 1 < len(starts) else len(text)
    line = text[starts[n]:end].strip()
    return bool(line) and all(c in _TOKEN_CHARS for c in line)


def _code_seams(text: str, starts: list[int], lines: set[int]) -> list[tuple[int, int]]:
    """The breaks around `lines` (a token plugin's anchor hit them) and around an AWS key's
    prefix, on across lines that are one token each (a key wrapped over several lines)."""
    lines = lines | {bisect.bisect_right(starts, m.start()) - 1 for m in _AWS_HEAD.finditer(text)}
    seams: set[tuple[int, int]] = set()
    for n in lines:
        k = n  # on down: the key's later parts
        while k - n < _MAX_SEAM_LINES and (seam := _seam_after(text, starts, k)):
            seams.add(seam)
            k += 1
            if not _one_token(text, starts, k):
                break
        k = n  # and up: its earlier parts (an anchor in a key's middle or at its end)
        while n - k < _MAX_SEAM_LINES and k > 0 and (seam := _seam_after(text, starts, k - 1)):
            seams.add(seam)
            k -= 1
            if not _one_token(text, starts, k):
                break
    return sorted(seams)


def _seam_hits(text: str, seams: list[tuple[int, int]], filename: str) -> list[_Hit]:
    """Values the token plugins find once the breaks are taken out and that run over one:
    each becomes a piece per line, the first of them counted."""
    if not seams:
        return []
    pieces, at, removed, prev = [], [], [0], 0
    for a, b in seams:
        pieces.append(text[prev:a])
        at.append(a - removed[-1])  # where the break is in the joined text
        removed.append(removed[-1] + b - a)
        prev = b
    pieces.append(text[prev:])
    views = _Views("".join(pieces))
    joined, starts = views.text, views.starts
    broken = {bisect.bisect_right(starts, a) - 1 for a in at}  # the joined lines with a break
    hits: list[_Hit] = []
    for plugin, kind, anchors in _plugins():
        if type(plugin) not in _SEAM_PLUGINS:
            continue
        for n in sorted(views.lines_hit(anchors) & broken):
            end = starts[n + 1] - 1 if n + 1 < len(starts) else len(joined)
            for a, b in _spans(plugin, joined[starts[n]:end], filename):
                a, b = starts[n] + a, starts[n] + b
                over = at[bisect.bisect_right(at, a):bisect.bisect_left(at, b)]
                if not over or (len(over) > 1 and not _DIGIT.search(joined, a, b)):
                    continue  # not broken (the scan of the lines finds it), or words joined
                group = len(hits)
                cuts = [a, *over, b]
                for k, (p, q) in enumerate(zip(cuts, cuts[1:], strict=False)):
                    start = p + removed[bisect.bisect_right(at, p)]
                    stop = q + removed[bisect.bisect_left(at, q)]
                    hits.append(_Hit(start, stop, kind, k == 0, group))
    return hits


def _hits(text: str, filename: str) -> list[_Hit]:
    """Every piece to redact in `text`: the plugins line by line, private key blocks (whose lines
    nothing else claims) and values broken over lines."""
    views = _Views(text)
    starts = views.starts
    rules = _file_rules(filename)
    found: list[_Hit] = []
    keys: dict[int, tuple[int, int]] = {}
    lines: list[str] | None = None
    token_lines: set[int] = set()  # where a key broken over lines may start or end (code)
    for plugin, kind, anchors in _plugins():
        if isinstance(plugin, ProseKeyword) and rules != "prose":
            continue
        hit = views.lines_hit(anchors)
        if type(plugin) in _SEAM_PLUGINS:
            token_lines |= hit
        for n in sorted(hit):
            end = starts[n + 1] - 1 if n + 1 < len(starts) else len(text)
            line = text[starts[n]:end].rstrip()
            if kind == PRIVATE_KEY:
                if not any(plugin.analyze_string(line)):  # type: ignore[union-attr]
                    continue
                lines = lines if lines is not None else text.split("\n")
                block = _key_block(lines, n)
                if block is not None:
                    keys[n] = block
                continue
            found += [_Hit(starts[n] + a, starts[n] + b, kind, True, -1)
                      for a, b in _spans(plugin, line, filename)]
    seams = [m.span() for m in _SEAM.finditer(text)] if rules == "prose" \
        else _code_seams(text, starts, token_lines)
    found += _seam_hits(text, seams, filename)
    if rules == "prose":
        found += _seam_hits(text, [m.span() for m in _HYPHEN_SEAM.finditer(text)], filename)
        if filename.lower().endswith(_SUBTITLES):
            found += _seam_hits(text, [m.span() for m in _CUE_SEAM.finditer(text)], filename)
    if not keys:
        return found
    lines = lines if lines is not None else text.split("\n")
    covered: set[int] = set()
    for n, (col, last) in sorted(keys.items()):
        if n not in covered:
            covered.update(range(n, last + 1))
            found += _key_hits(lines, starts, n, col, last)
    return [h for h in found if h.kind == PRIVATE_KEY
            or bisect.bisect_right(starts, h.start) - 1 not in covered]


def _redacted(text: str, hits: list[_Hit]) -> SecretScan:
    """Replace each hit (the earliest-starting, then longest, wins an overlap); a finding per
    line and kind of the counted ones."""
    merged: list[list] = []
    for h in sorted(hits, key=lambda h: (h.start, -h.end)):
        if merged and h.start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], h.end)
            if h.counted and not merged[-1][3]:  # a finding names its own kind
                merged[-1][2:] = [h.kind, True]
            continue
        merged.append([h.start, h.end, h.kind, h.counted])
    starts = _line_starts(text) if merged else [0]
    out, pos, found = [], 0, set()
    for a, b, kind, counted in merged:
        out += [text[pos:a], f"[REDACTED:{kind}]"]
        pos = b
        if counted:
            found.add(Finding(bisect.bisect_right(starts, a), kind))
    out.append(text[pos:])
    findings = tuple(sorted(found, key=lambda f: (f.line, f.kind)))
    return SecretScan(findings, "".join(out), tuple(Span(a, b, k) for a, b, k, _ in merged))


def _within(hits: list[_Hit], lo: int, hi: int) -> list[_Hit]:
    """The hits inside [lo, hi), moved to start at 0; a broken value whose counted piece lies
    outside (on a neighbouring page) is counted at its first piece inside."""
    inside = [h for h in hits if lo <= h.start and h.end <= hi]
    counted = {h.group for h in inside if h.counted}
    out = []
    for h in inside:
        first = h.group >= 0 and h.group not in counted
        if first:
            counted.add(h.group)
        out.append(h._replace(start=h.start - lo, end=h.end - lo, counted=h.counted or first))
    return out


def scan(text: str, filename: str = "", before: str = "", after: str = "") -> SecretScan:
    """Findings (line, kind) in `text` and the text with every value redacted. `filename` picks
    the keyword plugin's patterns (config files, `.env`, code, prose). `before` and `after` are
    the neighbouring pages of a PDF page: a key broken by the page break is redacted on both."""
    if not (before.strip() or after.strip()):
        hits = _hits(text, filename)
        return _redacted(text, hits) if hits else SecretScan((), text)
    tail = before.rstrip("\n").rsplit("\n", 1)[-1]
    head = after.lstrip("\n").split("\n", 1)[0]
    body = text if not text or text.endswith("\n") else text + "\n"
    window = f"{tail}\n{body}{head}"
    hits = _within(_hits(window, filename), len(tail) + 1, len(tail) + 1 + len(text))
    return _redacted(text, hits) if hits else SecretScan((), text)
