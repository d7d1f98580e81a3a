"""Suite files: parsing, flags over the file, and one-line errors that name the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evals.suite import FIELDS, Suite, SuiteError, load, parse_yaml, resolve, validate
from evals.tasks import RULER

ROOT = Path(__file__).resolve().parents[2]


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
    assert "warning" not in ok.stderr


def test_a_dry_run_warns_once_per_length_beyond_the_models_window(tmp_path):
    """The bundled model's window (8,192) is read without loading it; 8k leaves no room for
    the answer."""
    env = {**os.environ, "COLUMNS": "300"}
    done = subprocess.run([sys.executable, "-m", "app.cli", "eval", "run", "--lengths",
                           "1k,8k,16k,16k,1M", "--depths", "50", "--dry-run"],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if line.startswith("warning: length")]
    assert [w.split(" does not fit")[0] for w in warned] == [
        "warning: length 8,192", "warning: length 16,384", "warning: length 1,048,576"]
    assert all("window of 8,192 tokens" in w for w in warned)


# --- hostile suite files --------------------------------------------------------------------------

# 45 aliases that would expand to 9**6 lengths: shared by the loader, shown bounded in messages
_LAUGHS = "a: &a [1k, 1k, 1k, 1k, 1k, 1k, 1k, 1k, 1k]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcde", "bcdef", strict=True))
# the same inside a known field, then as the value that fails: the message must stay short
_NESTED_LAUGHS = "model: [" + ", ".join(
    line.split(": ", 1)[1] for line in _LAUGHS.splitlines()) + "]\nlengths: *f\n"


@pytest.mark.parametrize(("text", "message"), [
    ("lengths: " + "[" * 10_000 + "]" * 10_000, "suite.yaml: nested deeper than 8 levels"),
    ("- " * 3_000 + "x", "suite.yaml: nested deeper than 8 levels"),
    ("lengths: " + "{a: " * 5_000 + "1" + "}" * 5_000, "suite.yaml: nested deeper than 8"),
    ("lengths: [" + "9" * 400 + "]", "suite.yaml: lengths[0]: "),
    ("lengths: [" + "9" * 5_000 + "]", "suite.yaml: not a usable suite: Exceeds the limit"),
    ("lengths: [3000000000]", "suite.yaml: lengths[0]: 3000000000 is over the longest length"),
    ("depths: [1e999]", "suite.yaml: depths[0]: '1e999' is not a depth"),
    ("depths: [.inf]", "suite.yaml: depths[0]: inf is not a depth"),
    ("depths: [[50]]", "suite.yaml: depths[0]: [50] is not a depth"),
    (_LAUGHS.replace("f: &f", "lengths: &f"), "suite.yaml: a: unknown field"),
    (_NESTED_LAUGHS, "suite.yaml: lengths[0]: [[["),
    ("tasks: " + _NESTED_LAUGHS.split("lengths: ")[0].removeprefix("model: ") + "\nmodel: *f",
     "suite.yaml: tasks[0]: ['1k', '1k'"),
    ("lengths: *nowhere", "suite.yaml: not valid YAML: line 1, column 10: found undefined alias"),
    ("x: &x 1\n" + "".join(f"k{i}: *x\n" for i in range(60)), "suite.yaml: more than 50 aliases"),
    ("tasks: [" + "n" * 100_000 + "]", "suite.yaml: tasks[0]: 'nnnnnnnn"),
    ("n" * 1_000 + ": 1", "suite.yaml: nnnnnnnnnn"),
    ("!!python/object:os.system {}", "suite.yaml: not valid YAML: "),
])
def test_a_hostile_suite_is_one_short_line(tmp_path, text, message):
    with pytest.raises(SuiteError) as info:
        load(write(tmp_path, text))
    got = str(info.value).replace(str(tmp_path) + "/", "")
    assert got.startswith(message), got
    assert "\n" not in got and len(got) < 600


def test_a_suite_file_too_big_or_not_text_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# pad\n" * 200_000)
    with pytest.raises(SuiteError, match="at most 1,048,576 bytes"):
        load(big)
    if Path("/dev/zero").exists():  # a wrong path must not read forever
        with pytest.raises(SuiteError, match="at most"):
            load(Path("/dev/zero"))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SuiteError, match="cannot read the suite file"):
        load(binary)


def test_the_cli_prints_a_deeply_nested_suite_as_one_line(tmp_path):
    path = write(tmp_path, "lengths: " + "[" * 10_000 + "]" * 10_000)
    bad = subprocess.run([sys.executable, "-m", "app.cli", "eval", "run", str(path), "--dry-run"],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "COLUMNS": "300"})
    assert bad.returncode == 1
    assert bad.stderr.strip() == f"error: {path}: nested deeper than 8 levels"


# --- property tests: the suite parser on arbitrary input ------------------------------------------

_scalar = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from(["1k", "4k", "1M", "50%", "niah", "ruler", "12q", "-1"]))
_value = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=10)
_field = st.sampled_from([*FIELDS, "lenghts", "x"]) | st.text(max_size=8)


@st.composite
def _suite_text(draw) -> str:
    import yaml

    data = draw(st.dictionaries(_field, _value, max_size=6) | _value)
    text = yaml.safe_dump(data, allow_unicode=draw(st.booleans()))
    if draw(st.booleans()):  # then damage it: cut, or splice in YAML punctuation
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["", "[", "{", ": ", "&a ", "*a", "- ", "\t",
                                                 "!!binary ", "'", '"', "\n  "])) + text[at:]
    return text


@settings(max_examples=400, deadline=None)
@given(st.one_of(_suite_text(), st.text(max_size=80)))
def test_the_suite_parser_returns_a_suite_or_a_one_line_suite_error(text):
    try:
        suite = validate(parse_yaml(text, "suite.yaml"), "suite.yaml")
    except SuiteError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600
        return
    assert isinstance(suite, Suite)
    config, _ = resolve(suite, {})
    assert config.tasks and all(0 <= d <= 1 for d in config.depths)
    assert all(0 < n <= 2**31 - 1 for n in config.lengths)
