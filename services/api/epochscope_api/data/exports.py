"""The rows of an export, read in keyset pages, each in a short transaction of its own: constant memory, and no
connection or transaction held while the client downloads, however slowly."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from epochscope_api.data.comparisons import fetch_compared_jobs, shared_sample_ids
from epochscope_api.data.db import user_transaction
from epochscope_api.data.predictions import prediction_columns
from epochscope_schemas.config import JobConfig

PAGE_ROWS = 200  # rows per page; a row holds at most 3 texts of the trainer's size limit each
_EXPORT_SQL = (
    f"SELECT p.job_id, j.name AS job_name, {prediction_columns('p')}"
    " FROM training_predictions p JOIN jobs j USING (job_id)"
    " WHERE p.job_id = ANY($1) AND ($2::text[] IS NULL OR p.sample_id = ANY($2))"
    " AND ($3::uuid IS NULL OR (p.job_id, p.step, p.sample_id) > ($3, $4, $5))"
    " ORDER BY p.job_id, p.step, p.sample_id LIMIT $6"
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
    """Every prediction of the jobs (of `samples` only, if given), in (job, step, sample) order, a page in memory at
    a time; the pool's connection is back in the pool while a page is sent."""
    after: tuple[Any, ...] = (None, None, None)
    while True:
        async with user_transaction(pool, user_id) as conn:
            rows = await conn.fetch(_EXPORT_SQL, job_ids, samples, *after, PAGE_ROWS)
        for row in rows:
            yield row
        if len(rows) < PAGE_ROWS:
            return
        last = rows[-1]
        after = (last["job_id"], last["step"], last["sample_id"])
