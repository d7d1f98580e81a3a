"""`scoutlens serve api`: an OpenAI-compatible chat endpoint whose models are corpora, so any
OpenAI client or chat UI can ask one (`model="corpus:myrepo"`), answered by the ask service
(the same retrieval, context, model and citation checks as `scoutlens ask`).

- `GET /v1/models`: the corpora the caller may read, as `corpus:NAME`.
- `POST /v1/chat/completions`: the last user message is the question. Earlier turns continue a
  stored conversation when their questions are exactly that conversation's (the answers come
  from the store, not from what the client sends back), or the one named by a `conversation`
  field; otherwise the question is answered on its own, and the response says so in
  `scoutlens.notes`. System messages are not used (scoutlens has its own instructions).
  The answer carries its sources in the text and as `choices[0].message.citations` (streamed:
  in the last chunk's `delta.citations`); `usage` has prompt, completion and cached tokens.
- Errors are OpenAI-shaped (`{"error": {"message", "type", "param", "code"}}`): 400 for a bad
  body, 404 for a model that is no corpus, 401 for a shared server's request that did not come
  through the signing-in proxy, 429 (with Retry-After) when the caller has MAX_PER_PERSON
  questions being answered or waiting, 503 when the server has MAX_IN_FLIGHT, or while it stops.
- `POST /v1/analyses`, `GET /v1/analyses`, `GET /v1/analyses/{id}`: a briefing, an extraction
  or a comparison over a whole corpus, run, listed and exported (app.servers.analyses).

One slow caller never stalls the rest: no request holds a worker thread while it waits for the
model (app.servers.bridge). A question's model work runs on a limiter of its own, and the quick
work (who asks, the corpus list, checks before asking) on another, so `/v1/models` answers while
every question waits. On SIGTERM (`serve`), every stream in flight ends at once with a "server
is stopping" error event and [DONE], generation stops, and the process ends within GRACE_S.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.servers.admission import MAX_IN_FLIGHT, MAX_PER_PERSON, InFlight
from app.servers.analyses import routes as analyses_routes
from app.servers.answers import completion_body
from app.servers.bridge import ChatStream, stream_events, whole_answer
from app.servers.chat_request import PREFIX, read_chat
from app.servers.conversations import prepare
from app.servers.errors import ApiError, as_api_error, error_response
from app.servers.hosts import host_ok
from app.servers.runtime import Runtime
from app.services.access import Who
from common.errors import UserError

QUICK_THREADS = 8  # threads for the quick work (sign-in, listing, checks), apart from asks
GRACE_S = 3.0  # after SIGTERM: how long requests that are not streams may take to finish


def create_app(rt: Runtime, who_of: Callable[[Request], Who], loopback_only: bool = True,
               max_in_flight: int = MAX_IN_FLIGHT,
               max_per_person: int = MAX_PER_PERSON) -> Starlette:
    """The ASGI app. `who_of(request)` is who asks (blocking: run in a thread; raises
    NotSignedIn on a shared server); the person is settled before the body is read.
    `loopback_only`: refuse requests addressed to any other host name. `app.state.in_flight`
    is what `serve` stops on SIGTERM."""
    in_flight = InFlight(max_in_flight, max_per_person)
    quick = anyio.CapacityLimiter(QUICK_THREADS)
    asks = anyio.CapacityLimiter(max_in_flight)  # never the one that runs out: admission does

    async def run_quick(func: Callable, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(func, *args, limiter=quick)

    def refused(request: Request) -> Response | None:
        if loopback_only and not host_ok(request.headers.get("host", "")):
            return error_response(ApiError(421, "invalid Host header: this server answers "
                                                "requests to 127.0.0.1 or localhost only"))
        return None

    async def models(request: Request) -> Response:
        from app.services.catalog import list_corpora

        if (no := refused(request)) is not None:
            return no
        try:
            who = await run_quick(who_of, request)
            rows = await run_quick(lambda: list_corpora(who=who))
        except UserError as exc:
            return error_response(as_api_error(exc))
        return JSONResponse({"object": "list", "data": [
            {"id": PREFIX + c.name, "object": "model", "owned_by": c.owner,
             "created": _epoch(c.created_at)} for c in rows]})

    async def chat(request: Request) -> Response:
        if (no := refused(request)) is not None:
            return no
        try:
            who = await run_quick(who_of, request)
            req = await read_chat(request)
            await run_quick(prepare, req, who)
            asking = in_flight.admit(who)
        except UserError as exc:
            return error_response(as_api_error(exc))
        if req.stream:
            return ChatStream(stream_events(rt, req, who, asking),
                              lambda: in_flight.release(asking))
        try:
            result = await whole_answer(rt, req, who, asking, asks)
        except UserError as exc:
            return error_response(as_api_error(exc))
        finally:
            in_flight.release(asking)
        return JSONResponse(completion_body(req, result, f"chatcmpl-{uuid.uuid4().hex}",
                                            int(time.time())))

    app = Starlette(routes=[Route("/v1/models", models, methods=["GET"]),
                            Route("/v1/chat/completions", chat, methods=["POST"]),
                            *analyses_routes(rt, who_of, in_flight, asks, run_quick, refused)])
    app.state.in_flight = in_flight
    return app


def serve(app: Starlette, host: str, port: int) -> None:
    """Run the app until SIGTERM or Ctrl-C: the peer address is the socket's (never
    X-Forwarded-For's, app.services.signin), connections still sending their request are
    bounded (app.servers.http), and stopping ends the streams in flight at once and any other
    request within GRACE_S."""
    import uvicorn

    from app.servers.http import bounded_http
    from app.services.signin import PEER_FROM_SOCKET

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            app.state.in_flight.stop_all()  # before uvicorn waits for the connections
            await super().shutdown(sockets)

    Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                          timeout_graceful_shutdown=GRACE_S, http=bounded_http(),
                          **PEER_FROM_SOCKET)).run()


def _epoch(iso: str) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(iso).timestamp())
    except ValueError:
        return 0
