"""The answer's worker thread bridged to the event loop, so that no request holds a worker
thread while it waits for the model: a whole answer is awaited from a daemon thread with a
place on the asks' limiter; a streamed one hands its deltas over an async channel as
chat.completion.chunk events. The server stopping ends either at once (a 503, or an error
event and [DONE]) and stops generation at its next delta."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from starlette.responses import StreamingResponse

from app.servers.admission import Asking
from app.servers.answers import (
    ask_chat,
    citations_of,
    extra_of,
    finish_of,
    sources_text,
    usage_of,
)
from app.servers.chat_request import PREFIX, ChatRequest
from app.servers.daemon import Abandoned, run_daemon
from app.servers.errors import STOPPING, ApiError, ClientGone, as_api_error
from app.servers.runtime import Runtime
from app.services.access import Who
from common.errors import UserError


class ChatStream(StreamingResponse):
    """A streamed answer that gives its place back when the response ends, however it ends
    (its generator may never start when the client left first)."""

    def __init__(self, body: AsyncIterator[bytes], release: Callable[[], None]):
        super().__init__(body, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache"})
        self._release = release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def whole_answer(rt: Runtime, req: ChatRequest, who: Who, asking: Asking,
                       limiter: anyio.CapacityLimiter):
    """A whole answer, from a daemon thread with a place on the asks' limiter. The server
    stopping answers at once (503) and leaves the thread to stop at its next delta, or with
    the process."""
    stopped = anyio.Event()
    asking.wake = stopped.set
    try:
        return await run_daemon(ask_chat, rt, req, who, asking.check, name="scoutlens-api-ask",
                                limiter=limiter, finished=stopped)
    except (ClientGone, Abandoned):
        raise STOPPING from None
    except BaseException:
        asking.gone.set()
        raise


def _sse(data: dict | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


async def stream_events(rt: Runtime, req: ChatRequest, who: Who,
                        asking: Asking | None = None) -> AsyncIterator[bytes]:
    """The answer as chat.completion.chunk events: the role, the text as it is generated, the
    sources with the finish reason, usage when asked for, then [DONE]. The question runs in a
    thread of its own, handing deltas over an async channel: waiting for them holds no
    thread. The server stopping ends the stream at once with an error event and [DONE]."""
    asking = asking or Asking()
    done, stop = object(), object()
    send, receive = anyio.create_memory_object_stream[Any](math.inf)
    token = anyio.lowlevel.current_token()
    outcome: dict[str, Any] = {}

    def put(item: Any) -> None:
        """From the worker thread; ClientGone when the reader is no more."""
        try:
            anyio.from_thread.run_sync(send.send_nowait, item, token=token)
        except Exception:  # the reader closed, or the loop ended
            raise ClientGone from None

    def hand_over(delta: str) -> None:
        asking.check()  # the client left, or the server stops: stop generating, store nothing
        put(delta)

    def work() -> None:
        try:
            outcome["result"] = ask_chat(rt, req, who, hand_over)
        except ClientGone:
            pass
        except UserError as exc:
            outcome["error"] = exc
        except Exception as exc:  # a bug: said in one line, the stream still ends properly
            outcome["error"] = ApiError(500, f"internal error: {type(exc).__name__}: "
                                             f"{(str(exc).splitlines() or [''])[0][:200]}",
                                        kind="server_error")
        finally:
            with contextlib.suppress(ClientGone):
                put(done)

    def wake() -> None:
        with contextlib.suppress(anyio.BrokenResourceError):
            send.send_nowait(stop)

    asking.wake = wake
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": PREFIX + req.corpus}

    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> bytes:
        return _sse(head | {"choices": [{"index": 0, "delta": delta,
                                         "finish_reason": finish}]} | extra)

    with receive:
        if asking.stopped:
            item = stop
        else:
            threading.Thread(target=work, name="scoutlens-api-ask", daemon=True).start()
            try:
                yield chunk({"role": "assistant", "content": ""})
                while (item := await receive.receive()) not in (done, stop):
                    yield chunk({"content": item})
            except BaseException:  # cancelled: the client disconnected
                asking.gone.set()
                raise
    if item is stop:
        yield _sse(STOPPING.body())
        yield _sse("[DONE]")
        return
    if "error" in outcome:
        yield _sse(as_api_error(outcome["error"]).body())
        yield _sse("[DONE]")
        return
    result = outcome["result"]
    yield chunk({"content": sources_text(result), "citations": citations_of(result)},
                finish_of(result), scoutlens=extra_of(result, req.notes))
    if req.include_usage:
        yield _sse(head | {"choices": [], "usage": usage_of(result)})
    yield _sse("[DONE]")
