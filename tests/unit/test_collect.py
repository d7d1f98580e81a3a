"""Collect: git's view of a repository, .gitignore walking elsewhere, symlinks, odd inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import git

from ingest.collect import CollectOptions, collect
from ingest.pipeline import PipelineOptions, run_pipeline
from ingest.tokenizers import load_tokenizer
from ingest.types import IngestError


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _init(repo: Path) -> None:
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")


def _collect(inputs: list[Path], **options) -> tuple[dict[str, int], dict[str, str], list[str]]:
    """(candidate path -> size, skipped path -> reason, notes) for inputs."""
    with collect(inputs, CollectOptions(**options)) as found:
        paths = [c.path for c in found.candidates]
        assert len(paths) == len(set(paths)), f"duplicate candidate paths: {paths}"
        return (
            {c.path: c.size for c in found.candidates},
            {s.path: s.reason for s in found.skipped},
            list(found.notes),
        )


def _pipeline(inputs: list[Path], **kw):
    return run_pipeline(inputs, load_tokenizer("cl100k"), PipelineOptions(), **kw)


# git repositories: git decides what belongs


def test_git_repo_uses_tracked_and_untracked_not_ignored_files(tmp_path):
    repo = tmp_path / "repo"
    _write(
        repo,
        {
            "main.py": "print(1)\n",
            ".gitignore": "*.log\nbuild/\n",
            "a/.gitignore": "!keep.log\n*.tmp\n",
            "a/b/.gitignore": "secret.txt\n",
            "top.log": "ignored at the root\n",
            "build/out.txt": "ignored folder\n",
            "a/keep.log": "re-included by a/.gitignore\n",
            "a/drop.log": "still ignored\n",
            "a/scratch.tmp": "ignored in a/\n",
            "a/b/secret.txt": "ignored in a/b/\n",
            "a/b/ok.txt": "kept\n",
            "c/scratch.tmp": "*.tmp of a/ does not reach c/\n",
            "local.txt": "excluded by .git/info/exclude\n",
            "forced.log": "ignored but tracked\n",
        },
    )
    _init(repo)
    (repo / ".git" / "info" / "exclude").write_text("local.txt\n")
    git(repo, "add", "main.py", ".gitignore")
    git(repo, "add", "-f", "forced.log")
    git(repo, "commit", "-qm", "init")
    (repo / "untracked.py").write_text("x = 1\n")

    files, skipped, notes = _collect([repo])
    assert set(files) == {
        ".gitignore",
        "a/.gitignore",
        "a/b/.gitignore",
        "main.py",
        "forced.log",
        "a/keep.log",
        "a/b/ok.txt",
        "c/scratch.tmp",
        "untracked.py",
    }
    assert files["main.py"] == len("print(1)\n")
    assert skipped == {}
    assert any("git repository" in n for n in notes)


def test_git_subfolder_paths_are_relative_to_the_subfolder(tmp_path):
    repo = tmp_path / "repo"
    _write(
        repo,
        {
            ".gitignore": "*.tmp\n",
            "pkg/mod.py": "x = 1\n",
            "pkg/junk.tmp": "j\n",
            "other.py": "y = 2\n",
        },
    )
    _init(repo)
    files, _, notes = _collect([repo / "pkg"])
    assert set(files) == {"mod.py"}
    assert any("git repository" in n for n in notes)


def test_folder_ignored_by_its_repository_is_walked_as_a_plain_folder(tmp_path):
    repo = tmp_path / "repo"
    _write(
        repo,
        {
            ".gitignore": "versions/\n",
            "versions/v1/lib.py": "x = 1\n",
            "versions/v1/.gitignore": "*.pyc\n",
            "versions/v1/lib.pyc": "bytecode",
        },
    )
    _init(repo)
    files, _, notes = _collect([repo / "versions"])
    assert set(files) == {"v1/lib.py", "v1/.gitignore"}
    assert not any("git repository" in n for n in notes)


def test_gitignore_false_takes_every_file_even_in_a_repo(tmp_path):
    repo = tmp_path / "repo"
    _write(repo, {".gitignore": "*.log\n", "a.py": "x\n", "debug.log": "l\n"})
    _init(repo)
    files, _, notes = _collect([repo], gitignore=False)
    assert set(files) == {".gitignore", "a.py", "debug.log"}
    assert notes == []


# plain folders: .gitignore files honoured while walking


def test_walk_honours_gitignore_at_every_level(tmp_path):
    root = tmp_path / "plain"
    _write(
        root,
        {
            ".gitignore": "*.log\n!keep.log\nbuild/\n",
            "keep.log": "same-level negation keeps it\n",
            "debug.log": "ignored\n",
            "build/out.txt": "ignored folder\n",
            "main.py": "print(1)\n",
            "a/.gitignore": "*.tmp\n",
            "a/x.tmp": "ignored by a/.gitignore\n",
            "a/x.py": "kept\n",
            "a/b/.gitignore": "/only_here.txt\ndata/\n",
            "a/b/only_here.txt": "anchored to a/b: ignored\n",
            "a/b/c/only_here.txt": "anchored pattern does not reach deeper\n",
            "a/b/data/big.csv": "ignored folder\n",
            "a/b/deep.log": "root *.log reaches every level\n",
            "c/x.tmp": "a/'s rule does not reach a sibling\n",
        },
    )
    files, skipped, notes = _collect([root])
    assert set(files) == {
        ".gitignore",
        "keep.log",
        "main.py",
        "a/.gitignore",
        "a/x.py",
        "a/b/.gitignore",
        "a/b/c/only_here.txt",
        "c/x.tmp",
    }
    assert skipped == {}
    assert not any("git repository" in n for n in notes)


def test_walk_agrees_with_git_on_the_same_tree(tmp_path):
    tree = {
        ".gitignore": "*.o\n/dist\ndocs/*.html\n",
        "src/.gitignore": "gen/\n*.bak\n",
        "src/main.c": "int main(void) { return 0; }\n",
        "src/main.o": "obj",
        "src/gen/table.c": "generated\n",
        "src/old.c.bak": "backup\n",
        "src/sub/dist": "not anchored at src/sub: kept\n",
        "dist/app": "anchored: ignored\n",
        "docs/index.html": "ignored\n",
        "docs/index.md": "kept\n",
        "docs/api/index.html": "docs/*.html does not cross a slash: kept\n",
    }
    plain, repo = tmp_path / "plain", tmp_path / "repo"
    _write(plain, tree)
    _write(repo, tree)
    _init(repo)
    walked, _, walk_notes = _collect([plain])
    by_git, _, git_notes = _collect([repo])
    assert not any("git repository" in n for n in walk_notes)
    assert any("git repository" in n for n in git_notes)
    assert set(walked) == set(by_git)
    assert "src/sub/dist" in walked and "docs/api/index.html" in walked
    assert "src/main.o" not in walked and "dist/app" not in walked


def test_walk_nested_negation_reincludes_like_git(tmp_path):
    """git: a deeper .gitignore's `!keep.log` re-includes what a parent's `*.log` ignored."""
    tree = {
        ".gitignore": "*.log\n",
        "sub/.gitignore": "!keep.log\n",
        "sub/keep.log": "kept\n",
        "sub/drop.log": "ignored\n",
    }
    repo, plain = tmp_path / "repo", tmp_path / "plain"
    _write(repo, tree)
    _write(plain, tree)
    _init(repo)
    by_git, _, _ = _collect([repo])
    assert "sub/keep.log" in by_git and "sub/drop.log" not in by_git
    walked, _, _ = _collect([plain])
    assert "sub/drop.log" not in walked
    assert "sub/keep.log" in walked


# vendored folders


@pytest.mark.parametrize("use_git", [False, True])
def test_vendored_folders_are_not_collected(tmp_path, use_git):
    root = tmp_path / "proj"
    _write(
        root,
        {
            "app.py": "x = 1\n",
            "node_modules/left-pad/index.js": "module.exports=1\n",
            "vendor/lib.go": "package lib\n",
            ".venv/lib/site.py": "y = 2\n",
            "src/vendor/inner.php": "<?php\n",
        },
    )
    if use_git:
        _init(root)
    files, skipped, _ = _collect([root])
    assert set(files) == {"app.py"}
    # each folder left out is reported once (git also says how many files it held)
    assert {p for p, r in skipped.items() if r.startswith("vendored: folder left out")} == {
        "node_modules/", "vendor/", ".venv/", "src/vendor/"}
    if use_git:
        assert skipped["node_modules/"] == "vendored: folder left out (1 file)"
    everything, skipped, _ = _collect([root], skip_vendored_dirs=False)
    assert not any(r.startswith("vendored") for r in skipped.values())
    assert {
        "node_modules/left-pad/index.js",
        "vendor/lib.go",
        ".venv/lib/site.py",
        "src/vendor/inner.php",
    } <= set(everything)


def test_vendored_files_that_are_collected_are_reported_by_the_filter(tmp_path):
    root = tmp_path / "proj"
    _write(root, {"app.py": "x = 1\n", "node_modules/pkg/index.js": "module.exports = 1;\n"})
    opts = PipelineOptions(collect=CollectOptions(skip_vendored_dirs=False))
    result = run_pipeline([root], load_tokenizer("cl100k"), opts)
    assert [d.path for d in result.documents] == ["app.py"]
    skipped = {s.path: (s.status, s.reason) for s in result.skipped}
    assert skipped == {"node_modules/pkg/index.js": ("skipped", "vendored: node_modules/")}


# symlinks


def test_walk_symlink_loops_do_not_hang(tmp_path):
    root = tmp_path / "plain"
    _write(root, {"a/x.py": "x = 1\n"})
    (root / "a" / "up").symlink_to("..")  # a directory link back to its parent
    (root / "self").symlink_to("self")  # a link to itself
    files, skipped, _ = _collect([root])
    assert set(files) == {"a/x.py"}  # the directory link is not descended
    assert skipped == {"self": "symlink: broken or a loop",
                       "a/up/": "symlink: a folder inside the input, not followed"}


def test_git_symlink_loop_is_reported_not_followed(tmp_path):
    repo = tmp_path / "repo"
    _write(repo, {"a/x.py": "x = 1\n"})
    (repo / "a" / "up").symlink_to("..")
    (repo / "dangling").symlink_to("missing-target")
    _init(repo)
    files, skipped, _ = _collect([repo])
    assert set(files) == {"a/x.py"}
    assert skipped == {"a/up": "symlink: not a file", "dangling": "symlink: broken or a loop"}


@pytest.mark.parametrize("use_git", [False, True])
def test_symlink_to_a_file_outside_the_root_is_refused(tmp_path, use_git):
    """A link out of the input folder (e.g. to ~/.aws/credentials) is reported, never read;
    a link to a file inside the folder is followed."""
    outside = tmp_path / "outside.txt"
    outside.write_text("secret from outside the root\n")
    root = tmp_path / "proj"
    _write(root, {"main.py": "x = 1\n", "docs/real.md": "inside\n"})
    (root / "link.txt").symlink_to(outside)
    (root / "alias.md").symlink_to(root / "docs" / "real.md")
    if use_git:
        _init(root)
    with collect([root]) as found:
        cand = {c.path: c for c in found.candidates}
        assert set(cand) == {"main.py", "docs/real.md", "alias.md"}
        skipped = {s.path: s.reason for s in found.skipped}
        assert skipped["link.txt"] == "symlink: points outside the input folder"
    result = _pipeline([root])
    assert all("secret" not in d.text for d in result.documents)
    assert {d.path: d.text for d in result.documents}["alias.md"] == "inside\n"


# inputs


def test_single_file_input(tmp_path):
    f = tmp_path / "deep" / "notes.md"
    _write(tmp_path, {"deep/notes.md": "# Notes\n", "deep/other.md": "not an input\n"})
    with collect([f]) as found:
        assert [(c.path, c.root, c.size) for c in found.candidates] == [
            ("notes.md", str(f.resolve()), len("# Notes\n"))
        ]
        assert found.skipped == []


def test_multiple_inputs_are_prefixed_by_their_basename(tmp_path):
    _write(
        tmp_path, {"api/server.py": "s = 1\n", "web/app.js": "a = 1\n", "loose/README.md": "# hi\n"}
    )
    with collect([tmp_path / "api", tmp_path / "web", tmp_path / "loose" / "README.md"]) as found:
        got = {c.path: c.root for c in found.candidates}
    assert got == {
        "api/server.py": str((tmp_path / "api").resolve()),
        "web/app.js": str((tmp_path / "web").resolve()),
        "README.md": str((tmp_path / "loose" / "README.md").resolve()),
    }


def test_multiple_inputs_with_the_same_basename_get_distinct_paths(tmp_path):
    """Sources are unique per (corpus, path): two inputs must never produce the same path."""
    _write(tmp_path, {"one/src/main.py": "print('one')\n", "two/src/main.py": "print('two')\n"})
    with collect([tmp_path / "one" / "src", tmp_path / "two" / "src"]) as found:
        paths = [c.path for c in found.candidates]
        roots = {c.root for c in found.candidates}
    assert len(roots) == 2
    assert len(paths) == 2
    assert len(set(paths)) == 2, f"both inputs produced {paths}"


def test_missing_path_is_a_clear_error(tmp_path):
    ok = tmp_path / "here"
    ok.mkdir()
    gone = tmp_path / "not-there"
    with pytest.raises(IngestError, match="path not found") as info, collect([ok, gone]):
        pass
    assert str(gone) in str(info.value)
    with pytest.raises(IngestError, match="no input"), collect([]):
        pass


def test_tilde_input_is_expanded_before_checking_it_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _write(tmp_path, {"proj/a.py": "x = 1\n"})
    with collect([Path("~/proj")]) as found:
        assert [c.path for c in found.candidates] == ["a.py"]


@pytest.mark.parametrize("use_git", [False, True])
def test_empty_folder(tmp_path, use_git):
    root = tmp_path / "empty"
    root.mkdir()
    if use_git:
        _init(root)
    files, skipped, _ = _collect([root])
    assert files == {} and skipped == {}
    result = _pipeline([root])
    assert result.documents == [] and result.skipped == [] and result.seen == 0


# reading stage: files that vanish or cannot be read


def test_file_vanishing_between_collect_and_read_is_a_per_file_error(tmp_path):
    root = tmp_path / "proj"
    _write(root, {"a.py": "a = 1\n", "gone.py": "g = 1\n", "z.py": "z = 1\n"})

    def progress(stage, done, total, detail):
        if stage == "read" and detail == "gone.py":
            (root / "gone.py").unlink()

    result = _pipeline([root], progress=progress)
    assert sorted(d.path for d in result.documents) == ["a.py", "z.py"]
    assert [(s.path, s.status, s.reason) for s in result.skipped] == [
        ("gone.py", "error", "vanished while reading")
    ]


def test_unreadable_file(tmp_path):
    root = tmp_path / "proj"
    _write(root, {"ok.py": "ok = 1\n", "locked.py": "locked = 1\n"})
    locked = root / "locked.py"
    locked.chmod(0)
    try:
        readable = os.access(locked, os.R_OK)  # root (euid 0) reads it anyway
        result = _pipeline([root])
    finally:
        locked.chmod(0o644)
    docs = {d.path: d for d in result.documents}
    assert docs["ok.py"].text == "ok = 1\n"
    if readable:
        assert os.geteuid() == 0
        assert docs["locked.py"].text == "locked = 1\n" and result.skipped == []
    else:
        assert "locked.py" not in docs
        assert [(s.path, s.status, s.reason) for s in result.skipped] == [
            ("locked.py", "error", "unreadable: Permission denied")
        ]
