"""The trainers' heartbeats into the `trainers` table: the capacity the API's dispatcher reads.

A small loop of its own beside the writer's batches (its own consumer group and connection): heartbeats carry no
job and no token, only a trainer's id, device and free slots, so none of the job rules apply. Each must be signed
with the trainers' key (`heartbeat_signing`) and recent: an unsigned, forged or stale one, or one that is not a
heartbeat at all, is dead-lettered with the reason and claims no capacity. The newest beat per trainer wins (by
`occurred_at`). A trainer with a free slot wakes the dispatcher. The table holds no user data and is not under
row-level security; the API's role only reads it.
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from epochscope_runtime.heartbeat_signing import age_refusal, signature_refusal
from epochscope_schemas.scheduling import TrainerHeartbeat
from epochscope_schemas.topics import HEARTBEATS_GROUP, TRAINER_HEARTBEATS
from epochscope_writer.adapters.kafka import send_dead_letters
from epochscope_writer.domain.dead_letters import DeadLetter, DeadLetterReason
from epochscope_writer.domain.decoding import KafkaRecord
from epochscope_writer.settings import WriterSettings

log = logging.getLogger("epochscope.writer.heartbeats")

RECORD = (
    "INSERT INTO trainers AS t (trainer_id, device, memory_bytes, slots, free_slots, attempt_id, last_heartbeat_at)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::int[], $6::uuid[], $7::timestamptz[])"
    " ON CONFLICT (trainer_id) DO UPDATE SET device = excluded.device, memory_bytes = excluded.memory_bytes,"
    " slots = excluded.slots, free_slots = excluded.free_slots, attempt_id = excluded.attempt_id,"
    " last_heartbeat_at = excluded.last_heartbeat_at WHERE t.last_heartbeat_at < excluded.last_heartbeat_at"
)


def verified_newest(
    records: list[KafkaRecord], key: str | None, max_age: timedelta, now: datetime
) -> tuple[list[TrainerHeartbeat], list[DeadLetter]]:
    """The newest verified heartbeat per trainer among `records`, and a dead letter for each one refused."""
    beats: dict[str, TrainerHeartbeat] = {}
    refused: list[DeadLetter] = []
    for record in records:
        try:
            beat = TrainerHeartbeat.model_validate_json(record.value or b"")
        except ValidationError as exc:
            refused.append(
                DeadLetter.for_record(record, DeadLetterReason.SCHEMA_INVALID, f"{exc.error_count()} error(s)")
            )
            continue
        if reason := signature_refusal(beat, key):
            refused.append(DeadLetter.for_record(record, DeadLetterReason.INVALID_SIGNATURE, reason))
            continue
        if reason := age_refusal(beat, now, max_age):
            refused.append(DeadLetter.for_record(record, DeadLetterReason.STALE_HEARTBEAT, reason))
            continue
        if beat.trainer_id not in beats or beats[beat.trainer_id].occurred_at < beat.occurred_at:
            beats[beat.trainer_id] = beat
    return list(beats.values()), refused


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


async def _publish(producer: AIOKafkaProducer, refused: list[DeadLetter]) -> None:
    for letter in refused:
        log.warning("heartbeat dead-lettered: %s: %s", letter.reason, letter.detail)
    await send_dead_letters(producer, refused)


async def record_heartbeats(settings: WriterSettings, stopping: asyncio.Event) -> None:
    """Until `stopping`: consume heartbeats, record the verified ones, dead-letter the rest; broker or database
    trouble is retried."""
    key = settings.trainer_key.get_secret_value() if settings.trainer_key else None
    max_age = timedelta(seconds=settings.trainer_heartbeat_max_age_s)
    while not stopping.is_set():
        kafka = settings.kafka.client_kwargs()
        consumer = AIOKafkaConsumer(TRAINER_HEARTBEATS, **kafka, group_id=HEARTBEATS_GROUP, auto_offset_reset="latest")
        producer = AIOKafkaProducer(**kafka, acks="all")
        conn: asyncpg.Connection | None = None
        try:
            await consumer.start()
            await producer.start()
            conn = await asyncpg.connect(settings.database_url, timeout=settings.writer_db_connect_timeout_s)
            while not stopping.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=500)
                records = [r for records in batch.values() for r in records]
                beats, refused = verified_newest(records, key, max_age, datetime.now(UTC))
                await _publish(producer, refused)
                await record(conn, beats)
        except Exception as exc:
            log.warning("heartbeats: %s: %s; retrying", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=2.0)
        finally:
            for client in (consumer, producer):
                with contextlib.suppress(Exception):
                    await client.stop()
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
