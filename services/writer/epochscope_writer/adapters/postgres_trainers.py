"""Postgres adapter of the heartbeat recorder: the `trainers` table, on a connection of its own (the batches' is
busy in their transactions), opened on first use and dropped when it fails. The table holds no user data and is
not under row-level security; the API's role only reads it. A trainer's sealing key (its X25519 public key) is
recorded with each heartbeat."""

import contextlib

import asyncpg

from epochscope_schemas.scheduling import TrainerHeartbeat
from epochscope_writer.service_layer.ports import DatabaseUnavailable

RECORD = (
    "INSERT INTO trainers AS t"
    " (trainer_id, device, memory_bytes, slots, free_slots, attempt_id, last_heartbeat_at, sealing_key)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::int[], $6::uuid[], $7::timestamptz[],"
    " $8::text[])"
    " ON CONFLICT (trainer_id) DO UPDATE SET device = excluded.device, memory_bytes = excluded.memory_bytes,"
    " slots = excluded.slots, free_slots = excluded.free_slots, attempt_id = excluded.attempt_id,"
    " last_heartbeat_at = excluded.last_heartbeat_at, sealing_key = excluded.sealing_key"
    " WHERE t.last_heartbeat_at < excluded.last_heartbeat_at"
)
_FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class PostgresTrainers:
    def __init__(self, dsn: str, connect_timeout: float) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._conn: asyncpg.Connection | None = None

    async def record(self, beats: list[TrainerHeartbeat]) -> None:
        if not beats:
            return
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
            await self._conn.execute(
                RECORD,
                [b.trainer_id for b in beats],
                [b.device for b in beats],
                [b.memory_bytes for b in beats],
                [b.slots for b in beats],
                [b.free_slots for b in beats],
                [b.attempt_id for b in beats],
                [b.occurred_at for b in beats],
                [b.sealing_key for b in beats],
            )
            if any(b.free_slots for b in beats):
                await self._conn.execute("NOTIFY job_queue")
        except _FAILURES as exc:
            if self._conn is not None:
                self._conn.terminate()
                self._conn = None
            raise DatabaseUnavailable(f"database: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(*_FAILURES):
                await self._conn.close(timeout=2)
            self._conn = None
