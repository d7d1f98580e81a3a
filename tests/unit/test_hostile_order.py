"""No test depends on its neighbours: what one leaves in the process is put back, `--order`
reorders the suite to check it, and the repositories the tests build ignore the shell's git."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO, git

from ingest.collect import collect

LEAKY = '''
import os


def test_a_leaks(tmp_path):
    os.environ["LEFT_BY_A"] = "1"
    os.environ["HOME"] = str(tmp_path)
    os.chdir(tmp_path)


def test_b_starts_clean():
    assert "LEFT_BY_A" not in os.environ and os.environ["HOME"] != os.getcwd()
    assert os.getcwd() == os.environ["STARTED_IN"]
'''

RECORDER = '''
import os

import pytest


@pytest.mark.parametrize("i", range({n}))
def test_record(request, i):
    with open(os.environ["ORDER_LOG"], "a") as f:
        f.write(request.node.nodeid + "\\n")
'''


def _suite(root: Path) -> Path:
    """A copy of tests/conftest.py over two modules that record the order they ran in, and one
    whose first test leaves a variable, HOME and the working folder changed."""
    (root / "tests" / "unit").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "tests" / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (root / "tests" / "unit" / "test_leaky.py").write_text(LEAKY)
    for name, n in (("test_one.py", 6), ("test_two.py", 6)):
        (root / "tests" / "unit" / name).write_text(RECORDER.format(n=n))
    return root


def _run(root: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    log = root / f"order-{len(list(root.glob('order-*')))}.log"
    env = {**os.environ, "ORDER_LOG": str(log), "STARTED_IN": str(root),
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:xdist", "--basetemp", str(root / "tmp"), *args, "tests"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    return proc, log.read_text().split() if log.exists() else []


def test_what_a_test_leaves_is_gone_and_every_order_runs_whole_modules_the_same_way(tmp_path):
    root = _suite(tmp_path)
    proc, default = _run(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # test_b saw nothing of test_a's
    _, reverse = _run(root, "--order", "reverse")
    _, shuffled = _run(root, "--order", "shuffle:7")
    _, again = _run(root, "--order", "shuffle:7")  # every xdist worker must agree
    assert len(default) == 12 and reverse == default[::-1]
    assert shuffled == again and sorted(shuffled) == sorted(default) and shuffled != default
    modules = [nodeid.split("::")[0] for nodeid in shuffled]
    assert modules == sorted(modules, key=modules.index)  # each module's tests run together


def test_a_bad_order_is_a_usage_error(tmp_path):
    proc, ran = _run(_suite(tmp_path), "--order", "sideways")
    assert proc.returncode == 4 and "use reverse or shuffle:SEED" in proc.stderr and ran == []


def test_a_git_dir_inherited_from_a_hook_does_not_send_the_tests_repositories_elsewhere(
        tmp_path, monkeypatch):
    """`make test-fast` from a git hook inherits GIT_DIR and GIT_INDEX_FILE: the repositories
    the tests build must still be where collect looks, and the checkout's index untouched."""
    elsewhere = tmp_path / "elsewhere.git"
    monkeypatch.setenv("GIT_DIR", str(elsewhere))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "other-index"))
    monkeypatch.setenv("GIT_WORK_TREE", str(tmp_path))
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.txt").write_text("a\n")
    git(repo, "init", "-q")
    git(repo, "add", "a.txt")
    assert (repo / ".git" / "index").is_file() and not elsewhere.exists()
    with collect([repo]) as found:
        assert any("git's file list" in n for n in found.notes)
        assert [c.path for c in found.candidates] == ["a.txt"]
