"""A key in a file's name is stored and shown as the source's path (its identity): it cannot be
redacted there, so the source is flagged `secret:name:<kind>` for its owner to rename it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ingest.documents import name_secrets

GITHUB = "ghp_" + "Zx9" * 12
AWS = "AKIA" + "QWERTYUIOPLKJHGF"


@pytest.mark.parametrize(("path", "kind"), [(f"notes/{GITHUB}.md", "github-token"),
                                            (f"backup/{AWS}/readme.txt", "aws-access-key")])
def test_a_key_in_a_path_is_flagged(path, kind):
    assert name_secrets(path) == [f"secret:name:{kind}"]


@pytest.mark.parametrize("path", ["src/keys/api_key.py", "docs/password-reset.md",
                                  "tests/test_tokenizer_keys.py", "site-packages/transformers/"
                                  "models/llama/tokenization_llama_fast.py",
                                  "data/2024-01-01T12-00-00-export.csv"])
def test_ordinary_paths_are_not_flagged(path):
    assert name_secrets(path) == []


def test_ingest_flags_a_file_named_after_a_key(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / f"{GITHUB}.md").write_text("hello\n")
    done = subprocess.run([sys.executable, "-m", "app.cli", "ingest", "docs", str(docs),
                           "--json"], capture_output=True, text=True, timeout=300,
                          env=os.environ)
    assert done.returncode == 0, done.stderr
    assert '"secret:name:github-token"' in done.stdout
