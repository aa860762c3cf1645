"""The API's entrypoint: app factory, lifespan (pool, outbox relay) and the uvicorn runner."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI

from epochscope_api.db import create_pool
from epochscope_api.outbox import OutboxRelay
from epochscope_api.routers import health, jobs, predictions
from epochscope_api.settings import ApiSettings, get_settings


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(settings.database_url, settings.db_pool_min, settings.db_pool_max)
        app.state.relay = OutboxRelay(app.state.pool, settings.kafka, settings.outbox_poll_seconds)
        relay_task = asyncio.create_task(app.state.relay.run(), name="outbox-relay")
        try:
            yield
        finally:
            relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay_task
            await app.state.pool.close()

    app = FastAPI(
        title="Epochscope API",
        version="0.1.0",
        description="Fine-tuning jobs and the predictions their models make, epoch by epoch.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    for router in (health.router, jobs.router, predictions.router):
        app.include_router(router)
    return app


def run() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="info")
