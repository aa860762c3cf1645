"""Postgres adapter: every statement the writer runs, under the writer role and row-level security.

The writer role reads a job only after naming it (`app.job_id`), and reads or writes a user's rows
only with that user set as `app.user_id` for the transaction, so the policies' WITH CHECK binds it.
asyncpg's errors stop here: the service layer sees RefusedInput or DatabaseUnavailable.
"""

import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NoReturn
from uuid import UUID

import asyncpg

from epochscope_schemas.events import (
    CheckpointDeletedEvent,
    Envelope,
    JobStatus,
    JobStatusEvent,
    ProgressEvent,
)
from epochscope_schemas.notify import job_channel
from epochscope_writer.adapters.postgres_tables import (
    ADVANCE_PROGRESS,
    APPLY_STATUS,
    DELETE_CHECKPOINTS,
    FINAL_STATUSES,
    PREDICTIONS_TABLE,
    PROGRESS_TABLE,
    TABLES,
)
from epochscope_writer.domain.prediction_struct import PredictionStruct
from epochscope_writer.service_layer.ports import (
    DatabaseUnavailable,
    JobState,
    NewPrediction,
    Notification,
    RefusedInput,
)

log = logging.getLogger("epochscope.writer")

# Data exceptions, integrity violations, RLS refusals: this input, not the database, is the problem.
_INPUT_ERROR_CLASSES = ("22", "23")
_INPUT_ERROR_STATES = ("42501",)
_UNREACHABLE = (OSError, asyncpg.InterfaceError, TimeoutError)


def is_input_error(exc: asyncpg.PostgresError) -> bool:
    state = exc.sqlstate or ""
    return state[:2] in _INPUT_ERROR_CLASSES or state in _INPUT_ERROR_STATES


class PostgresDatabase:
    """One connection, opened on first use and dropped when it fails, so the next batch reconnects."""

    def __init__(self, dsn: str, connect_timeout: float, command_timeout: float) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._conn: asyncpg.Connection | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator["PostgresEventStore"]:
        try:
            conn = await self._connection()
            async with conn.transaction():
                yield PostgresEventStore(conn)
        except asyncpg.PostgresError as exc:
            if is_input_error(exc):
                raise RefusedInput(f"{exc.sqlstate}: {exc}") from exc
            self._unavailable(exc)
        except _UNREACHABLE as exc:
            self._unavailable(exc)

    async def probe(self) -> None:
        try:
            await self._connection()
        except (asyncpg.PostgresError, *_UNREACHABLE) as exc:
            self._unavailable(exc)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close(timeout=2)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self._dsn, timeout=self._connect_timeout, command_timeout=self._command_timeout
            )
            log.info("connected to the database")
        return self._conn

    def _unavailable(self, exc: BaseException) -> NoReturn:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
        raise DatabaseUnavailable(f"database: {type(exc).__name__}: {exc}") from exc


