"""The backend registry: a backend is one module in engine/backends/ that registers itself; the
factory (app.services.backends.make_backend), the UI's settings check and the error for an unknown
name all read the registry, so a new module is the only edit."""

from __future__ import annotations

import sys
import textwrap

import pytest

import engine.backends
from app.services import backends
from engine import registry
from engine.types import EngineError

# a whole backend in one module: it registers under a new name and builds from the config
PLUGIN = '''
from engine.registry import BackendConfig, register


class Echo:
    name = "echo"
    vision = False
    concurrent = True

    def __init__(self, config: BackendConfig):
        self.config = config


@register("echo")
def build(config: BackendConfig) -> Echo:
    return Echo(config)
'''


@pytest.fixture
def fresh_registry(monkeypatch):
    """The registry as a new process sees it: nothing discovered, no backend module imported
    (the registry as it was, discovered, comes back afterwards)."""
    registry.discover()
    monkeypatch.setattr(registry, "_builders", {})
    monkeypatch.setattr(registry, "_discovered", False)
    for name in [m for m in sys.modules if m.startswith("engine.backends.")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.fixture
def echo_module(tmp_path, monkeypatch, fresh_registry):
    """A module file dropped beside engine/backends' own (on the package's path, as a new file
    in that folder would be); nothing else is edited."""
    (tmp_path / "echo.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.setattr(engine.backends, "__path__", [*engine.backends.__path__, str(tmp_path)])
    yield
    sys.modules.pop("engine.backends.echo", None)
    vars(engine.backends).pop("echo", None)


def test_the_registry_lists_exactly_todays_backends(fresh_registry):
    assert registry.names() == ("embedded", "openai")
    assert tuple(backends.BACKENDS) == ("embedded", "openai")
    assert " | ".join(backends.BACKENDS) == "embedded | openai"


def test_an_unknown_name_is_the_same_one_line_error(scoutlens_home):
    with pytest.raises(EngineError) as caught:
        backends.make_backend("llamacpp")
    assert str(caught.value) == "unknown backend 'llamacpp': embedded | openai"


def test_the_openai_backend_still_needs_an_endpoint(scoutlens_home, monkeypatch):
    monkeypatch.delenv("SCOUTLENS_ENDPOINT", raising=False)
    with pytest.raises(EngineError) as caught:
        backends.make_backend("openai")
    assert str(caught.value) == "the openai backend needs --endpoint URL (or SCOUTLENS_ENDPOINT)"


def test_an_endpoint_still_chooses_the_openai_backend(scoutlens_home):
    chosen = backends.make_backend(endpoint="http://127.0.0.1:9/v1", model="served")
    assert (chosen.name, chosen.model, chosen.base_url) == ("openai", "served",
                                                            "http://127.0.0.1:9/v1")


def test_a_new_module_is_selectable_by_name_with_no_other_edit(echo_module, scoutlens_home):
    assert registry.names() == ("echo", "embedded", "openai")
    assert "echo" in backends.BACKENDS  # the live view: the UI's check sees it too
    chosen = backends.make_backend("echo", endpoint="http://127.0.0.1:9/v1", model="m",
                                   prefill_chunk=64, reuse=False, weights=False)
    assert chosen.name == "echo"
    config = chosen.config
    assert (config.endpoint, config.model, config.prefill_chunk, config.reuse,
            config.weights) == ("http://127.0.0.1:9/v1", "m", 64, False, False)
    with pytest.raises(EngineError, match=r"^unknown backend 'nope': echo \| embedded \| openai$"):
        backends.make_backend("nope")


def test_the_ui_settings_accept_a_registered_backend(echo_module):
    from ui.prefs import Prefs

    assert Prefs(backend="echo").validated().backend == "echo"
    with pytest.raises(EngineError, match="backend must be one of echo, embedded, openai"):
        Prefs(backend="nope").validated()


def test_a_name_taken_by_another_module_is_refused(fresh_registry):
    registry.discover()

    def build(config):  # this test module, not engine.backends.openai
        raise AssertionError

    with pytest.raises(ValueError, match="'openai' is already registered"):
        registry.register("openai")(build)


def test_settings_are_passed_down_lazily(scoutlens_home, monkeypatch, fresh_registry):
    """The default model (a conversion) and the KV folder are found only by a backend that asks
    for them: an endpoint builds without touching either."""
    monkeypatch.delenv("SCOUTLENS_MODEL", raising=False)
    seen = {}

    @registry.register("probe")
    def build(config):
        seen["config"] = config
        return config

    asked = []
    monkeypatch.setattr(backends, "bundled_model_dir", lambda: asked.append("bundled") or "b")
    backends.make_backend("probe")
    assert asked == []
    config = seen["config"]
    assert config.model is None and config.default_model() == "b" and asked == ["bundled"]
    assert config.kv_dir() == scoutlens_home / "cache" / "kv"
