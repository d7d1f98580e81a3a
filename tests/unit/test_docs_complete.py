"""The README was cut to what a newcomer needs first and the reference moved to docs/ (issue 27):
nothing may be lost on the way, no link may point nowhere, and the README must stay true to the
commands CI and the Makefile run."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

#: every `##`/`###` heading of the README before the cut (1,108 lines, 2026-12-07)
OLD_HEADINGS = [
    "Quick start",
    "Ingest",
    "Tokenizers (exact counts, never a download)",
    "Pack",
    "Engine",
    "Ask",
    "Editors and agents (MCP)",
    "Web UI",
    "Evals",
    "For teams",
    "Sign-in and who sees what",
    "Security",
    "Configuration",
    "Performance",
    "Evals: scoutlens vs needlehaystack",
    "Many users: parallel asks on one database",
    "Tests",
    "Layout",
]

_FENCE = re.compile(r"^```.*?^```[^\n]*$", re.M | re.S)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _prose(path: Path) -> str:
    """The text outside fenced code blocks (a `# comment` in a shell block is no heading)."""
    return _FENCE.sub("", path.read_text(encoding="utf-8"))


def _headings(path: Path) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^#{1,6}\s+(.+)$", _prose(path), re.M)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_every_old_heading_lives_in_the_readme_or_docs():
    found = {h for page in _pages() for h in _headings(page)}
    missing = [h for h in OLD_HEADINGS if h not in found]
    assert not missing, f"headings of the old README found nowhere: {missing}"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    broken = []
    for target in _LINK.findall(_prose(page)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target} (no file)")
        elif anchor and dest.suffix == ".md" and anchor not in map(_slug, _headings(dest)):
            broken.append(f"{target} (no heading)")
    assert not broken, broken


def test_the_first_screen_shows_the_two_commands_and_points_to_the_map():
    first = "\n".join(README.read_text(encoding="utf-8").splitlines()[:40])
    assert "make ui" in first and "make test" in first
    assert "(#layout)" in first and "Layout" in _headings(README)
    assert len(README.read_text(encoding="utf-8").splitlines()) < 200


def test_the_readme_test_command_is_what_make_test_and_ci_run():
    """.ci/run runs `make test`, which the README calls its test command; the command the
    README quotes must be the Makefile's recipe."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci, re.M)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^test:.*\n\t(.+)$", makefile, re.M).group(1).strip()
    command = recipe.replace("$(BIN)", ".venv/bin")
    readme = README.read_text(encoding="utf-8")
    assert f"`{command}`" in readme, command
    assert "make test" in readme


def test_the_backups_pointer_of_database_errors_leads_somewhere():
    """A damaged database's message says "README: Backups" (app/database.py)."""
    assert "Backups" in README.read_text(encoding="utf-8")
    assert "Backups" in _headings(DOCS / "teams.md")
