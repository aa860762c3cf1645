"""The rows of an export, read with a server-side cursor inside the user's transaction: constant memory."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from epochscope_api.data.comparisons import fetch_compared_jobs, shared_sample_ids
from epochscope_api.data.db import user_transaction
from epochscope_api.data.predictions import PREDICTION_READ_COLUMNS
from epochscope_schemas.config import JobConfig

CURSOR_PREFETCH = 200  # rows per round trip; a row holds at most 3 texts of the trainer's size limit each
_EXPORT_SQL = (
    f"SELECT p.job_id, j.name AS job_name, {', '.join('p.' + c.strip() for c in PREDICTION_READ_COLUMNS.split(','))}"
    " FROM training_predictions p JOIN jobs j USING (job_id)"
    " WHERE p.job_id = ANY($1) AND ($2::text[] IS NULL OR p.sample_id = ANY($2))"
    " ORDER BY p.job_id, p.step, p.sample_id"
)


def grader_names(configs: list[Any]) -> list[str]:
    """Every grader name of these job configs, in first-seen order: the export's grade columns."""
    names: dict[str, None] = {}
    for config in configs:
        for grader in JobConfig.model_validate(config).predictions.graders:
            names[grader.name] = None
    return list(names)


async def export_plan(
    conn: asyncpg.Connection, job_ids: list[uuid.UUID], shared_only: bool
) -> tuple[list[str], list[str] | None]:
    """(grade columns, the sample ids to keep or None for all); JobNotFound when a job is not the user's."""
    jobs = await fetch_compared_jobs(conn, job_ids)
    samples = (await shared_sample_ids(conn, jobs))[0] if shared_only else None
    return grader_names([job["config"] for job in jobs]), samples


async def stream_rows(
    pool: asyncpg.Pool, user_id: str, job_ids: list[uuid.UUID], samples: list[str] | None
) -> AsyncIterator[asyncpg.Record]:
    """Every prediction of the jobs (of `samples` only, if given), in (job, step, sample) order, a few hundred
    rows in memory at a time, in a transaction of its own (the response streams after the route returned)."""
    async with user_transaction(pool, user_id) as conn:
        async for row in conn.cursor(_EXPORT_SQL, job_ids, samples, prefetch=CURSOR_PREFETCH):
            yield row
