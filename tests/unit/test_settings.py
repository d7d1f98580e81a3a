"""app/settings.py reads SCOUTLENS_* by pydantic-settings' rules without importing pydantic: a
value given beats the variable, which beats the default; names in any case; lists and mappings
as JSON; switches as words; a value that does not fit is one line naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import Settings, SettingsError


def test_given_then_variable_then_default(monkeypatch):
    monkeypatch.setenv("SCOUTLENS_TOKENIZER", "o200k")
    monkeypatch.setenv("scoutlens_workers", "3")  # any case, as pydantic-settings reads it
    monkeypatch.setenv("SCOUTLENS_ADMIN_GROUPS", '["ops", "sec"]')
    monkeypatch.setenv("SCOUTLENS_SHARED_TOKENIZERS", '{"scout": "llama4:/m/tokenizer.model"}')
    monkeypatch.setenv("SCOUTLENS_DENSE", "Yes")
    monkeypatch.setenv("SCOUTLENS_KV_MEMORY_GB", "1.5")
    monkeypatch.setenv("SCOUTLENS_HOME", "/srv/data")
    monkeypatch.setenv("SCOUTLENS_NOT_A_SETTING", "x")  # ignored
    s = Settings(tokenizer="cl100k")
    assert s.tokenizer == "cl100k" and s.workers == 3 and s.admin_groups == ["ops", "sec"]
    assert s.shared_tokenizers == {"scout": "llama4:/m/tokenizer.model"}
    assert s.dense is True and s.kv_memory_gb == 1.5 and s.home == Path("/srv/data")
    monkeypatch.delenv("SCOUTLENS_TOKENIZER")
    monkeypatch.delenv("SCOUTLENS_ADMIN_GROUPS")
    fresh = Settings()
    assert fresh.tokenizer == "cl100k" and fresh.admin_groups == ["admins"]
    assert fresh.prefill_chunk is None and fresh.endpoint is None
    fresh.admin_groups.append("x")  # a default list is each object's own
    assert Settings().admin_groups == ["admins"]
    with pytest.raises(Exception):  # settings are read once and then fixed  # noqa: B017
        fresh.tokenizer = "o200k"  # type: ignore[misc]


@pytest.mark.parametrize(("name", "value", "says"), [
    ("MAX_IMAGE_PIXELS", "abc", "valid integer"),
    ("PREFILL_CHUNK", "0", "greater than or equal to 1"),
    ("MAX_IMAGE_PIXELS", "0", "greater than or equal to 1"),
    ("DENSE", "maybe", "valid boolean"),
    ("KV_DISK_GB", "lots", "valid number"),
    ("ADMIN_GROUPS", "admins", "JSON"),
    ("AUTH_PROXY_IPS", '{"a": 1}', "list[str]"),
    ("SHARED_TOKENIZERS", '["a"]', "dict[str, str]"),
])
def test_a_value_that_does_not_fit_names_the_variable(monkeypatch, name, value, says):
    monkeypatch.setenv(f"SCOUTLENS_{name}", value)
    with pytest.raises(SettingsError) as err:
        Settings()
    assert str(err.value).startswith(f"SCOUTLENS_{name}={value!r}: ") and says in str(err.value)


def test_given_values_are_checked_too(monkeypatch):
    assert Settings(auth_proxy_ips=("10.0.0.1",)).auth_proxy_ips == ["10.0.0.1"]
    monkeypatch.setenv("SCOUTLENS_WORKERS", "4.0")  # an integral number, as pydantic takes it
    assert Settings().workers == 4
    with pytest.raises(SettingsError):
        Settings(max_images=-1)
    with pytest.raises(SettingsError):
        Settings(workers="two")
    with pytest.raises(TypeError):
        Settings(no_such_setting=1)


def test_a_command_starts_without_pydantic():
    """pydantic is no longer imported to read the settings (0.25-0.3 s of every start)."""
    code = ("import sys\nfrom app.settings import get_settings\nget_settings().cache_dir\n"
            "import app.services.packing\n"
            "assert not any(m.split('.')[0] == 'pydantic' for m in sys.modules), 'pydantic'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
