"""Jobs: create (row and start event in one transaction), read, list in keyset pages, cancel, delete."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from epochscope_api.bus.outbox import enqueue
from epochscope_api.data.checkpoints import best_round
from epochscope_api.data.cursor import decode_cursor, encode_cursor, text
from epochscope_api.data.job_inputs import link_job_datasets
from epochscope_api.data.job_warnings import fetch_warnings
from epochscope_api.data.queue import queue_places
from epochscope_api.data.rounds import fetch_rounds
from epochscope_api.errors import BadParameter, JobNotFound
from epochscope_api.queue.entries import queue_job, withdraw_if_queued
from epochscope_api.response_models import Job, JobDetail, JobPage
from epochscope_runtime.command_signing import signed_cancel
from epochscope_runtime.job_token import JobTokenClaims, job_token_for
from epochscope_schemas.events import JobStartEvent, JobStatus
from epochscope_schemas.topics import JOB_COMMANDS

JOB_COLUMNS = (
    "job_id, name, metadata, status, status_message, config, metrics, progress, created_at, updated_at, started_at,"
    " finished_at"
)


def _job_of(row: asyncpg.Record) -> Job:
    return Job(**dict(row))


def _timestamp(value: Any) -> datetime:
    return datetime.fromisoformat(text(value))


def _uuid(value: Any) -> uuid.UUID:
    return uuid.UUID(text(value))


async def fetch_job(conn: asyncpg.Connection, job_id: uuid.UUID, lease_s: float) -> Job:
    """The job as the current user sees it (`lease_s`: the dispatcher's lease, for its place in the queue);
    JobNotFound if they have none."""
    row = await conn.fetchrow(f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1", job_id)
    if row is None:
        raise JobNotFound
    return (await with_places(conn, [_job_of(row)], lease_s))[0]


async def with_places(conn: asyncpg.Connection, jobs: list[Job], lease_s: float) -> list[Job]:
    """The queued ones with their place in line and estimated start (data/queue.py)."""
    queued = [job.job_id for job in jobs if job.status is JobStatus.QUEUED]
    places = await queue_places(conn, queued, lease_s) if queued else {}
    return [
        job.model_copy(update={"queue_position": p.position, "estimated_start_seconds": p.estimated_start_s})
        if (p := places.get(job.job_id))
        else job
        for job in jobs
    ]


async def ensure_job(conn: asyncpg.Connection, job_id: uuid.UUID) -> None:
    """JobNotFound unless the current user has this job (cheaper than fetch_job: no config to decode)."""
    if not await conn.fetchval("SELECT true FROM jobs WHERE job_id = $1", job_id):
        raise JobNotFound


async def fetch_job_detail(conn: asyncpg.Connection, job_id: uuid.UUID, lease_s: float) -> JobDetail:
    job = await fetch_job(conn, job_id, lease_s)
    rounds = await fetch_rounds(conn, job_id)
    warnings = [warning for _, warning in await fetch_warnings(conn, job_id)]
    metric = job.config.predictions.checkpoints.metric
    return JobDetail(**dict(job), rounds=rounds, warnings=warnings, best_round=best_round(rounds, metric))


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a list shows: a status, a case-insensitive part of the name, metadata pairs all present."""

    status: JobStatus | None = None
    name_contains: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def parse_metadata_filter(pairs: list[str]) -> dict[str, str]:
    """`key=value` pairs as a dict; BadParameter naming `metadata` for one without `=`."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadParameter("metadata", f"{pair[:100]!r} is not key=value")
        found[key] = value
    return found


def _like(fragment: str | None) -> str | None:
    if fragment is None:
        return None
    return "%" + fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def fetch_job_page(
    conn: asyncpg.Connection, where: JobFilter, limit: int, cursor: str | None, lease_s: float
) -> JobPage:
    """Up to `limit` of the current user's jobs that match `where`, newest first, after `cursor`."""
    before = decode_cursor(cursor, _timestamp, _uuid) if cursor else None
    rows = await conn.fetch(
        f"SELECT {JOB_COLUMNS} FROM jobs"
        " WHERE ($1::text IS NULL OR status = $1)"
        " AND ($2::timestamptz IS NULL OR (created_at, job_id) < ($2, $3::uuid))"
        " AND ($5::text IS NULL OR name ILIKE $5) AND metadata @> $6::jsonb"
        " ORDER BY created_at DESC, job_id DESC LIMIT $4",
        where.status,
        before[0] if before else None,
        before[1] if before else None,
        limit + 1,
        _like(where.name_contains),
        where.metadata,
    )
    items = await with_places(conn, [_job_of(row) for row in rows[:limit]], lease_s)
    last = items[-1] if len(rows) > limit else None
    return JobPage(
        items=items, next_cursor=encode_cursor([last.created_at.isoformat(), str(last.job_id)]) if last else None
    )


async def insert_job(
    conn: asyncpg.Connection,
    event: JobStartEvent,
    *,
    token_expires_at: datetime,
    max_event_bytes: int,
    lease_s: float,
) -> Job:
    """The new job's row, and its place in the job queue in the same transaction (EventTooLarge if its start
    event would not fit the event bus); the dispatcher sends the start when a trainer is free."""
    await conn.execute(
        "INSERT INTO jobs (job_id, owner_id, config, token_expires_at) VALUES ($1, $2, $3, $4)",
        event.job_id,
        event.user_id,
        event.config.model_dump(mode="json"),
        token_expires_at,
    )
    await link_job_datasets(conn, event.job_id, event.user_id, event.inputs)
    await queue_job(conn, event, token_expires_at, max_event_bytes)
    return await fetch_job(conn, event.job_id, lease_s)


async def cancel_unless_final(
    conn: asyncpg.Connection, job_id: uuid.UUID, user_id: str, max_event_bytes: int, token_secret: str
) -> Job:
    """The job as it was; a cancel event for the trainer is queued unless the job has already ended, signed with
    the job's token (recomputed from the row: the token is stored nowhere) so the trainer can verify it."""
    row = await conn.fetchrow(f"SELECT {JOB_COLUMNS}, token_expires_at FROM jobs WHERE job_id = $1", job_id)
    if row is None:
        raise JobNotFound
    fields = dict(row)
    claims = JobTokenClaims(job_id=job_id, user_id=user_id, expires_at=fields.pop("token_expires_at"))
    job = Job(**fields)
    if not job.status.is_final:
        cancel = signed_cancel(job_id, user_id, job_token_for(token_secret, claims))
        await enqueue(conn, JOB_COMMANDS, cancel, max_event_bytes)  # also to a dead attempt's orphaned child
        await withdraw_if_queued(conn, job_id, user_id)
    return job


async def delete_job_row(conn: asyncpg.Connection, job_id: uuid.UUID) -> None:
    """Deletes the job; its predictions, rounds, progress and warnings go with it (ON DELETE CASCADE)."""
    await conn.execute("DELETE FROM jobs WHERE job_id = $1", job_id)
