"""Errors under /openai/ in OpenAI's shape (`{"error": {message, type, param, code}}`) with the status the official
SDK maps to its exception classes: a field error is a 400 naming its `param` (not FastAPI's 422), a quota a 429 with
Retry-After. Epochscope's own API keeps its error shape: each handler the app already has is wrapped, and answers as
before outside /openai/."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from epochscope_api.errors import DatabaseBusy, DomainError, QuotaExceeded, UnusableUpload, UploadTooLarge
from epochscope_api.http.errors import allowed_methods, http_status_and_detail
from epochscope_api.openai_compat.errors import OpenAIError
from epochscope_api.openai_compat.params import param_path

log = logging.getLogger("epochscope.api.errors")
OPENAI_PREFIX = "/openai/"
Handler = Callable[[Request, Any], Awaitable[Any]]
_TYPES = {401: "invalid_request_error", 429: "rate_limit_exceeded"}


def on_openai_surface(path: str) -> bool:
    return path.startswith(OPENAI_PREFIX)


def openai_response(error: OpenAIError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=headers)


def _error_type(status_code: int) -> str:
    return "server_error" if status_code >= 500 else _TYPES.get(status_code, "invalid_request_error")


def _param_of(loc: tuple[str | int, ...]) -> str | None:
    return param_path(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)


async def _openai_error(_: Request, exc: OpenAIError) -> JSONResponse:
    return openai_response(exc)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    param = _param_of(tuple(first["loc"]))
    message = f"{param}: {first['msg']}" if param else first["msg"]
    return openai_response(OpenAIError(400, message, param=param, code="invalid_value"))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status_code, detail = http_status_and_detail(exc)
    error = OpenAIError(status_code, detail, type=_error_type(status_code))
    headers = dict(exc.headers or {})
    if status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return openai_response(error, headers)


def _domain_error(status_of: Callable[[DomainError], int]) -> Handler:
    async def handle(_: Request, exc: DomainError) -> JSONResponse:
        status_code = status_of(exc)
        if status_code == status.HTTP_422_UNPROCESSABLE_CONTENT:
            status_code = status.HTTP_400_BAD_REQUEST  # the SDK's BadRequestError, as OpenAI answers bad input
        param = "file" if isinstance(exc, UnusableUpload | UploadTooLarge) else None
        code = exc.limit if isinstance(exc, QuotaExceeded) else None
        error = OpenAIError(status_code, str(exc), param=param, code=code, type=_error_type(status_code))
        if isinstance(exc, QuotaExceeded):
            return openai_response(error, {"Retry-After": str(exc.retry_after)})
        return openai_response(error, exc.headers() if isinstance(exc, DatabaseBusy) else None)

    return handle


async def _statement_timeout(_: Request, exc: asyncpg.QueryCanceledError) -> JSONResponse:
    error = OpenAIError(503, "the database took too long: try again shortly", type="server_error")
    return openai_response(error, DatabaseBusy().headers())


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return openai_response(OpenAIError(500, "internal error", type="server_error"))


def _by_surface(openai_handler: Handler, own_handler: Handler) -> Handler:
    async def handle(request: Request, exc: Any) -> Any:
        if on_openai_surface(request.url.path):
            return await openai_handler(request, exc)
        return await own_handler(request, exc)

    return handle


def install_openai_errors(app: FastAPI, status_of: Callable[[DomainError], int]) -> None:
    """Call after the app's own handlers are installed: it wraps them."""
    app.add_exception_handler(OpenAIError, _openai_error)
    wrapped: dict[type, Handler] = {
        RequestValidationError: _validation_error,
        StarletteHTTPException: _http_error,
        DomainError: _domain_error(status_of),
        asyncpg.QueryCanceledError: _statement_timeout,
        Exception: _unexpected_error,
    }
    for exc_class, openai_handler in wrapped.items():
        app.add_exception_handler(exc_class, _by_surface(openai_handler, app.exception_handlers[exc_class]))
