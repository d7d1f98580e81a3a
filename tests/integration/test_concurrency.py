"""Many users on one database (a SQLite file, then PostgreSQL): concurrent ingests and asks from
threads and from processes lose no write and never fail with "database is locked".

The model is a stand-in (FakeOpenAI from tests/fakes.py, a real HTTP server on loopback that
streams a fixed answer): what is under test is the app's services and the database, not a model.
The load part is the benchmark's own driver (tests/loadgen.py), bounded (a few dozen asks).
"""

from __future__ import annotations

import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
from fakes import FakeOpenAI
from loadgen import ingest_inputs, make_inputs, one_ask, run_load
from sqlalchemy import func, select

from app.database import session_scope
from app.models import Question, Source
from app.services import ingesting, snapshot
from app.services.history import history
from app.settings import get_settings

pytestmark = pytest.mark.usefixtures("db_url")


@pytest.fixture
def server():
    fake = FakeOpenAI(max_model_len=8192).start()
    yield fake
    fake.close()


def _folder(root: Path, name: str, files: int) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"{name}_{i}.md").write_text(f"# {name} {i}\n\n" + f"Line about {name}.\n" * 80)
    return folder


def _sources(name: str) -> list[str]:
    return sorted(d.path for d in snapshot.load_documents(name)[1])


def test_parallel_ingests_of_different_corpora(tmp_path):
    names = [f"team{i}" for i in range(4)]
    folders = [_folder(tmp_path, n, 25) for n in names]
    errors: list[BaseException] = []
    gate = threading.Barrier(len(names), timeout=60)

    def run(folder: Path, name: str) -> None:
        try:
            gate.wait()
            ingesting.ingest([folder], name)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=a) for a in zip(folders, names, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == []
    for n in names:
        assert _sources(n) == sorted(f"{n}_{i}.md" for i in range(25))
    with session_scope(get_settings().db_url) as s:
        assert s.scalar(select(func.count()).select_from(Source)) == 100


def test_parallel_asks_while_ingesting_lose_no_answer(tmp_path, server):
    inputs = make_inputs(tmp_path / "in")
    ingest_inputs(inputs)
    busy = _folder(tmp_path, "busy", 60)
    ingest_error: list[BaseException] = []

    def ingest_meanwhile() -> None:  # writes while the asks read and write
        try:
            ingesting.ingest([busy], "busy")
            (busy / "busy_0.md").write_text("changed\n")
            ingesting.ingest([busy], "busy")
        except BaseException as exc:  # noqa: BLE001 - asserted below
            ingest_error.append(exc)

    writer = threading.Thread(target=ingest_meanwhile)
    writer.start()
    result = run_load(server.url, workers=8, asks=32, corpora=list(inputs))
    writer.join(300)
    assert ingest_error == []
    assert result.errors == [] and result.ok == 32 and result.lost == 0
    assert len(history(limit=1000)) == 32
    assert len(_sources("busy")) == 60
    # both paths ran: the small corpus packed whole, the big one through retrieval
    modes = {r.corpus: r.mode for r in history(limit=1000)}
    assert modes == {"small": "full", "big": "retrieval"}


def _ingest_and_ask(folder: str, name: str, endpoint: str, asks: int) -> list[str]:
    """One user's process: ingest its own corpus, then ask about it (spawned, fresh imports)."""
    ingesting.ingest([Path(folder)], name)
    answers = []
    for i in range(asks):
        _, answer, _, error = one_ask(endpoint, name, f"[{name}-{i}] What is line {i} about?")
        assert not error, error
        answers.append(answer)
    return answers


def test_processes_migrate_ingest_and_ask_on_a_fresh_database(tmp_path, server):
    """Three processes start together on a database with no schema yet: it is migrated once,
    each ingests its corpus and asks, and every row is there."""
    names = ["p0", "p1", "p2"]
    folders = [str(_folder(tmp_path, n, 10)) for n in names]
    with ProcessPoolExecutor(3, mp_context=get_context("spawn")) as pool:
        done = list(pool.map(_ingest_and_ask, folders, names, [server.url] * 3, [2] * 3))
    assert all(a == ["The answer is 42."] * 2 for a in done)
    for n in names:
        assert _sources(n) == sorted(f"{n}_{i}.md" for i in range(10))
    with session_scope(get_settings().db_url) as s:
        stored = sorted(s.scalars(select(Question.question)))
    assert stored == sorted(f"[{n}-{i}] What is line {i} about?" for n in names for i in range(2))
