"""Suite files: parsing, flags over the file, and one-line errors that name the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals.suite import SuiteError, load, resolve
from evals.tasks import RULER

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_a_suite_names_the_grid_and_the_target(tmp_path):
    suite = load(write(tmp_path, "tasks: [niah, ruler]\nlengths: [1k, 4096, 1M, 10M]\n"
                                 "depths: [0, 50%, 0.25, 100]\nsamples: 3\nseed: 7\n"
                                 "haystack: filler\nendpoint: http://h:8000/v1\nconcurrency: 8\n"
                                 "max_tokens: 16\n"))
    config, target = resolve(suite, {})
    assert config.tasks == ("niah", *RULER)
    assert config.lengths == (1024, 4096, 1048576, 10485760)
    assert config.depths == (0.0, 0.5, 0.25, 1.0)
    assert (config.samples, config.seed, config.haystack, config.concurrency,
            config.max_tokens) == (3, 7, "filler", 8, 16)
    assert target.endpoint == "http://h:8000/v1" and target.backend is None
    # flags override the file, field by field
    config, target = resolve(suite, {"samples": 1, "lengths": ["2k"], "tasks": None,
                                     "endpoint": "http://other/v1"})
    assert (config.samples, config.lengths, config.seed) == (1, (2048,), 7)
    assert config.tasks[0] == "niah" and target.endpoint == "http://other/v1"


def test_the_shipped_example_suite_is_valid():
    suites = list((ROOT / "evals" / "suites").glob("*.yaml"))
    assert suites
    for path in suites:
        config, _ = resolve(load(path), {})
        assert config.tasks and config.lengths and config.depths


@pytest.mark.parametrize(("text", "message"), [
    ("lengths: [1k, 4k, 12q]", "suite.yaml: lengths[2]: '12q' is not a length"),
    ("tasks: [niah, needle]", "suite.yaml: tasks[1]: unknown task 'needle' (tasks: niah, single"),
    ("depths: [0, 150]", "suite.yaml: depths[1]: 150 is not a depth"),
    ("samples: 0", "suite.yaml: samples: Input should be greater than or equal to 1"),
    ("samples: two", "suite.yaml: samples: Input should be a valid integer"),
    ("lenghts: [1k]", "suite.yaml: lenghts: unknown field (did you mean lengths?"),
    ("lengths: [1k, 4k\nseed: 1", "suite.yaml: not valid YAML: line 2"),
    ("- niah\n- 1k", "suite.yaml: a suite is a mapping of fields"),
])
def test_a_malformed_suite_is_one_line_naming_the_field(tmp_path, text, message):
    with pytest.raises(SuiteError) as info:
        load(write(tmp_path, text))
    assert str(info.value).replace(str(tmp_path) + "/", "").startswith(message)
    assert "\n" not in str(info.value)


def test_the_cli_prints_suite_errors_without_a_traceback(tmp_path):
    path = write(tmp_path, "tasks: [niah]\nlengths: [1k, 4k, 12q]\n")
    env = {**os.environ, "COLUMNS": "300"}
    bad = subprocess.run([sys.executable, "-m", "app.cli", "eval", "run", str(path), "--dry-run"],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    assert bad.returncode == 1
    assert f"error: {path}: lengths[2]: '12q' is not a length" in bad.stderr
    assert "Traceback" not in bad.stderr + bad.stdout
    path.write_text("tasks: [niah]\nlengths: [1k, 4k]\nsamples: 3\n")
    flag = subprocess.run([sys.executable, "-m", "app.cli", "eval", "run", str(path), "--task",
                           "niah,nope", "--dry-run"], capture_output=True, text=True, cwd=ROOT,
                          env=env)
    assert flag.returncode == 1 and "unknown task 'nope'" in flag.stderr
    assert "ruler" in flag.stderr and "multikey" in flag.stderr
    # flags override the file: a dry run counts the grid and sends nothing
    ok = subprocess.run([sys.executable, "-m", "app.cli", "eval", "run", str(path), "--lengths",
                         "1k,2k", "--depths", "0,100", "--samples", "1", "--dry-run"],
                        capture_output=True, text=True, cwd=ROOT, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "4 requests, 6,144 prompt tokens" in ok.stdout