class PostgresEventStore:
    """The EventStore port on one connection, inside the transaction PostgresDatabase opened."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        try:
            async with self._conn.transaction():
                yield
        except asyncpg.PostgresError as exc:
            if not is_input_error(exc):
                raise
            raise RefusedInput(f"{exc.sqlstate}: {exc}") from exc

    async def job_owner(self, job_id: UUID) -> str | None:
        """The job's owner, read by naming the job (the only way the writer role can see it)."""
        await self._conn.execute("SELECT set_config('app.job_id', $1, true)", str(job_id))
        return await self._conn.fetchval("SELECT owner_id FROM jobs WHERE job_id = $1", job_id)

    async def act_as(self, owner: str) -> None:
        """Make `owner` the RLS user for the rest of the transaction."""
        await self._conn.execute("SELECT set_config('app.user_id', $1, true)", owner)

    async def job_states(self, job_ids: list[UUID]) -> dict[UUID, JobState]:
        """The acting owner's jobs that exist, locked until the commit. Their queue rows first: the attempt
        checked here stays the current one while this transaction applies its events, since a re-queue (the
        dispatcher's UPDATE) waits for this commit, or this waits for the re-queue's and then reads the new attempt.
        FOR NO KEY UPDATE rather than FOR SHARE: `advance_queue` updates these rows later in the transaction, and
        two writers (a rebalance) each holding a share lock would deadlock upgrading it. Then the jobs: status
        updates from two writers serialize, and a DELETE waits for this commit (then cascades to what it wrote)
        instead of racing the inserts. Queue rows before job rows, each in job order, as the API's dispatcher and
        cancels take them, so they never deadlock."""
        attempts = dict(
            await self._conn.fetch(
                "SELECT job_id, attempt_id FROM job_queue WHERE job_id = ANY($1::uuid[])"
                " ORDER BY job_id FOR NO KEY UPDATE",
                job_ids,
            )
        )
        rows = await self._conn.fetch(
            "SELECT job_id, status FROM jobs WHERE job_id = ANY($1::uuid[]) ORDER BY job_id FOR NO KEY UPDATE",
            job_ids,
        )
        return {row["job_id"]: JobState(JobStatus(row["status"]), attempts.get(row["job_id"])) for row in rows}

    async def insert_predictions(self, owner: str, events: list[PredictionStruct]) -> list[NewPrediction]:
        found = await PREDICTIONS_TABLE.insert_new(self._conn, events, owner)
        return [NewPrediction(row["job_id"], row["step"], row["seq"]) for row in found]

    async def prediction_bytes(self, owner: str) -> int:
        """From the owner's row of `prediction_usage`, which migration 0042's trigger keeps with every insert."""
        return await self._conn.fetchval(
            "SELECT coalesce((SELECT bytes FROM prediction_usage WHERE owner_id = $1), 0)", owner
        )

    async def insert_rows(self, owner: str, events: list[Envelope]) -> list[UUID]:
        """Into the events' table (`TABLES`); a redelivered event is a no-op."""
        table = TABLES[type(events[0])]
        return [row["job_id"] for row in await table.insert_new(self._conn, events, owner)]

    async def insert_progress(self, owner: str, events: list[ProgressEvent]) -> list[UUID]:
        """Append to each job's progress history, then move jobs.progress forward to the batch's latest step (and,
        for a job in the queue, its attempt's fraction done)."""
        found = await PROGRESS_TABLE.insert_new(self._conn, events, owner)
        latest: dict[UUID, ProgressEvent] = {}
        for event in events:
            if event.job_id not in latest or latest[event.job_id].step < event.step:
                latest[event.job_id] = event
        for job_id, event in latest.items():
            await self._conn.execute(ADVANCE_PROGRESS, job_id, _progress_document(event), event.step)
            if event.attempt_id is not None and event.max_steps > 0:
                fraction = min(event.step / event.max_steps, 1.0)
                await self._conn.execute(ADVANCE_QUEUE_FRACTION, job_id, event.attempt_id, fraction)
        return [row["job_id"] for row in found]

    async def delete_checkpoints(self, owner: str, events: list[CheckpointDeletedEvent]) -> list[UUID]:
        """Mark pruned checkpoints (the row stays, its objects are gone); job ids of those newly marked."""
        rows = await self._conn.fetch(
            DELETE_CHECKPOINTS,
            [e.checkpoint_id for e in events],
            [e.job_id for e in events],
            [e.occurred_at for e in events],
        )
        return [row["job_id"] for row in rows]

    async def apply_statuses(self, events: list[JobStatusEvent]) -> list[JobStatusEvent]:
        """In order (APPLY_STATUS says by what); the job queue follows each event's attempt. Returns the events that
        changed their job (the rest met a final status, an earlier attempt's, or repeat the one applied)."""
        applied = []
        for event in events:
            changed = await self._conn.fetchval(
                APPLY_STATUS,
                event.job_id,
                event.status.value,
                event.message,
                event.occurred_at,
                json.dumps(event.metrics),
                FINAL_STATUSES,
                event.attempt_id,
            )
            if changed is not None:
                applied.append(event)
        await self._advance_queue(events)
        return applied

    async def _advance_queue(self, events: list[JobStatusEvent]) -> None:
        """The job queue follows its attempts: running when one starts, final (slot free) when it ends."""
        ended = False
        for event in events:
            if event.attempt_id is None:
                continue
            if event.status.is_final:
                ended = True
                await self._conn.execute(ADVANCE_QUEUE_FINAL, event.job_id, event.attempt_id, event.occurred_at)
                await self._conn.execute(
                    END_ATTEMPT, event.job_id, event.attempt_id, event.occurred_at, event.status.value
                )
            elif event.status is JobStatus.RUNNING:
                await self._conn.execute(ADVANCE_QUEUE_RUNNING, event.job_id, event.attempt_id, event.occurred_at)
                await self._conn.execute(START_ATTEMPT, event.job_id, event.attempt_id, event.occurred_at)
        if ended:
            await self._conn.execute("NOTIFY job_queue")  # a slot is free: the dispatcher's next pass now

    async def notify(self, notifications: list[Notification]) -> None:
        """Queue each (job, payload) on the job's channel in one round trip; delivered only if the commit happens."""
        if not notifications:
            return
        channels = [job_channel(job_id) for job_id, _ in notifications]
        bodies = [
            json.dumps({"job_id": str(job_id), **payload}, separators=(",", ":")) for job_id, payload in notifications
        ]
        await self._conn.execute(
            "SELECT pg_notify(channel, body) FROM unnest($1::text[], $2::text[]) AS n(channel, body)", channels, bodies
        )


ADVANCE_QUEUE_RUNNING = (
    "UPDATE job_queue SET state = 'running', started_at = coalesce(started_at, $3)"
    " WHERE job_id = $1 AND attempt_id = $2 AND state = 'dispatched'"
)
ADVANCE_QUEUE_FRACTION = (  # how far the current attempt is: running jobs' progress for the queue's estimates
    "UPDATE job_queue SET fraction_done = greatest(coalesce(fraction_done, 0), $3)"
    " WHERE job_id = $1 AND attempt_id = $2 AND state IN ('dispatched', 'running')"
)
START_ATTEMPT = "UPDATE job_attempts SET started_at = coalesce(started_at, $3) WHERE job_id = $1 AND attempt_id = $2"
END_ATTEMPT = (
    "UPDATE job_attempts SET ended_at = $3, outcome = $4 WHERE job_id = $1 AND attempt_id = $2 AND ended_at IS NULL"
)
ADVANCE_QUEUE_FINAL = (  # and its stored start removed, as its owner (the acting RLS user): never read
    "WITH ended AS (UPDATE job_queue SET state = 'final', finished_at = $3"
    " WHERE job_id = $1 AND attempt_id = $2 AND state IN ('dispatched', 'running') RETURNING job_id)"
    " DELETE FROM job_start_payloads WHERE job_id IN (SELECT job_id FROM ended)"
)


def _progress_document(event: ProgressEvent) -> str:
    """jobs.progress as JSON; a diverged loss (NaN, inf) becomes null, which jsonb can hold."""
    fields = event.model_dump(
        mode="json",
        include={"step", "max_steps", "epoch", "num_epochs", "loss", "learning_rate", "samples_per_second"},
    )
    for name in ("loss", "learning_rate", "samples_per_second"):
        value = getattr(event, name)
        fields[name] = value if value is not None and math.isfinite(value) else None
    fields["occurred_at"] = event.occurred_at.isoformat()
    return json.dumps(fields)
