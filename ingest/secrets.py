"""Find credentials in a document's text and redact their values, so packs never carry them.

Detection is Yelp's detect-secrets (1.5.0, offline): its precise plugins only (cloud and SaaS
token formats, private keys, JWTs, basic-auth URLs and the keyword plugin for `password=`-style
assignments). The high-entropy plugins and the public-IP plugin are left out: on the Python
standard library they flag ~400 alphabets, digests and test vectors and ~600 documentation IPs,
none of them secrets.

Running every plugin on every line costs ~130 s for the standard library (~10M tokens), so each
plugin has a cheap anchor: a regex or a literal that must occur on a line for the plugin to
match there, run over the whole text at C speed. Only the lines an anchor hits go through that
plugin (the detect-secrets call decides). Anchors are necessary conditions of the plugins' own
patterns, so no finding is lost; `tests/test_secrets.py` checks this against a full scan.

A value is replaced in place by `[REDACTED:<kind>]`; a private key block becomes that many
`[REDACTED:private-key]` lines: the text keeps its newlines, so line numbers and citations hold.
Locations in findings are 1-based lines of the scanned text.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath

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
from detect_secrets.util.filetype import determine_file_type

PRIVATE_KEY = "private-key"
KEYWORD = "secret-keyword"

@dataclass(frozen=True)
class _Anchor:
    regex: re.Pattern[str]
    lower: bool  # searched in the lower-cased text (for the plugins' case-insensitive patterns)


def _raw(src: str) -> _Anchor:
    return _Anchor(re.compile(src), False)


def _low(src: str) -> _Anchor:
    return _Anchor(re.compile(src), True)


# Each anchor is a necessary condition, within one line, of the plugin's own patterns.
_ANCHORS: list[tuple[type[BasePlugin], tuple[_Anchor, ...]]] = [
    (AWSKeyDetector, (_raw(r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}"),
                      _raw(r"['\"][0-9a-zA-Z/+]{40}['\"]"))),
    (ArtifactoryDetector, (_raw(r"AKC[a-zA-Z0-9]{10}|AP[\dABCDEF][a-zA-Z0-9]{8}"),)),
    (AzureStorageKeyDetector, (_raw(r"AccountKey="),)),
    (BasicAuthDetector, tuple(_raw(r.pattern) for r in BasicAuthDetector.denylist)),
    (CloudantDetector, (_low(r"(?:cloudant|clou|cl)[-_]?(?:api)?(?:key|pw|pass|token)"
                             r"|cloudant\.com"),)),
    (DiscordBotTokenDetector, (_raw(r"\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}"),)),
    (GitHubTokenDetector, (_raw(r"gh[pousr]_"),)),
    (GitLabTokenDetector, (_raw(r"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-|GR1348941"),)),
    (IbmCloudIamDetector, (_raw(r"[a-zA-Z0-9_\-]{44}"),)),
    (IbmCosHmacDetector, (_low(r"secret"),)),
    (JwtTokenDetector, (_raw(r"eyJ"),)),
    (MailchimpDetector, (_raw(r"-us[0-9]"),)),
    (NpmDetector, (_raw(r"_authToken="),)),
    (OpenAIDetector, (_raw(r"T3BlbkFJ"),)),
    (PrivateKeyDetector, (_raw(r"PRIVATE KEY|PuTTY-User-Key-File-2"),)),
    (PypiTokenDetector, (_raw(r"pypi-AgE"),)),
    (SendGridDetector, (_raw(r"SG\."),)),
    (SlackDetector, (_low(r"xox[abposr]-|hooks\.slack\.com"),)),
    (SoftlayerDetector, (_low(r"sl[-_]?(?:api)?[-_]?(?:key|pw|pass|token)|softlayer"),)),
    (SquareOAuthDetector, (_raw(r"sq0csp-"),)),
    (StripeDetector, (_raw(r"k_live_"),)),
    (TelegramBotTokenDetector, (_raw(r":[0-9A-Za-z_-]{35}"),)),
    (TwilioKeyDetector, tuple(_raw(r.pattern) for r in TwilioKeyDetector.denylist)),
    # every keyword pattern holds a DENYLIST word (case-insensitive)
    (kw.KeywordDetector, (_low("|".join(kw.DENYLIST)),)),
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


@dataclass(frozen=True)
class Finding:
    line: int  # 1-based line of the scanned text
    kind: str  # e.g. "aws-access-key", "github-token", "private-key", "secret-keyword"


@dataclass(frozen=True)
class SecretScan:
    findings: tuple[Finding, ...]
    text: str  # the text with each value replaced by [REDACTED:<kind>]; same newlines


def kind_of(plugin: type[BasePlugin]) -> str:
    """The flag-friendly name of a plugin's secret type: "AWS Access Key" -> "aws-access-key"."""
    return re.sub(r"[^a-z0-9]+", "-", str(plugin.secret_type).lower()).strip("-")


@cache
def _plugins() -> list[tuple[BasePlugin, str, tuple[_Anchor, ...]]]:
    return [(cls(), kind_of(cls), anchors) for cls, anchors in _ANCHORS]


#: changes whenever what scan() finds could change (plugins, anchors, filters): cached
#: "nothing found" verdicts (ingest.documents) are keyed by it
SCAN_VERSION = "detect-secrets-1.5.0/1"


def rules_key(filename: str) -> str:
    """Which rules scan() applies to a file of this name (the keyword plugin's patterns differ
    by file type), for caching its outcome per content."""
    name = PurePosixPath(filename).name.lower()
    kind = "config" if _CONFIG_NAMES.search(name) else str(determine_file_type(name))
    return f"{SCAN_VERSION}|{kind}"


