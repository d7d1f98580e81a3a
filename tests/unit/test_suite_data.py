"""`scoutlens eval data` (issue 30, item 7): what each published suite reads and where it is
published, and a local copy checked the way a run reads it: usable files ok with what was
found, absent ones missing, a malformed file or a checksum that is not the published one wrong
(exit 1), one line each, nothing downloaded."""

from __future__ import annotations

import json

from helpers import wide_cli as cli

from unit.test_babilong import published as babilong_copy
from unit.test_longbench import data_file as longbench_copy
from unit.test_mrcr import published as mrcr_copy


def test_the_list_names_every_suites_files_and_where_they_are_published():
    done = cli("eval", "data", "--json")
    assert done.returncode == 0, done.stderr
    files = json.loads(done.stdout)["files"]
    assert {f["suite"] for f in files} == {"ruler", "babilong", "longbench-v2", "mrcr"}
    words = next(f for f in files if f["path"] == "english_words.json")
    assert words["sha256"].startswith("affcd6d45fdf3cc8") and "NVIDIA/RULER" in words["source"]
    assert all(f["source"] and "status" not in f for f in files)


def test_a_local_copy_is_checked_file_by_file(tmp_path):
    root = tmp_path / "suites"
    babilong_copy(root)
    longbench_copy(root)
    mrcr_copy(root)
    (root / "squad.json").write_text(json.dumps({"data": [{"title": "t", "paragraphs": [
        {"context": "c", "qas": [{"question": "q", "answers": [{"text": "c"}],
                                  "is_impossible": False}]}]}]}))
    (root / "hotpotqa.json").write_text("[{")
    (root / "english_words.json").write_text('{"0": "apple"}')
    done = cli("eval", "data", str(root), "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    status = {f["path"]: (f["status"], f["detail"]) for f in json.loads(done.stdout)["files"]}
    assert status["PaulGrahamEssays.json"][0] == "missing"
    assert status["squad.json"] == ("ok", "1 answerable questions")
    assert status["hotpotqa.json"][0] == "wrong" and "not the JSON RULER reads" in \
        status["hotpotqa.json"][1]
    assert status["english_words.json"][0] == "wrong" and "is not the published" in \
        status["english_words.json"][1]
    assert status["data/qa*/*.json or */qa*.parquet"] == (
        "ok", "2 task-length files: qa1/1k, qa5/1k")
    assert status["data.json"] == ("ok", "3 records")
    assert status["{2,4,8}needle/*.parquet"] == ("ok", "2 needles: 3 files")
    table = cli("eval", "data", str(root))
    assert table.returncode == 1 and "wrong" in table.stdout and "missing" in table.stdout
