"""The trainers' heartbeats into the `trainers` table: the capacity the API's dispatcher reads.

A small loop of its own beside the writer's batches (its own consumer group and connection): heartbeats carry no
job and no token, only a trainer's id, device and free slots, so none of the job rules apply. The newest beat per
trainer wins (by `occurred_at`); a malformed one is skipped with a warning. A trainer id heard for the first time
(or freed) wakes the dispatcher. The table holds no user data and is not under row-level security; the API's role
only reads it.
"""

import asyncio
import contextlib
import logging

import asyncpg
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from epochscope_schemas.scheduling import TrainerHeartbeat
from epochscope_schemas.topics import HEARTBEATS_GROUP, TRAINER_HEARTBEATS
from epochscope_writer.settings import WriterSettings

log = logging.getLogger("epochscope.writer.heartbeats")

RECORD = (
    "INSERT INTO trainers AS t (trainer_id, device, memory_bytes, slots, free_slots, attempt_id, last_heartbeat_at)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::int[], $6::uuid[], $7::timestamptz[])"
    " ON CONFLICT (trainer_id) DO UPDATE SET device = excluded.device, memory_bytes = excluded.memory_bytes,"
    " slots = excluded.slots, free_slots = excluded.free_slots, attempt_id = excluded.attempt_id,"
    " last_heartbeat_at = excluded.last_heartbeat_at WHERE t.last_heartbeat_at < excluded.last_heartbeat_at"
)


def newest(values: list[bytes | None]) -> list[TrainerHeartbeat]:
    """The newest valid heartbeat per trainer among `values`."""
    beats: dict[str, TrainerHeartbeat] = {}
    for value in values:
        try:
            beat = TrainerHeartbeat.model_validate_json(value or b"")
        except ValidationError as exc:
            log.warning("heartbeat skipped: %d error(s)", exc.error_count())
            continue
        if beat.trainer_id not in beats or beats[beat.trainer_id].occurred_at < beat.occurred_at:
            beats[beat.trainer_id] = beat
    return list(beats.values())


async def record(conn: asyncpg.Connection, beats: list[TrainerHeartbeat]) -> None:
    if not beats:
        return
    await conn.execute(
        RECORD,
        [b.trainer_id for b in beats],
        [b.device for b in beats],
        [b.memory_bytes for b in beats],
        [b.slots for b in beats],
        [b.free_slots for b in beats],
        [b.attempt_id for b in beats],
        [b.occurred_at for b in beats],
    )
    if any(b.free_slots for b in beats):
        await conn.execute("NOTIFY job_queue")


async def record_heartbeats(settings: WriterSettings, stopping: asyncio.Event) -> None:
    """Until `stopping`: consume heartbeats and record them; broker or database trouble is retried."""
    while not stopping.is_set():
        consumer = AIOKafkaConsumer(
            TRAINER_HEARTBEATS, **settings.kafka.client_kwargs(), group_id=HEARTBEATS_GROUP, auto_offset_reset="latest"
        )
        conn: asyncpg.Connection | None = None
        try:
            await consumer.start()
            conn = await asyncpg.connect(settings.database_url, timeout=settings.writer_db_connect_timeout_s)
            while not stopping.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=500)
                await record(conn, newest([r.value for records in batch.values() for r in records]))
        except Exception as exc:
            log.warning("heartbeats: %s: %s; retrying", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=2.0)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
