"""The job queue's rows for the writer's real-stack tests, written as the API's dispatcher writes them.

A job row from `writer_stack.create_job` gets its queue row here, then one attempt per dispatch: the queue row's
current attempt moves on (attempt_no + 1) and `job_attempts` records it, in one transaction, as the dispatcher does.
"""

import uuid

import asyncpg
from writer_stack import Job, Stack


async def queue(stack: Stack, job: Job) -> None:
    conn = await asyncpg.connect(stack.admin_dsn)
    try:
        await conn.execute(
            "INSERT INTO job_queue (job_id, owner_id, token_expires_at)"
            " SELECT job_id, owner_id, token_expires_at FROM jobs WHERE job_id = $1",
            job.job_id,
        )
        await conn.execute(
            "INSERT INTO job_start_payloads (job_id, owner_id, payload) VALUES ($1, $2, '{}')", job.job_id, job.owner
        )
    finally:
        await conn.close()


async def dispatch(stack: Stack, job: Job, trainer: str) -> uuid.UUID:
    """A new attempt of the queued job on `trainer` (the one before it, if any, lost): its attempt id."""
    attempt_id = uuid.uuid4()
    conn = await asyncpg.connect(stack.admin_dsn)
    try:
        async with conn.transaction():
            attempt_no = await conn.fetchval(
                "UPDATE job_queue SET state = 'dispatched', attempt_id = $2, attempt_no = attempt_no + 1,"
                " trainer_id = $3, dispatched_at = now() WHERE job_id = $1 RETURNING attempt_no",
                job.job_id,
                attempt_id,
                trainer,
            )
            await conn.execute(
                "INSERT INTO job_attempts (attempt_id, job_id, attempt_no, trainer_id) VALUES ($1, $2, $3, $4)",
                attempt_id,
                job.job_id,
                attempt_no,
                trainer,
            )
    finally:
        await conn.close()
    return attempt_id


async def queue_state(stack: Stack, job: Job) -> str:
    conn = await asyncpg.connect(stack.admin_dsn)
    try:
        return await conn.fetchval("SELECT state FROM job_queue WHERE job_id = $1", job.job_id)
    finally:
        await conn.close()
