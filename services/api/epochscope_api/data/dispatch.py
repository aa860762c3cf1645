"""The dispatcher's SQL: its lock, lost attempts, free trainer slots, the queued jobs by user, an attempt recorded.

The pass that uses them (the order of turns, fencing, re-queueing) is service_layer/queue.py's.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from epochscope_api.data.job_queue import as_owner

LOCK_KEY = 0x65706F6368  # pg advisory lock: one dispatching API replica at a time
ACTIVE = "('dispatched', 'running')"

# Attempts lost this pass, with why: the trainer's lease ran out, or it never started what it was sent.
LEASE_LOST = "coalesce(t.last_heartbeat_at, q.dispatched_at) < now() - make_interval(secs => $1)"
LOST_ATTEMPTS = (
    "SELECT q.job_id, q.owner_id, q.attempt_id, q.attempt_no, q.trainer_id, q.token_expires_at,"
    f" {LEASE_LOST} AS lease_lost"
    " FROM job_queue q LEFT JOIN trainers t ON t.trainer_id = q.trainer_id"
    f" WHERE q.state IN {ACTIVE} AND ({LEASE_LOST}"
    "  OR (q.state = 'dispatched' AND q.dispatched_at < now() - make_interval(secs => $2)"
    "   AND t.attempt_id IS DISTINCT FROM q.attempt_id))"
    " ORDER BY q.job_id FOR UPDATE OF q"
)


@dataclass(frozen=True)
class LostAttempt:
    job_id: uuid.UUID
    owner_id: str
    attempt_id: uuid.UUID
    attempt_no: int
    trainer_id: str
    token_expires_at: datetime
    lease_lost: bool  # False: its trainer heartbeats but never started it


@dataclass(frozen=True)
class QueuedUser:
    owner_id: str
    active: int  # jobs dispatched or running
    last_served: datetime | None  # the last dispatch of one of theirs
    first_queued: datetime


@dataclass(frozen=True)
class DispatchedRow:
    attempt_no: int
    start_payload: str | None  # None if the job has no stored start
    token_expires_at: datetime


async def take_dispatch_lock(conn: asyncpg.Connection) -> bool:
    """The transaction's advisory lock: False when another replica is dispatching."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY))


async def lost_attempts(conn: asyncpg.Connection, lease_s: float, start_timeout_s: float) -> list[LostAttempt]:
    """Attempts whose trainer's lease ran out, or dispatched more than `start_timeout_s` ago and not started; their
    queue rows locked."""
    return [LostAttempt(**dict(row)) for row in await conn.fetch(LOST_ATTEMPTS, lease_s, start_timeout_s)]


async def end_attempt(conn: asyncpg.Connection, attempt_id: uuid.UUID, outcome: str) -> None:
    await conn.execute(
        "UPDATE job_attempts SET ended_at = now(), outcome = $2 WHERE attempt_id = $1", attempt_id, outcome
    )


async def requeue(conn: asyncpg.Connection, job_id: uuid.UUID, reason: str) -> None:
    """The job waits for its next attempt, `reason` its last error."""
    await conn.execute(
        "UPDATE job_queue SET state = 'queued', attempt_id = NULL, trainer_id = NULL, last_error = $2"
        " WHERE job_id = $1",
        job_id,
        reason,
    )


async def waiting_jobs(conn: asyncpg.Connection, limit: int) -> list[uuid.UUID]:
    """The first `limit` queued jobs, oldest first."""
    rows = await conn.fetch("SELECT job_id FROM job_queue WHERE state = 'queued' ORDER BY queued_at LIMIT $1", limit)
    return [row["job_id"] for row in rows]


@dataclass(frozen=True)
class FreeTrainer:
    trainer_id: str
    free: int
    sealing_key: str  # its X25519 public key, from its heartbeat: the start's job token is sealed to it


async def free_slots(conn: asyncpg.Connection, lease_s: float) -> list[FreeTrainer]:
    """Live trainers (fresh heartbeat) with a sealing key and free slots, most free first. A trainer that published
    no sealing key gets no job (its token could only go in the clear): the jobs wait in the queue."""
    free = "least(t.slots - count(q.job_id), t.free_slots)"
    rows = await conn.fetch(
        f"SELECT t.trainer_id, {free} AS free, t.sealing_key FROM trainers t"
        f" LEFT JOIN job_queue q ON q.trainer_id = t.trainer_id AND q.state IN {ACTIVE}"
        " WHERE t.last_heartbeat_at >= now() - make_interval(secs => $1) AND t.sealing_key IS NOT NULL"
        f" GROUP BY t.trainer_id HAVING {free} > 0 ORDER BY 2 DESC, t.trainer_id",
        lease_s,
    )
    return [FreeTrainer(row["trainer_id"], int(row["free"]), row["sealing_key"]) for row in rows]


async def queued_users(conn: asyncpg.Connection) -> list[QueuedUser]:
    """Each user with a queued job: their active jobs, last dispatch and oldest queued job."""
    rows = await conn.fetch(
        "SELECT w.owner_id,"
        f" (SELECT count(*) FROM job_queue a WHERE a.owner_id = w.owner_id AND a.state IN {ACTIVE}) AS active,"
        " (SELECT max(dispatched_at) FROM job_queue a WHERE a.owner_id = w.owner_id) AS last_served,"
        " min(w.queued_at) AS first_queued"
        " FROM job_queue w WHERE w.state = 'queued' GROUP BY w.owner_id"
    )
    return [QueuedUser(**dict(row)) for row in rows]


async def queued_job_of(conn: asyncpg.Connection, owner: str, skip: int) -> uuid.UUID | None:
    """The user's oldest queued job after the first `skip`, or None."""
    return await conn.fetchval(
        "SELECT job_id FROM job_queue WHERE owner_id = $1 AND state = 'queued' ORDER BY queued_at, job_id"
        " OFFSET $2 LIMIT 1",
        owner,
        skip,
    )


async def mark_dispatched(
    conn: asyncpg.Connection, job_id: uuid.UUID, owner: str, attempt_id: uuid.UUID, trainer: str
) -> DispatchedRow:
    """The job's queue row as a new attempt on `trainer`, and its stored start, read as its owner (row-level
    security: the dispatcher reads one user's start at a time, naming them)."""
    row = await conn.fetchrow(
        "UPDATE job_queue SET state = 'dispatched', attempt_id = $2, attempt_no = attempt_no + 1, trainer_id = $3,"
        " dispatched_at = now(), fraction_done = NULL WHERE job_id = $1 RETURNING attempt_no, token_expires_at",
        job_id,
        attempt_id,
        trainer,
    )
    async with as_owner(conn, owner):
        payload = await conn.fetchval("SELECT payload FROM job_start_payloads WHERE job_id = $1", job_id)
    return DispatchedRow(row["attempt_no"], payload, row["token_expires_at"])


async def insert_attempt(
    conn: asyncpg.Connection, attempt_id: uuid.UUID, job_id: uuid.UUID, attempt_no: int, trainer: str
) -> None:
    await conn.execute(
        "INSERT INTO job_attempts (attempt_id, job_id, attempt_no, trainer_id) VALUES ($1, $2, $3, $4)",
        attempt_id,
        job_id,
        attempt_no,
        trainer,
    )