def _keyword_regexes(filename: str) -> dict[re.Pattern[str], int]:
    """The keyword plugin's patterns for this file type; `.env` files count as config."""
    name = PurePosixPath(filename).name.lower()
    if _CONFIG_NAMES.search(name):
        return kw.CONFIG_DENYLIST_REGEX_TO_GROUP
    return kw.REGEX_BY_FILETYPE.get(determine_file_type(name),
                                    kw.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)


def _filtered(value: str, line: str, plugin: BasePlugin) -> bool:
    """detect-secrets' default heuristic filters (what its own scans apply), plus setting words."""
    if heuristic.is_sequential_string(value) or heuristic.is_potential_uuid(value) \
            or heuristic.is_templated_secret(value) or heuristic.is_not_alphanumeric_string(value):
        return True
    if isinstance(plugin, kw.KeywordDetector):
        return (heuristic.is_prefixed_with_dollar_sign(value)
                or heuristic.is_likely_id_string(value, line, plugin)
                or heuristic.is_indirect_reference(line)
                or value.strip().lower() in _NOT_SECRETS)
    return False


def _spans(plugin: BasePlugin, line: str, filename: str) -> list[tuple[int, int]]:
    """Where this plugin's values are in the line: the plugin yields values, its patterns'
    match groups give their positions."""
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


def _line_starts(text: str) -> list[int]:
    starts = [0]
    find = text.find
    i = find("\n")
    while i >= 0:
        starts.append(i + 1)
        i = find("\n", i + 1)
    return starts


class _Views:
    """The text and, made once when an anchor needs it, its lower-cased copy; each with its line
    starts (lower() can change a string's length, never its newlines)."""

    def __init__(self, text: str) -> None:
        self.text, self.starts = text, _line_starts(text)
        self._lower: tuple[str, list[int]] | None = None

    def view(self, lower: bool) -> tuple[str, list[int]]:
        if not lower:
            return self.text, self.starts
        if self._lower is None:
            low = self.text.lower()
            self._lower = (low, self.starts if len(low) == len(self.text) else _line_starts(low))
        return self._lower

    def lines_hit(self, anchors: Iterable[_Anchor]) -> set[int]:
        """0-based indexes of the lines an anchor touches (a match over a newline marks all)."""
        lines: set[int] = set()
        for anchor in anchors:
            text, starts = self.view(anchor.lower)
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


def _redact_key(lines: list[str], i: int, col: int, last: int) -> None:
    tag = f"[REDACTED:{PRIVATE_KEY}]"
    if last == i:
        end = _PEM_END.search(lines[i], col)
        stop = end.end() if end else len(re.sub(r"[\"',;)\s]*$", "", lines[i]))
        lines[i] = lines[i][:col] + tag + lines[i][stop:]
        return
    lines[i] = lines[i][:col] + tag
    for j in range(i + 1, last + 1):
        line = lines[j]
        if not line.strip():
            continue  # a blank line stays blank (segments are cut at blank lines)
        indent = line[: len(line) - len(line.lstrip())]
        end = _PEM_END.search(line)
        lines[j] = indent + tag + (line[end.end():] if end and j == last else "")


def scan(text: str, filename: str = "") -> SecretScan:
    """Findings (line, kind) in `text` and the text with every value redacted. `filename` picks
    the keyword plugin's patterns (config files, `.env`, code)."""
    views = _Views(text)
    starts = views.starts
    hits: dict[int, list[tuple[int, int, str]]] = {}
    keys: dict[int, tuple[int, int]] = {}
    lines: list[str] | None = None
    for plugin, kind, anchors in _plugins():
        for n in sorted(views.lines_hit(anchors)):
            end = starts[n + 1] - 1 if n + 1 < len(starts) else len(text)
            line = text[starts[n]:end].rstrip()
            if kind == PRIVATE_KEY:
                if not any(plugin.analyze_string(line)):  # type: ignore[attr-defined]
                    continue
                lines = lines if lines is not None else text.split("\n")
                block = _key_block(lines, n)
                if block is not None:
                    keys[n] = block
                continue
            for a, b in _spans(plugin, line, filename):
                hits.setdefault(n, []).append((a, b, kind))
    if not hits and not keys:
        return SecretScan((), text)

    lines = lines if lines is not None else text.split("\n")
    findings: list[Finding] = []
    covered: set[int] = set()
    for n, (col, last) in sorted(keys.items()):
        if n in covered:
            continue
        findings.append(Finding(n + 1, PRIVATE_KEY))
        covered.update(range(n + 1, last + 1))
        hits.pop(n, None)  # the key's own line is redacted from the header on
        _redact_key(lines, n, col, last)
    for n, spans in hits.items():
        if n in covered:
            continue
        lines[n], kinds = _redact_line(lines[n], spans)
        findings.extend(Finding(n + 1, k) for k in kinds)
    findings.sort(key=lambda f: (f.line, f.kind))
    return SecretScan(tuple(findings), "\n".join(lines))


def _redact_line(line: str, spans: list[tuple[int, int, str]]) -> tuple[str, list[str]]:
    """Replace each span (the earliest-starting, then longest, wins an overlap)."""
    merged: list[list] = []
    for a, b, kind in sorted(spans, key=lambda s: (s[0], -s[1])):
        if merged and a < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
            continue
        merged.append([a, b, kind])
    out, pos, kinds = [], 0, []
    for a, b, kind in merged:
        out += [line[pos:a], f"[REDACTED:{kind}]"]
        pos = b
        if kind not in kinds:
            kinds.append(kind)
    out.append(line[pos:])
    return "".join(out), kinds
