"""Jobs' rows: inserted, read, listed in keyset pages, deleted (the use cases are service_layer/jobs.py's)."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from epochscope_api.data.checkpoints import best_round
from epochscope_api.data.cursor import decode_cursor, encode_cursor, text
from epochscope_api.data.job_warnings import fetch_warnings
from epochscope_api.data.rounds import fetch_rounds
from epochscope_api.errors import BadParameter, JobNotFound
from epochscope_api.response_models import Job, JobDetail, JobPage
from epochscope_schemas.events import JobStatus

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


async def fetch_job(conn: asyncpg.Connection, job_id: uuid.UUID) -> Job:
    """The job as the current user sees it (no place in the queue: service_layer/jobs.py adds it); JobNotFound if
    they have none."""
    row = await conn.fetchrow(f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1", job_id)
    if row is None:
        raise JobNotFound
    return _job_of(row)


@dataclass(frozen=True)
class JobAttempt:
    """A job with what its current attempt's token is minted from."""

    job: Job
    token_expires_at: datetime
    attempt_id: uuid.UUID | None  # the attempt dispatched or running; None while queued or once final


async def fetch_job_attempt(conn: asyncpg.Connection, job_id: uuid.UUID) -> JobAttempt:
    """The job and its current attempt; JobNotFound if the user has none."""
    row = await conn.fetchrow(
        f"SELECT {JOB_COLUMNS}, token_expires_at,"
        " (SELECT q.attempt_id FROM job_queue q WHERE q.job_id = jobs.job_id) AS attempt_id"
        " FROM jobs WHERE job_id = $1",
        job_id,
    )
    if row is None:
        raise JobNotFound
    fields = dict(row)
    expires_at, attempt_id = fields.pop("token_expires_at"), fields.pop("attempt_id")
    return JobAttempt(Job(**fields), expires_at, attempt_id)


async def ensure_job(conn: asyncpg.Connection, job_id: uuid.UUID) -> None:
    """JobNotFound unless the current user has this job (cheaper than fetch_job: no config to decode)."""
    if not await conn.fetchval("SELECT true FROM jobs WHERE job_id = $1", job_id):
        raise JobNotFound


async def fetch_job_detail(conn: asyncpg.Connection, job_id: uuid.UUID) -> JobDetail:
    """The job with its rounds, warnings and best round (no place in the queue)."""
    job = await fetch_job(conn, job_id)
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


async def fetch_job_page(conn: asyncpg.Connection, where: JobFilter, limit: int, cursor: str | None) -> JobPage:
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
    items = [_job_of(row) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return JobPage(
        items=items, next_cursor=encode_cursor([last.created_at.isoformat(), str(last.job_id)]) if last else None
    )


async def insert_job(
    conn: asyncpg.Connection, job_id: uuid.UUID, owner: str, config: dict[str, Any], token_expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO jobs (job_id, owner_id, config, token_expires_at) VALUES ($1, $2, $3, $4)",
        job_id,
        owner,
        config,
        token_expires_at,
    )


async def delete_job_row(conn: asyncpg.Connection, job_id: uuid.UUID) -> None:
    """Deletes the job; its predictions, rounds, progress and warnings go with it (ON DELETE CASCADE)."""
    await conn.execute("DELETE FROM jobs WHERE job_id = $1", job_id)
