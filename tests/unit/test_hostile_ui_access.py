"""Issue 23, item 6: a reader on a shared UI neither changes the settings everyone uses nor sees
the server's figures of everyone or its paths. Pages run in Streamlit's AppTest, signed in as the
trusted-proxy mode sets up a session; the services refuse a forged save whatever a page shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from app.database import session_scope
from app.models import Question
from app.services.access import NotAllowed, Principal
from app.settings import get_settings
from ui import prefs as prefs_store

VIEWS = Path(__file__).resolve().parents[2] / "ui" / "views"
BOB = Principal("bob", frozenset({"staff"}))
ROOT = Principal("root", frozenset({"admins"}), admin=True)
ENDPOINT, MODEL = "http://10.1.2.3:8000/v1", "/srv/models/scout-fp8"


@pytest.fixture
def shared_ui(monkeypatch, scoutlens_home):
    """A signed-in UI whose operator chose an endpoint and a model folder; Streamlit's upload
    cap is put back afterwards (the settings page changes it in this process)."""
    monkeypatch.setenv("SCOUTLENS_UI_AUTH", "header")
    monkeypatch.setenv("SCOUTLENS_UI_SHARED", "1")
    prefs_store.save(prefs_store.Prefs("openai", ENDPOINT, MODEL, 200))
    before = config.get_option("server.maxUploadSize")
    yield scoutlens_home
    config.set_option("server.maxUploadSize", before)


def as_person(name: str, who: Principal) -> AppTest:
    at = AppTest.from_file(str(VIEWS / f"{name}_page.py"), default_timeout=60)
    at.session_state["signed_in_as"] = who
    at.run()
    assert not at.exception, at.exception
    return at


def shown(at: AppTest) -> str:
    """Every text the page put on screen, help texts of its figures included."""
    parts = [m.value for m in at.markdown] + [i.value for i in at.info]
    parts += [e.value for e in at.error] + [s.value for s in at.success]
    parts += [f"{m.label} {m.value} {m.proto.help}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def test_a_reader_sees_the_settings_without_a_form_nor_server_paths(shared_ui):
    at = as_person("settings", BOB)
    assert not at.button and not at.number_input and not at.text_input and not at.radio
    text = shown(at)
    assert "openai" in text and "scout-fp8" in text and "200 MB" in text
    assert "10.1.2.3" not in text and "/srv/models" not in text


def test_a_forged_save_by_a_reader_is_refused_and_changes_nothing(shared_ui):
    before = (shared_ui / "ui.json").read_text()
    with pytest.raises(NotAllowed, match="only an admin"):
        prefs_store.save(prefs_store.Prefs("openai", ENDPOINT, MODEL, 1), who=BOB)
    assert (shared_ui / "ui.json").read_text() == before
    assert prefs_store.load().upload_mb == 200


def test_an_admin_saves_the_upload_limit_and_the_server_takes_it_at_once(shared_ui):
    at = as_person("settings", ROOT)
    at.number_input[0].set_value(7)
    at.button[0].click().run()
    assert not at.error and "saved" in at.success[0].value
    assert json.loads((shared_ui / "ui.json").read_text())["upload_mb"] == 7
    assert config.get_option("server.maxUploadSize") == 7


def _answer(owner: str, prompt: int, cached: int) -> Question:
    return Question(corpus_name="c", conversation=f"conv-{owner}", question="q?", answer="a",
                    mode="full", backend="openai", model=MODEL, owner=owner,
                    usage={"prompt_tokens": prompt, "cached_tokens": cached})


@pytest.fixture
def answers(shared_ui):
    with session_scope(get_settings().db_url) as session:
        session.add_all([_answer("alice", 1000, 900), _answer("alice", 1000, 900),
                         _answer("bob", 100, 0)])


def test_the_engine_page_shows_a_reader_only_their_own_answers_and_no_path(answers):
    at = as_person("engine", BOB)
    figures = {m.label: m.value for m in at.metric}
    assert figures == {"Your answers": "1", "Your cache hit rate": "0.0%"}
    assert not at.dataframe
    text = shown(at)
    s = get_settings()
    for secret in (str(s.kv_dir), str(s.home_dir), "10.1.2.3", "/srv/models"):
        assert secret not in text, secret


def test_the_engine_page_shows_an_admin_the_whole_server(answers):
    at = as_person("engine", ROOT)
    figures = {m.label: m.value for m in at.metric}
    assert figures["Answers"] == "3" and figures["Hit rate of answers"] == "85.7%"
    assert "10.1.2.3" in shown(at)


def test_the_evals_page_names_no_endpoint_to_a_reader(shared_ui):
    labels = [b.label for b in as_person("evals", BOB).button]
    assert "Start run against the endpoint" in labels and not any(ENDPOINT in x for x in labels)
    assert any(ENDPOINT in x for x in (b.label for b in as_person("evals", ROOT).button))
