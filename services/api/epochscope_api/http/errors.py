"""One error model for every error the API returns, and the handlers of the framework's own errors.

Validation errors keep FastAPI's shape (`detail` is a list of field errors with `loc`), minus the
echoed input, so a client names the bad field the same way everywhere. No traceback ever leaves.
"""

import logging

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from epochscope_api.http.body_limit import BodyTooLarge

log = logging.getLogger("epochscope.api.errors")


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    detail: str | list[FieldError]
    limit: str | None = Field(default=None, description="On a 429: the quota exceeded (active_jobs, datasets, ...).")


def error_responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI `responses` entries for the given status codes, all with the shared error model."""
    descriptions = {
        400: "The request body is not JSON.",
        401: "Missing or invalid bearer token.",
        404: "No such job for this user.",
        413: "The request body is larger than the server's limit; `detail` names it.",
        422: "A field is invalid; `detail` names it.",
        429: "A per-user quota is exceeded and nothing was done; `limit` names it, Retry-After says when to retry.",
        503: "The server could not finish in time; nothing was stored.",
    }
    return {code: {"model": ErrorResponse, "description": descriptions[code]} | _headers(code) for code in codes}


def _headers(code: int) -> dict:
    if code != status.HTTP_429_TOO_MANY_REQUESTS:
        return {}
    retry_after = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
    return {"headers": {"Retry-After": retry_after}}


NOT_FOUND = error_responses(404)  # for the routes of one job
QUOTA = error_responses(429)  # for the write routes (rate limit, quotas)


def error_response(
    status_code: int, detail: str, headers: dict[str, str] | None = None, limit: str | None = None
) -> JSONResponse:
    body = ErrorResponse(detail=detail, limit=limit).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status_code, headers=headers)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [FieldError(loc=list(e["loc"]), msg=e["msg"], type=e["type"]) for e in exc.errors()]
    body = ErrorResponse(detail=errors).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


def http_status_and_detail(exc: StarletteHTTPException) -> tuple[int, str]:
    """FastAPI answers any failure to read a body "400 There was an error parsing the body"; say why instead."""
    cause = exc.__cause__
    if isinstance(cause, BodyTooLarge):
        return status.HTTP_413_CONTENT_TOO_LARGE, str(cause)
    if isinstance(cause, UnicodeDecodeError):
        return exc.status_code, f"the request body is not valid UTF-8: {cause.reason} at byte {cause.start}"
    return exc.status_code, str(exc.detail)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = dict(exc.headers or {})
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        headers["Allow"] = allowed_methods(request)
    return error_response(*http_status_and_detail(exc), headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
