"""Transactional outbox: events are written with the change that caused them, then relayed to Kafka.

`enqueue` runs inside the caller's transaction, so the job row and its start event commit together; an event
over the broker's message size is refused there (EventTooLarge), before anything is stored.
`OutboxRelay` publishes committed rows in order and marks them; with Kafka down it keeps retrying,
so a job is delayed, never lost. A row the broker refuses for its content (too large, say) is a poison pill,
not an outage: it is set aside with the reason, its job marked failed, and the rows behind it go on.
Several API replicas can relay at once (FOR UPDATE SKIP LOCKED).

A job's token is in its start event only until the event is published: the transaction that marks a row published
(or set aside) also removes the token from its payload, and rows published more than `retention` ago are deleted.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from epochscope_api.bus.event_size import encoded_within
from epochscope_api.data.job_queue import end_in_queue, end_job
from epochscope_api.data.outbox import (
    NOTIFY_CHANNEL,
    delete_published,
    insert_outbox_row,
    mark_published,
    mark_set_aside,
    pending_rows,
)
from epochscope_api.queue.wakeup import Wakeup
from epochscope_schemas.events import Envelope, JobStartEvent, JobStatus, parse_event

log = logging.getLogger("epochscope.api.outbox")

PUBLISH_BATCH = 100  # outbox rows per publishing transaction
CLEANUP_EVERY_S = 600.0  # how often published rows past their retention are deleted
DEFAULT_RETENTION = timedelta(days=7)


# Errors that say this message can never be published: set it aside. Anything else may pass on a retry.
REFUSED_FOR_CONTENT = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError, InvalidTopicError)


async def enqueue(conn: asyncpg.Connection, topic: str, event: Envelope, max_bytes: int) -> None:
    """Queue the event in the caller's transaction; EventTooLarge if its encoding exceeds `max_bytes`."""
    payload = encoded_within(event, max_bytes)
    await insert_outbox_row(conn, topic, str(event.job_id), payload.decode())


class OutboxRelay:
    """Background task: wake on NOTIFY (or every `poll_seconds`), publish pending rows, mark them.

    `make_producer` makes a producer not started yet: the first one, and a fresh one after broker trouble.
    Published rows (their token already removed) are deleted once older than `retention`.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        make_producer: Callable[[], AIOKafkaProducer],
        poll_seconds: float,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self._pool = pool
        self._make_producer = make_producer
        self._poll_seconds = poll_seconds
        self._retention = retention
        self._next_cleanup = 0.0
        self._producer: AIOKafkaProducer | None = None
        self.broker_reachable = False

    async def run(self) -> None:
        backoff = self._poll_seconds
        try:
            async with Wakeup(self._pool, NOTIFY_CHANNEL) as wakeup:
                while True:
                    try:
                        await self._producer_started()  # connect eagerly: readiness reports the broker
                        while await self._publish_batch():
                            pass
                        await self._cleanup_due()
                        backoff = self._poll_seconds
                    except Exception as exc:  # broker or database trouble: retry, never drop
                        self.broker_reachable = False
                        log.warning("outbox relay: %s: %s; retrying in %.1fs", type(exc).__name__, exc, backoff)
                        await self._reset_producer()
                        backoff = min(backoff * 2, 30.0)
                    await wakeup.wait(backoff)
        finally:
            await self._reset_producer()

    async def _cleanup_due(self) -> None:
        now = asyncio.get_running_loop().time()
        if now >= self._next_cleanup:
            await delete_published(self._pool, self._retention)
            self._next_cleanup = now + CLEANUP_EVERY_S

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
            rows = await pending_rows(conn, PUBLISH_BATCH)
            if not rows:
                return False
            producer = await self._producer_started()
            outcomes = await asyncio.gather(*(self._send(producer, row) for row in rows), return_exceptions=True)
            refused = {row["id"]: exc for row, exc in zip(rows, outcomes, strict=True) if isinstance(exc, Exception)}
            trouble = [exc for exc in refused.values() if not isinstance(exc, REFUSED_FOR_CONTENT)]
            if trouble:
                raise trouble[0]  # the broker or the network: retry the whole batch, in order
            published = [row for row in rows if row["id"] not in refused]
            await mark_published(conn, published)
            for row in rows:
                if row["id"] in refused:
                    await _set_aside(conn, row, refused[row["id"]])
            log.info("outbox relay: published %d event(s), set %d aside", len(rows) - len(refused), len(refused))
            return len(rows) == PUBLISH_BATCH

    @staticmethod
    async def _send(producer: AIOKafkaProducer, row: asyncpg.Record) -> None:
        delivery = await producer.send(row["topic"], value=row["payload"].encode(), key=row["key"].encode())
        await delivery


async def _set_aside(conn: asyncpg.Connection, row: asyncpg.Record, error: Exception) -> None:
    """Mark the row as never to be published, with the reason; a job whose start it was is failed with it."""
    reason = f"the event bus refused the job's start event ({len(row['payload'])} bytes): {type(error).__name__}"
    log.error("outbox relay: set aside row %d of %s: %s", row["id"], row["topic"], reason)
    await mark_set_aside(conn, row, reason)
    try:
        event = parse_event(row["payload"])
    except ValueError:
        return
    if not isinstance(event, JobStartEvent):
        return
    # The queue row ends only if this start's attempt is still current (a start of no attempt: while still queued).
    unaddressed = event.attempt_id is None
    ended = await end_in_queue(conn, event.job_id, reason, queued_only=unaddressed, attempt_id=event.attempt_id)
    if ended or unaddressed:
        await end_job(conn, event.job_id, event.user_id, JobStatus.FAILED, reason)
