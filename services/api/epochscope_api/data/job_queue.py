"""The job queue's rows outside the dispatcher's pass: a job queued, or ended with a reason.

The queue row (no row-level security) and the job row (its owner's, under RLS) end together: `end_in_queue` makes
the queue row final with its reason and removes its stored start (`job_start_payloads`, under RLS: as its owner),
`end_job` the job row, as its owner, and tells the job's live stream. The
dispatcher (a lost lease, a start never taken, a start that cannot be rebuilt), a cancel of a queued job and the
outbox relay (a start the broker refuses) all end jobs through these two (service_layer/queue.py).
"""

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg

from epochscope_schemas.events import JobStatus
from epochscope_schemas.notify import ChangeKind, job_channel

NOTIFY_CHANNEL = "job_queue"


async def insert_queue_row(
    conn: asyncpg.Connection, job_id: uuid.UUID, owner: str, start_payload: str, token_expires_at: datetime
) -> None:
    """Queue the job in its owner's transaction: its start event (no job token: the dispatcher mints one per
    attempt), kept under row-level security, and the expiry its tokens get; the dispatcher is woken."""
    await conn.execute(
        "INSERT INTO job_queue (job_id, owner_id, token_expires_at) VALUES ($1, $2, $3)",
        job_id,
        owner,
        token_expires_at,
    )
    await conn.execute(
        "INSERT INTO job_start_payloads (job_id, owner_id, payload) VALUES ($1, $2, $3)", job_id, owner, start_payload
    )
    await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")


@asynccontextmanager
async def as_owner(conn: asyncpg.Connection, owner: str) -> AsyncIterator[None]:
    """`owner` as the row-level security user inside; the caller's (a request's, or none in a background loop) after."""
    caller = await conn.fetchval("SELECT current_setting('app.user_id', true)")
    await conn.execute("SELECT set_config('app.user_id', $1, true)", owner)
    try:
        yield
    finally:
        await conn.execute("SELECT set_config('app.user_id', $1, true)", caller or "")


async def end_in_queue(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    reason: str,
    *,
    queued_only: bool = False,
    attempt_id: uuid.UUID | None = None,
) -> bool:
    """Make the job's queue row final with `reason` (only while queued, or while `attempt_id` is its current
    attempt, when asked) and drop its stored start; whether it was ended now."""
    owner = await conn.fetchval(
        "UPDATE job_queue SET state = 'final', attempt_id = NULL, finished_at = now(),"
        " last_error = $2 WHERE job_id = $1 AND state <> 'final' AND (NOT $3 OR state = 'queued')"
        " AND ($4::uuid IS NULL OR attempt_id = $4) RETURNING owner_id",
        job_id,
        reason,
        queued_only,
        attempt_id,
    )
    if owner is None:
        return False
    async with as_owner(conn, owner):
        await conn.execute("DELETE FROM job_start_payloads WHERE job_id = $1", job_id)
    return True


async def end_job(conn: asyncpg.Connection, job_id: uuid.UUID, owner: str, status: JobStatus, message: str) -> None:
    """The job row final (unless it already is), as its owner under row-level security, and its stream told."""
    async with as_owner(conn, owner):
        await conn.execute(
            "UPDATE jobs SET status = $2, status_message = $3, finished_at = now(), updated_at = now()"
            " WHERE job_id = $1 AND status IN ('queued', 'running')",
            job_id,
            status.value,
            message,
        )
    await notify_status(conn, job_id, status.value)


async def notify_status(conn: asyncpg.Connection, job_id: uuid.UUID, status: str) -> None:
    """Tell the job's live stream its status changed, as the writer does."""
    body = json.dumps({"job_id": str(job_id), "kind": ChangeKind.STATUS, "status": status})
    await conn.execute("SELECT pg_notify($1, $2)", job_channel(job_id), body)
