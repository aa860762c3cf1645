"""Warnings the trainer reported for a job, in the order they were stored."""

import uuid

import asyncpg

from epochscope_api.response_models import JobWarning

WARNING_COLUMNS = "seq, event_id AS warning_id, code, message, occurred_at"


def warning_of(row: asyncpg.Record) -> JobWarning:
    return JobWarning(**{name: row[name] for name in JobWarning.model_fields})


async def fetch_warnings(
    conn: asyncpg.Connection, job_id: uuid.UUID, after_seq: int = 0, limit: int | None = None
) -> list[tuple[int, JobWarning]]:
    """(seq, warning) in the order they were stored, after `after_seq`; every one when `limit` is None."""
    rows = await conn.fetch(
        f"SELECT {WARNING_COLUMNS} FROM job_warnings WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        job_id,
        after_seq,
        limit,
    )
    return [(row["seq"], warning_of(row)) for row in rows]
