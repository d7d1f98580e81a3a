"""The API's refusals, OpenAI-shaped (`{"error": {"message", "type", "param", "code"}}`), and
how any UserError becomes one (a NotSignedIn is a 401, anything else a 400)."""

from __future__ import annotations

from starlette.responses import JSONResponse

from app.servers.signin import NotSignedIn
from common.errors import UserError

RETRY_AFTER_S = 5


class ApiError(UserError):
    """A request refused with an HTTP status and an OpenAI error type."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.kind, self.code = status, param, kind, code

    def body(self) -> dict:
        return {"error": {"message": " ".join(str(self).split()), "type": self.kind,
                          "param": self.param, "code": self.code}}


class ClientGone(Exception):
    """The client of a streamed answer went away, or the server stops: generation stops
    (nothing is stored)."""


TOO_DEEP = ApiError(400, "the body nests arrays or objects too deeply for a chat request")
STOPPING = ApiError(503, "the server is stopping: ask again when it is back",
                    kind="server_error", code="server_stopping")


def as_api_error(exc: UserError) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, NotSignedIn):
        return ApiError(401, str(exc), kind="authentication_error")
    return ApiError(400, str(exc))


def error_response(exc: ApiError) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status in (429, 503) else None
    return JSONResponse(exc.body(), exc.status, headers=headers)
