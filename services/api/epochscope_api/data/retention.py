"""Retention: what the API deletes once it is old enough, in a loop beside the outbox relay.

- predictions and progress of jobs finished longer ago than their retention (0: kept as long as the job), deleted
  one user at a time under row-level security (the owners come from job_queue, which holds no job content);
- trainers silent longer than theirs, unless a job is still dispatched to them;
- the attempts of jobs finished longer ago than theirs.
The jobs themselves, their rounds, warnings and checkpoints stay until the user deletes the job.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from epochscope_api.data.db import user_transaction
from epochscope_api.settings import ApiSettings

log = logging.getLogger("epochscope.api.retention")

FINISHED_BEFORE = (
    "SELECT job_id FROM job_queue WHERE owner_id = $1 AND state = 'final' AND finished_at < now() - $2::interval"
)


@dataclass(frozen=True)
class RetentionPolicy:
    predictions: timedelta | None  # None: kept as long as the job
    progress: timedelta | None
    trainers: timedelta
    attempts: timedelta


def retention_policy(settings: ApiSettings) -> RetentionPolicy:
    def days(value: float) -> timedelta | None:
        return timedelta(days=value) if value else None

    return RetentionPolicy(
        predictions=days(settings.retention_predictions_days),
        progress=days(settings.retention_progress_days),
        trainers=timedelta(days=settings.retention_trainers_days),
        attempts=timedelta(days=settings.retention_attempts_days),
    )


async def _owners_with_jobs_finished_before(pool: asyncpg.Pool, age: timedelta) -> list[str]:
    rows = await pool.fetch(
        "SELECT DISTINCT owner_id FROM job_queue WHERE state = 'final' AND finished_at < now() - $1::interval", age
    )
    return [row["owner_id"] for row in rows]


async def _prune_job_rows(pool: asyncpg.Pool, table: str, age: timedelta) -> int:
    """Rows of `table` (training_predictions or job_progress) of jobs finished more than `age` ago."""
    deleted = 0
    for owner in await _owners_with_jobs_finished_before(pool, age):
        async with user_transaction(pool, owner) as conn:
            status = await conn.execute(f"DELETE FROM {table} WHERE job_id IN ({FINISHED_BEFORE})", owner, age)
        deleted += int(status.split()[-1])
    return deleted


async def prune(pool: asyncpg.Pool, policy: RetentionPolicy) -> dict[str, int]:
    """One clean-up pass; the rows deleted, by kind."""
    deleted = {"predictions": 0, "progress": 0}
    if policy.predictions is not None:
        deleted["predictions"] = await _prune_job_rows(pool, "training_predictions", policy.predictions)
    if policy.progress is not None:
        deleted["progress"] = await _prune_job_rows(pool, "job_progress", policy.progress)
    status = await pool.execute(
        "DELETE FROM trainers WHERE last_heartbeat_at < now() - $1::interval AND trainer_id NOT IN"
        " (SELECT trainer_id FROM job_queue WHERE state IN ('dispatched', 'running') AND trainer_id IS NOT NULL)",
        policy.trainers,
    )
    deleted["trainers"] = int(status.split()[-1])
    status = await pool.execute(
        "DELETE FROM job_attempts WHERE job_id IN"
        " (SELECT job_id FROM job_queue WHERE state = 'final' AND finished_at < now() - $1::interval)",
        policy.attempts,
    )
    deleted["attempts"] = int(status.split()[-1])
    return deleted


async def run_retention(pool: asyncpg.Pool, policy: RetentionPolicy, every_s: float) -> None:
    """A clean-up pass every `every_s` seconds until cancelled; a failed pass is logged and the next one runs."""
    while True:
        try:
            deleted = await prune(pool, policy)
            if any(deleted.values()):
                log.info("retention deleted %s", deleted)
        except (asyncpg.PostgresError, OSError):
            log.exception("a retention pass failed")
        await asyncio.sleep(every_s)
