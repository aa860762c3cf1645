"""Retention on the real Postgres, as the API's role (row-level security on): predictions and progress of jobs
finished past their retention, trainers silent past theirs (unless a job is still dispatched to them) and the
attempts of old jobs are deleted; everything younger stays."""

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from api_rows import admin_fixture, insert_job, insert_progress, insert_round

from epochscope_api.data.retention import RetentionPolicy, prune

pytestmark = pytest.mark.stack
admin = admin_fixture

POLICY = RetentionPolicy(
    predictions=timedelta(days=5), progress=timedelta(days=5), trainers=timedelta(days=7), attempts=timedelta(days=5)
)


@pytest.fixture
async def api_pool(full_stack: Any) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(full_stack.api_database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def finished_job(admin: asyncpg.Connection, owner: str, days_ago: float, trainer: str) -> uuid.UUID:
    """A completed job with a round of predictions, progress and one attempt, finished `days_ago`."""
    job_id = await insert_job(admin, owner, status="completed")
    await admin.execute(
        "INSERT INTO job_queue (job_id, owner_id, state, token_expires_at, finished_at)"
        " VALUES ($1, $2, 'final', now(), now() - make_interval(secs => $3))",
        job_id,
        owner,
        days_ago * 86400,
    )
    await admin.execute(
        "INSERT INTO job_attempts (attempt_id, job_id, attempt_no, trainer_id) VALUES ($1, $2, 1, $3)",
        uuid.uuid4(),
        job_id,
        trainer,
    )
    await insert_round(admin, job_id, owner, step=0, samples=3)
    await insert_progress(admin, job_id, owner, range(1, 4))
    return job_id


async def trainer(admin: asyncpg.Connection, days_silent: float) -> str:
    trainer_id = f"retention-{uuid.uuid4()}"
    await admin.execute(
        "INSERT INTO trainers (trainer_id, device, slots, free_slots, last_heartbeat_at)"
        " VALUES ($1, 'cpu', 1, 1, now() - make_interval(secs => $2))",
        trainer_id,
        days_silent * 86400,
    )
    return trainer_id


async def counts(admin: asyncpg.Connection, job_id: uuid.UUID) -> tuple[int, int, int]:
    return (
        await admin.fetchval("SELECT count(*) FROM training_predictions WHERE job_id = $1", job_id),
        await admin.fetchval("SELECT count(*) FROM job_progress WHERE job_id = $1", job_id),
        await admin.fetchval("SELECT count(*) FROM job_attempts WHERE job_id = $1", job_id),
    )


async def test_old_rows_are_deleted_and_young_ones_kept(admin: asyncpg.Connection, api_pool: asyncpg.Pool) -> None:
    owner, other = f"retention-{uuid.uuid4()}", f"retention-{uuid.uuid4()}"
    gone, busy, fresh = await trainer(admin, 30), await trainer(admin, 30), await trainer(admin, 0)
    old = await finished_job(admin, owner, 10, gone)
    others_old = await finished_job(admin, other, 10, gone)
    young = await finished_job(admin, owner, 1, fresh)
    running = await insert_job(admin, owner, status="running")
    await admin.execute(
        "INSERT INTO job_queue (job_id, owner_id, state, token_expires_at, trainer_id)"
        " VALUES ($1, $2, 'dispatched', now(), $3)",
        running,
        owner,
        busy,
    )
    async with admin.transaction():
        # The stack's dispatcher would re-queue the busy trainer's job (its lease ran out 30 days ago) and so free the
        # trainer before the pass: holding the queue row's lock makes the dispatcher's pass wait until this one ends.
        await admin.execute("SELECT 1 FROM job_queue WHERE job_id = $1 FOR UPDATE", running)
        deleted = await prune(api_pool, POLICY)
    assert deleted["predictions"] >= 6 and deleted["progress"] >= 6 and deleted["attempts"] >= 2
    assert await counts(admin, old) == (0, 0, 0)
    assert await counts(admin, others_old) == (0, 0, 0)  # each user's rows, under row-level security
    assert await counts(admin, young) == (3, 3, 1)
    left = {row["trainer_id"] for row in await admin.fetch("SELECT trainer_id FROM trainers")}
    assert gone not in left and {busy, fresh} <= left
    assert await admin.fetchval("SELECT count(*) FROM jobs WHERE job_id = ANY($1)", [old, young]) == 2


async def test_predictions_and_progress_are_kept_without_a_retention(
    admin: asyncpg.Connection, api_pool: asyncpg.Pool
) -> None:
    owner = f"retention-{uuid.uuid4()}"
    old = await finished_job(admin, owner, 400, await trainer(admin, 0))
    await prune(api_pool, RetentionPolicy(None, None, timedelta(days=7), timedelta(days=500)))
    assert await counts(admin, old) == (3, 3, 1)
