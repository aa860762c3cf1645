"""The API's entrypoint: the app factory (bootstrap.py wires the adapters), the one mapping of domain errors to
HTTP responses, and the uvicorn runner."""

import logging
import sys

import asyncpg
import uvicorn
from asgi_correlation_id import CorrelationIdFilter, CorrelationIdMiddleware
from fastapi import Depends, FastAPI, Request, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from epochscope_api.auth.metrics_token import metrics_token_check
from epochscope_api.bootstrap import lifespan
from epochscope_api.errors import (
    BadCursor,
    BadParameter,
    CheckpointNotFound,
    DatabaseBusy,
    DatasetInUse,
    DatasetNotFound,
    DomainError,
    EventTooLarge,
    GraderTimedOut,
    JobNotFound,
    PredictionNotFound,
    QuotaExceeded,
    SampleNotFound,
    UnknownDatasets,
    UnusableUpload,
    UploadTooLarge,
    VerdictNotFound,
)
from epochscope_api.http.api_docs import install_api_docs
from epochscope_api.http.body_limit import BodyLimit
from epochscope_api.http.errors import error_response, error_responses, install_error_handlers
from epochscope_api.http.request_metrics import RequestMetrics
from epochscope_api.http.security_headers import SecurityHeaders
from epochscope_api.openai_compat.error_handlers import install_openai_errors
from epochscope_api.openai_compat.objects import openai_error_responses
from epochscope_api.routers import (
    checkpoints,
    comparisons,
    datasets,
    estimate,
    exports,
    graders,
    health,
    jobs,
    limits,
    models,
    openai_files,
    openai_graders,
    openai_job_history,
    openai_jobs,
    predictions,
    preference_pairs,
    rollouts,
    stream,
    timeline,
    verdicts,
)
from epochscope_api.settings import ApiSettings, load_settings
from epochscope_api.ui import ui
from epochscope_runtime.log_config import configure_logging

DOMAIN_ERROR_STATUS: dict[type[DomainError], int] = {
    JobNotFound: status.HTTP_404_NOT_FOUND,
    CheckpointNotFound: status.HTTP_404_NOT_FOUND,
    SampleNotFound: status.HTTP_404_NOT_FOUND,
    PredictionNotFound: status.HTTP_404_NOT_FOUND,
    VerdictNotFound: status.HTTP_404_NOT_FOUND,
    BadCursor: status.HTTP_422_UNPROCESSABLE_CONTENT,
    BadParameter: status.HTTP_422_UNPROCESSABLE_CONTENT,
    UnknownDatasets: status.HTTP_422_UNPROCESSABLE_CONTENT,
    EventTooLarge: status.HTTP_413_CONTENT_TOO_LARGE,
    DatasetNotFound: status.HTTP_404_NOT_FOUND,
    DatasetInUse: status.HTTP_409_CONFLICT,
    UploadTooLarge: status.HTTP_413_CONTENT_TOO_LARGE,
    UnusableUpload: status.HTTP_422_UNPROCESSABLE_CONTENT,
    QuotaExceeded: status.HTTP_429_TOO_MANY_REQUESTS,
    DatabaseBusy: status.HTTP_503_SERVICE_UNAVAILABLE,
    GraderTimedOut: status.HTTP_503_SERVICE_UNAVAILABLE,
}


UPLOADS = frozenset({("POST", "/v1/datasets"), ("POST", "/openai/v1/files")})  # bounded as they stream


def status_of(error: DomainError) -> int:
    """The HTTP status a domain error is answered with."""
    return DOMAIN_ERROR_STATUS[type(error)]


async def _domain_error(_: Request, exc: DomainError) -> JSONResponse:
    if isinstance(exc, QuotaExceeded):
        return error_response(status_of(exc), str(exc), {"Retry-After": str(exc.retry_after)}, limit=exc.limit)
    if isinstance(exc, DatabaseBusy):
        return error_response(status_of(exc), str(exc), exc.headers())
    return error_response(status_of(exc), str(exc))


async def _statement_timeout(_: Request, exc: Exception) -> JSONResponse:
    """A statement past EPOCHSCOPE_DB_STATEMENT_TIMEOUT_MS was cancelled and its transaction rolled back."""
    busy = DatabaseBusy()
    return error_response(status_of(busy), "the database took too long: try again shortly", busy.headers())


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or load_settings()
    app = FastAPI(
        title="Epochscope API",
        version="0.1.0",
        description="Fine-tuning jobs and the predictions their models make, epoch by epoch.",
        lifespan=lifespan(settings),
        docs_url=None,  # install_api_docs serves them, from a pinned package
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(asyncpg.QueryCanceledError, _statement_timeout)
    install_openai_errors(app, status_of)  # wraps the handlers above: OpenAI's error shape under /openai/
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, exempt=UPLOADS)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
    app.add_middleware(SecurityHeaders)  # outermost: every response gets the headers
    metrics = RequestMetrics(excluded=frozenset({"/metrics", "/healthz", "/readyz"}))
    app.add_middleware(metrics.middleware)  # outermost: it times everything below it
    if settings.metrics_token is not None:
        check = metrics_token_check(settings.metrics_token.get_secret_value())
        app.add_api_route("/metrics", metrics.endpoint, include_in_schema=False, dependencies=[Depends(check)])
    routers = (  # the hottest read first: each request is matched against the routes in this order
        predictions,
        health,
        models,
        datasets,
        jobs,
        timeline,
        rollouts,
        stream,
        estimate,
        graders,
        limits,
        comparisons,
        exports,
        checkpoints,
        verdicts,
        preference_pairs,
    )
    for router in (module.router for module in routers):
        shared = error_responses(400, 401, 413, 422) if router is not health.router else None
        app.include_router(router, responses=shared)
    for router in (openai_files.router, openai_jobs.router, openai_job_history.router, openai_graders.router):
        app.include_router(router, responses=openai_error_responses(400, 401, "default"))
    app.include_router(ui.router)
    install_api_docs(app)
    return app


def served_app() -> FastAPI:
    """The app as `epochscope-api` serves it, built in each worker process: settings from the environment, JSON
    logs in which every record made while serving a request carries its id (`correlation_id`, as X-Request-ID)."""
    settings = load_settings()
    configure_logging("api", settings.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(CorrelationIdFilter(default_value=None))
    return create_app(settings)


def run() -> None:
    try:
        settings = load_settings()
    except ValidationError as exc:  # one line for the operator; never the values, which may be secrets
        sys.exit("epochscope-api: invalid settings: " + "; ".join(error["msg"] for error in exc.errors()))
    configure_logging("api", settings.log_level)
    uvicorn.run(
        "epochscope_api.main:served_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        loop="uvloop",  # named, not "auto": a missing one fails the start instead of serving on the slower ones
        http="httptools",
        log_config=None,
    )
