"""`serve api`'s analyses: `POST /v1/analyses` runs one (a briefing, an extraction or a
comparison over a whole corpus, app.services.analysis) and answers its result JSON;
`GET /v1/analyses` lists the caller's, `GET /v1/analyses/{id}` gives one, or with
`?format=json|md|csv|xlsx` the file to download.

The body is the MCP tool's arguments (app.mcp.schemas.AnalyzeArgs), refused in one line
(400) as a chat body is. The analysis is owned by the signed-in person; a corpus, or an
analysis, the caller may not read is a 404, the same as one that does not exist. It is
admitted like a question (a place in flight, the person's share) and runs in a daemon
thread on the asks' limiter, taking the model's turn (app.servers.runtime): no request
holds a worker thread while it waits. The server stopping answers 503 at once and stops the
analysis between two model calls, and so does its client hanging up; it is left interrupted,
resumable with `"resume": ID`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.servers.admission import Asking, InFlight
from app.servers.chat_request import parsed, read_body, valid_text
from app.servers.daemon import Abandoned, run_daemon
from app.servers.errors import STOPPING, ApiError, ClientGone, as_api_error, error_response
from app.servers.runtime import Runtime
from app.services.access import Who
from common.errors import UserError

#: ?format= -> (the file's suffix, its media type)
FORMATS = {"json": (".json", "application/json"),
           "md": (".md", "text/markdown; charset=utf-8"),
           "csv": (".csv", "text/csv; charset=utf-8"),
           "xlsx": (".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")}
Quick = Callable[..., Awaitable[Any]]


def rendered(result: dict, fmt: str) -> bytes:
    """A stored result as the export module writes it to a file (CSV and XLSX: an
    extraction's table; UserError for another kind)."""
    from app.services.analysis.export import write

    with tempfile.TemporaryDirectory(prefix="scoutlens-export-") as folder:
        path = Path(folder) / f"analysis{FORMATS[fmt][0]}"
        write(result, path)
        return path.read_bytes()


def summary(stored) -> dict:
    """One analysis as listed (no result body: GET /v1/analyses/{id} has it)."""
    result = stored.result or {}
    return {"id": stored.analysis_id, "object": "analysis", "created_at": stored.created_at,
            "corpus": stored.corpus, "kind": stored.kind, "status": stored.status,
            "coverage": result.get("coverage"), "error": stored.error, "owner": stored.owner}


def readable(name: str, who: Who) -> None:
    """404 for a corpus that is not there or that `who` may not read (they read the same)."""
    from app.services.catalog import corpus_exists

    if not corpus_exists(name, who=who):
        raise ApiError(404, f"no such corpus {name!r} (GET /v1/models lists them as "
                            "corpus:NAME)", "corpus", code="corpus_not_found")


def checked(body: Any, who: Who):
    """The analysis a body asks for, checked (400) and its corpora readable (404)."""
    from app.mcp.schemas import AnalyzeArgs, one_line

    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        args = AnalyzeArgs.model_validate(body)
    except ValidationError as exc:
        raise ApiError(400, f"bad request: {one_line(exc)}") from None
    asked = args.asked()
    readable(asked.corpus, who)
    if asked.other is not None:
        readable(asked.other, who)
    return asked, args.resume


def run_analysis(rt: Runtime, asked, resume: str | None, who: Who, asking: Asking) -> dict:
    """In the worker thread: the analysis on the model's turn; between two calls it stops
    (left interrupted) when the server stops."""
    from app.services.analysis.run import analyze

    def progress(stage: str, done: int, total: int, detail: str) -> None:
        if asking.gone.is_set():  # said in the stored analysis's error
            raise ClientGone("the server stopped" if asking.stopped else "the client went away")

    with rt.turn() as backend:
        progress("", 0, 0, "")  # the server stopped while this waited for the model
        return analyze(asked, backend, who=who, progress=progress, resume=resume).to_json()


async def hang_up(request: Request, asking: Asking) -> None:
    """Wait for the client to hang up, then stop its analysis between two model calls (left
    interrupted, resumable). The body is read, so what the server hands the app next is
    `http.disconnect`: a plain response is not cancelled when its client leaves."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    asking.gone.set()


def api_error(exc: UserError) -> ApiError:
    """A service's refusal as the API's: what is not there (or not the caller's) is a 404."""
    from app.services.access import CorpusNotFound
    from app.services.analysis.store import NoSuchAnalysis

    if isinstance(exc, CorpusNotFound | NoSuchAnalysis):
        return ApiError(404, str(exc), code="not_found")
    return as_api_error(exc)


def routes(rt: Runtime, who_of: Callable[[Request], Who], in_flight: InFlight,
           asks: anyio.CapacityLimiter, run_quick: Quick,
           refused: Callable[[Request], Response | None]) -> list[Route]:
    """The analyses' routes, sharing the chat endpoint's sign-in, host check, admission and
    limiters (app.servers.api)."""

    async def create(request: Request) -> Response:
        if (no := refused(request)) is not None:
            return no
        try:
            who = await run_quick(who_of, request)
            body = valid_text(parsed(await read_body(request)))
            asked, resume = await run_quick(checked, body, who)
            asking = in_flight.admit(who)
        except UserError as exc:
            return error_response(api_error(exc))
        stopped = anyio.Event()
        asking.wake = stopped.set
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as watch:
                watch.start_soon(hang_up, request, asking)
                try:
                    result = await run_daemon(run_analysis, rt, asked, resume, who, asking,
                                              name="scoutlens-api-analyze", limiter=asks,
                                              finished=stopped)
                except Exception as exc:
                    failure = exc
                watch.cancel_scope.cancel()
        except BaseException:
            asking.gone.set()  # cancelled (the server's task ended): stop between two calls
            raise
        finally:
            in_flight.release(asking)
        if isinstance(failure, ClientGone | Abandoned):
            return error_response(STOPPING)
        if isinstance(failure, UserError):
            return error_response(api_error(failure))
        if failure is not None:
            raise failure
        return JSONResponse(result)

    async def listing(request: Request) -> Response:
        from app.services.analysis.store import analyses

        if (no := refused(request)) is not None:
            return no
        try:
            who = await run_quick(who_of, request)
            rows = await run_quick(analyses, request.query_params.get("corpus"), who)
        except UserError as exc:
            return error_response(api_error(exc))
        return JSONResponse({"object": "list", "data": [summary(r) for r in rows]})

    async def one(request: Request) -> Response:
        from app.services.analysis.store import analysis

        if (no := refused(request)) is not None:
            return no
        analysis_id = request.path_params["analysis_id"]
        fmt = request.query_params.get("format")
        try:
            if fmt is not None and fmt not in FORMATS:
                raise ApiError(400, f"format: one of {', '.join(FORMATS)}, not {fmt[:20]!r}",
                               "format")
            who = await run_quick(who_of, request)
            stored = await run_quick(analysis, analysis_id, who)
            if stored.result is None:
                raise ApiError(409, f"analysis {analysis_id} is {stored.status}: no result yet"
                                    + (f" ({stored.error})" if stored.error else "")
                                    + f"; resume it: POST /v1/analyses with its request and "
                                      f"\"resume\": \"{analysis_id}\"",
                               code="analysis_not_finished")
            if fmt is None:
                return JSONResponse(stored.result)
            data = await run_quick(rendered, stored.result, fmt)
        except UserError as exc:
            return error_response(api_error(exc))
        name = f"analysis-{stored.analysis_id}{FORMATS[fmt][0]}"
        return Response(data, media_type=FORMATS[fmt][1],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return [Route("/v1/analyses", create, methods=["POST"]),
            Route("/v1/analyses", listing, methods=["GET"]),
            Route("/v1/analyses/{analysis_id}", one, methods=["GET"])]
