"""Transactional outbox: events are written with the change that caused them, then relayed to Kafka.

`enqueue` runs inside the caller's transaction, so the job row and its start event commit together.
`OutboxRelay` publishes committed rows in order and marks them; with Kafka down it keeps retrying,
so a job is delayed, never lost. Several API replicas can relay at once (FOR UPDATE SKIP LOCKED).
"""

import asyncio
import logging
from collections.abc import Callable

import asyncpg
from aiokafka import AIOKafkaProducer

from epochscope_schemas.events import Envelope, encode_event

log = logging.getLogger("epochscope.api.outbox")

NOTIFY_CHANNEL = "outbox"
PUBLISH_BATCH = 100  # outbox rows per publishing transaction


async def enqueue(conn: asyncpg.Connection, topic: str, event: Envelope) -> None:
    await conn.execute(
        "INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)",
        topic,
        str(event.job_id),
        encode_event(event).decode(),
    )
    await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")


class OutboxRelay:
    """Background task: wake on NOTIFY (or every `poll_seconds`), publish pending rows, mark them.

    `make_producer` makes a producer not started yet: the first one, and a fresh one after broker trouble.
    """

    def __init__(self, pool: asyncpg.Pool, make_producer: Callable[[], AIOKafkaProducer], poll_seconds: float) -> None:
        self._pool = pool
        self._make_producer = make_producer
        self._poll_seconds = poll_seconds
        self._wakeup = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self.broker_reachable = False

    async def run(self) -> None:
        listener = await self._pool.acquire()
        await listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
        backoff = self._poll_seconds
        try:
            while True:
                try:
                    await self._producer_started()  # connect eagerly: readiness reports the broker
                    while await self._publish_batch():
                        pass
                    backoff = self._poll_seconds
                except Exception as exc:  # broker or database trouble: retry, never drop
                    self.broker_reachable = False
                    log.warning("outbox relay: %s: %s; retrying in %.1fs", type(exc).__name__, exc, backoff)
                    await self._reset_producer()
                    backoff = min(backoff * 2, 30.0)
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=backoff)
                except TimeoutError:
                    pass
                self._wakeup.clear()
        finally:
            await listener.remove_listener(NOTIFY_CHANNEL, self._on_notify)
            await self._pool.release(listener)
            await self._reset_producer()

    def _on_notify(self, *_: object) -> None:
        self._wakeup.set()

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._make_producer()
            try:
                await producer.start()
            except Exception:
                await producer.stop()
                raise
            self._producer = producer
            self.broker_reachable = True
        return self._producer

    async def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:
                log.debug("outbox relay: stopping producer: %s", exc)

    async def _publish_batch(self) -> bool:
        """Publish up to PUBLISH_BATCH pending rows; True when there may be more."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, topic, key, payload FROM outbox WHERE published_at IS NULL"
                " ORDER BY id FOR UPDATE SKIP LOCKED LIMIT $1",
                PUBLISH_BATCH,
            )
            if not rows:
                return False
            producer = await self._producer_started()
            deliveries = [
                await producer.send(row["topic"], value=row["payload"].encode(), key=row["key"].encode())
                for row in rows
            ]
            await asyncio.gather(*deliveries)
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
            )
            log.info("outbox relay: published %d event(s)", len(rows))
            return len(rows) == PUBLISH_BATCH
