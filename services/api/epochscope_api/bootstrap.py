"""The API's one composition root (cosmicpython's bootstrap.py): it builds the adapters, namely the Postgres pool,
the live LISTEN hub, the outbox relay with its Kafka producer, the users' token verifier, the object store and the
catalog models' token counters, and hands them to the app for as long as it runs. Routes reach them through deps.py."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from epochscope_api.auth.stream_tickets import StreamTickets
from epochscope_api.auth.user_tokens import UserTokenVerifier
from epochscope_api.bus.outbox import OutboxRelay
from epochscope_api.data.db import PoolTimeouts, create_pool
from epochscope_api.data.retention import retention_policy, run_retention
from epochscope_api.datasets.token_counts import TokenCounter, load_token_counters
from epochscope_api.http.user_slots import UserSlots
from epochscope_api.live.hub import NotificationHub
from epochscope_api.queue.dispatcher import Dispatcher
from epochscope_api.service_layer.queue import DispatchSettings
from epochscope_api.settings import ApiSettings
from epochscope_runtime.kafka import KafkaSettings
from epochscope_runtime.object_store import ObjectStore, open_store


@dataclass(frozen=True)
class Adapters:
    pool: asyncpg.Pool
    hub: NotificationHub
    relay: OutboxRelay
    verifier: UserTokenVerifier
    store: ObjectStore
    token_counters: dict[str, TokenCounter]  # by catalog model id, for the models with a tokenizer_dir
    stream_tickets: StreamTickets
    stream_slots: UserSlots  # live streams open per user
    export_slots: UserSlots  # exports downloading per user


def kafka_producer_factory(kafka: KafkaSettings) -> Callable[[], AIOKafkaProducer]:
    """Makes the relay's producer; the relay makes a fresh one after a broker failure."""

    def make() -> AIOKafkaProducer:
        return AIOKafkaProducer(**kafka.producer_kwargs(), acks="all", linger_ms=0)

    return make


def dispatch_settings(settings: ApiSettings) -> DispatchSettings:
    return DispatchSettings(
        lease_s=settings.dispatch_lease_seconds,
        start_timeout_s=settings.dispatch_start_timeout_seconds,
        max_attempts=settings.dispatch_max_attempts,
        per_user=settings.dispatch_per_user,
        poll_s=settings.outbox_poll_seconds,
    )


def pool_timeouts(settings: ApiSettings) -> PoolTimeouts:
    return PoolTimeouts(
        acquire_s=settings.db_pool_timeout_seconds,
        statement_ms=settings.db_statement_timeout_ms,
        idle_in_transaction_ms=settings.db_idle_in_transaction_timeout_ms,
    )


@contextlib.asynccontextmanager
async def running_adapters(settings: ApiSettings) -> AsyncIterator[Adapters]:
    """Every adapter, the outbox relay running in the background, until the block ends."""
    store = open_store(settings.store)
    # a bad tokenizer_dir stops the start, as it should
    token_counters = load_token_counters(settings.models, settings.token_count_max_chars)
    pool = await create_pool(settings.database_url, settings.db_pool_min, settings.db_pool_max, pool_timeouts(settings))
    hub = NotificationHub(settings.database_url)
    relay = OutboxRelay(
        pool,
        kafka_producer_factory(settings.kafka),
        settings.outbox_poll_seconds,
        timedelta(hours=settings.outbox_retention_hours),
    )
    dispatcher = Dispatcher(
        pool,
        dispatch_settings(settings),
        settings.job_token_secret.get_secret_value(),
        settings.kafka.max_message_bytes,
        settings.dispatch_signing_key(),
    )
    retention = run_retention(pool, retention_policy(settings), settings.retention_every_seconds)
    tasks = [
        asyncio.create_task(relay.run(), name="outbox-relay"),
        asyncio.create_task(dispatcher.run(), name="dispatcher"),
        asyncio.create_task(retention, name="retention"),
    ]
    try:
        yield Adapters(
            pool=pool,
            hub=hub,
            relay=relay,
            verifier=UserTokenVerifier(settings),
            store=store,
            token_counters=token_counters,
            stream_tickets=StreamTickets(settings.job_token_secret.get_secret_value(), settings.stream_ticket_seconds),
            stream_slots=UserSlots(
                "streams_per_user", "live streams", settings.streams_per_user, settings.quota_retry_after_seconds
            ),
            export_slots=UserSlots(
                "exports_per_user", "exports", settings.exports_per_user, settings.quota_retry_after_seconds
            ),
        )
    finally:
        for task in reversed(tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await hub.close()
        await pool.close()


def lifespan(settings: ApiSettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the adapters live in `app.state.adapters` while the app serves."""

    @contextlib.asynccontextmanager
    async def serve(app: FastAPI) -> AsyncIterator[None]:
        async with running_adapters(settings) as adapters:
            app.state.adapters = adapters
            yield

    return serve
