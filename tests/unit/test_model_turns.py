"""One turn-taking lock on the model (app.servers.turns), written once: the API and MCP servers
take it through their Runtime, the web UI through its Shared backend, so an in-process model
(one KV buffer) serves one caller at a time whoever asks, and a server backend never queues."""

from __future__ import annotations

import threading

from fakes import ScriptedBackend

from app.servers.runtime import Runtime
from app.servers.turns import ModelTurns


def _overlap(turns: list, callers: int = 4, rounds: int = 5) -> int:
    """The most callers inside a turn at once, `callers` threads each taking `rounds` turns
    (round-robin over `turns`, each a context manager factory)."""
    inside, most, guard = 0, 0, threading.Lock()
    start = threading.Barrier(callers)

    def caller(i: int) -> None:
        nonlocal inside, most
        start.wait(5)
        for r in range(rounds):
            with turns[(i + r) % len(turns)]():
                with guard:
                    inside += 1
                    most = max(most, inside)
                threading.Event().wait(0.01)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return most


def test_the_api_mcp_and_ui_hand_out_one_lock_class_and_one_lock_per_backend():
    from ui.shared_backend import Shared

    assert Shared is ModelTurns  # the UI's turns are the servers' turns
    model = ScriptedBackend(concurrent=False)
    rt = Runtime()  # what `serve api` and `mcp` each hold
    rt.use(model)
    assert isinstance(rt.turns(), ModelTurns)
    assert rt.turns() is rt.turns() and rt.turns().lock is rt.turns().lock  # every caller's
    with rt.turn() as backend:
        assert backend is model and rt.turns().lock.locked()
    assert not rt.turns().lock.locked()


def test_callers_of_the_runtime_and_of_the_ui_take_turns_on_the_in_process_model():
    model = ScriptedBackend(concurrent=False)
    rt = Runtime()
    rt.use(model)
    ui = rt.turns()  # the UI's Shared for the same backend: the same lock
    assert _overlap([rt.turn, ui.turn]) == 1


def test_a_server_backend_never_queues():
    rt = Runtime()
    rt.use(ScriptedBackend(concurrent=True))
    assert _overlap([rt.turn], callers=3, rounds=3) > 1
    with rt.turn(), rt.turn() as again:  # a second caller gets it while the first holds it
        assert again.concurrent and not rt.turns().lock.locked()
