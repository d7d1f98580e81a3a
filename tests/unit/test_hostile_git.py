"""Git never runs what an input says: archives are plain folders, and a local repository's own
config (fsmonitor, hooks, pagers, ...) is switched off. Each test builds the hostile input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import evil_repo, git, git_env, tar_tree, zip_tree

from ingest.collect import collect


def test_theevil_repo_really_runs_its_command_under_plain_git(tmp_path):
    """The fixture is live: a plain `git ls-files` in it runs the planted command."""
    marker = tmp_path / "PWNED"
    repo = evil_repo(tmp_path, marker)
    subprocess.run(["git", "-C", str(repo), "ls-files", "-co", "--exclude-standard"],
                   capture_output=True, check=True, env=git_env())
    assert marker.exists()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_zip_and_tar_with_a_git_folder_run_nothing(tmp_path):
    marker = tmp_path / "PWNED"
    repo = evil_repo(tmp_path / "src", marker)
    archives = [zip_tree(repo, tmp_path / "evil.zip"), tar_tree(repo, tmp_path / "evil.tgz")]
    for archive in archives:
        proc = _cli("ingest", str(archive), "--corpus", archive.name, "--json")
        assert proc.returncode == 0, proc.stderr
        assert not marker.exists(), f"{archive.name} ran a command"
        files = {f["path"]: f for f in json.loads(proc.stdout)["files"]}
        assert files["a.txt"]["status"] == "added" and files["b.txt"]["status"] == "added"
        assert not any(p.startswith(".git/") and p != ".git/" for p in files)
        assert files[".git/"]["status"] == "skipped"
        assert "git never runs" in files[".git/"]["reason"]


def test_archive_extracted_inside_a_repository_is_not_listed_by_it(tmp_path, monkeypatch):
    """Extraction into a folder that itself lies in a git work tree: still no git."""
    marker = tmp_path / "PWNED"
    outer = evil_repo(tmp_path / "outer", marker)
    archive = zip_tree(evil_repo(tmp_path / "src", marker), tmp_path / "evil.zip")
    from ingest.collect import CollectOptions

    with collect([archive], CollectOptions(workdir=outer / "work")) as found:
        assert sorted(c.path for c in found.candidates) == ["a.txt", "b.txt"]
    assert not marker.exists()


def test_local_repository_with_executing_config_is_listed_without_running_it(tmp_path):
    marker = tmp_path / "PWNED"
    repo = evil_repo(tmp_path, marker)
    (repo / ".gitignore").write_text("ignored.txt\n")
    (repo / "ignored.txt").write_text("x\n")
    with collect([repo]) as found:
        names = sorted(c.path for c in found.candidates)
        assert any("git's file list" in n for n in found.notes)  # git did list it
    assert names == [".gitignore", "a.txt", "b.txt"]
    assert not marker.exists()


def test_git_environment_cannot_smuggle_a_command(tmp_path, monkeypatch):
    """GIT_CONFIG_* variables and a global config are not read either."""
    marker = tmp_path / "PWNED"
    repo = tmp_path / "plain"
    repo.mkdir()
    (repo / "a.txt").write_text("a\n")
    git(repo, "init", "-q")
    home = tmp_path / "fakehome"
    home.mkdir()
    (home / ".gitconfig").write_text(f"[core]\n\tfsmonitor = touch {marker}; echo\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.fsmonitor")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", f"touch {marker}; echo")
    with collect([repo]) as found:
        assert [c.path for c in found.candidates] == ["a.txt"]
    assert not marker.exists()


@pytest.mark.parametrize("where", ["HOME", "XDG_CONFIG_HOME"])
def test_a_global_ignore_file_does_not_hide_the_repository(tmp_path, monkeypatch, where):
    """git reads ~/.config/git/ignore even with no global config; a `*` there (a home folder
    kept in git) made every repository "ignored by its enclosing repository", walked without
    git. Like the global config, it is not read: the repository's own rules decide."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "a.txt").write_text("a\n")
    (repo / "debug.log").write_text("l\n")
    git(repo, "init", "-q")
    git(repo, "add", "-f", "debug.log")  # tracked although ignored: only git lists it
    home = tmp_path / "home"
    config = home / ".config" if where == "HOME" else home
    (config / "git").mkdir(parents=True)
    (config / "git" / "ignore").write_text("*\n")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv(where, str(home))
    with collect([repo]) as found:
        assert any("git's file list" in n for n in found.notes)
        assert sorted(c.path for c in found.candidates) == [".gitignore", "a.txt", "debug.log"]
