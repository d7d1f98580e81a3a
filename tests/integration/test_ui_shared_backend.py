"""The UI's shared in-process model on the real bundled model: a long job takes it per request,
so other sessions' questions get it between two cells. The UI's pure pieces:
tests/unit/test_ui_render.py."""

from __future__ import annotations


def test_a_long_job_takes_the_model_per_request(model_dir):
    """Between two eval cells another session's question gets the model."""
    import threading

    from engine.embedded import EmbeddedBackend
    from engine.types import CompletionRequest
    from ui.shared_backend import Shared, TakingTurns

    shared = Shared(EmbeddedBackend(str(model_dir), kv_dir=None), threading.Lock())
    job = TakingTurns(shared)
    assert job.name == "embedded" and job.window == shared.backend.window
    done = job.stream(CompletionRequest("Say hi.", max_tokens=4)).collect()
    assert done.text and not shared.lock.locked()  # released as soon as the cell is answered
    assert shared.lock.acquire(blocking=False)
    shared.lock.release()
