"""A job's status follows its attempts, never a trainer's clock (issue 23, item 3), on the real stack.

Attempt A's trainer runs ten minutes ahead of the truth and says `running`; A is lost and the dispatcher sends the
job again as attempt B, whose trainer has a true clock and completes it, earlier by the clocks than A's `running`.
The job must end completed: its queue row final, its owner's active-jobs quota free again, and the job's channel
told, which is what ends its live stream.
"""

import asyncio
import json
from datetime import timedelta
from types import SimpleNamespace

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from writer_events import publish_events, status
from writer_queue import dispatch, queue, queue_state
from writer_stack import (
    Job,
    Stack,
    create_job,
    job_row,
    now,
    producer_fixture,  # noqa: F401  fixture
    stack_fixture,  # noqa: F401  fixture
    wait_for,
    writer_fixture,  # noqa: F401  fixture
)

from epochscope_api.data.quotas import check_active_jobs
from epochscope_schemas.events import JobStatus
from epochscope_schemas.notify import job_channel

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="module")]


async def has_room_for_a_job(stack: Stack, job: Job) -> bool:
    """The API's active-jobs check with a quota of one job: passes only once the job is no longer active."""
    conn = await asyncpg.connect(stack.admin_dsn)
    try:
        async with conn.transaction():
            await check_active_jobs(conn, job.owner, SimpleNamespace(quota_active_jobs=1, quota_retry_after_seconds=1))
        return True
    except Exception:  # noqa: BLE001  QuotaExceeded: the job still counts
        return False
    finally:
        await conn.close()


async def test_a_later_attempt_ends_the_job_whatever_the_earlier_attempts_clock(
    stack: Stack, producer: AIOKafkaProducer
) -> None:
    job = await create_job(stack, "olga")
    await queue(stack, job)
    t = now()
    first = await dispatch(stack, job, "trainer-ahead")
    running_ahead = status(job, JobStatus.RUNNING, t + timedelta(seconds=600)).model_copy(update={"attempt_id": first})
    await publish_events(producer, [running_ahead])
    await wait_for(lambda: _queue_is(stack, job, "running"), timeout=30)
    assert await _is(stack, job, "running")
    assert not await has_room_for_a_job(stack, job)

    second = await dispatch(stack, job, "trainer-true")  # A's lease ran out: the dispatcher sent the job again
    told: asyncio.Queue[dict] = asyncio.Queue()
    listener = await asyncpg.connect(stack.admin_dsn)
    await listener.add_listener(job_channel(job.job_id), lambda *args: told.put_nowait(json.loads(args[3])))
    try:
        completed = status(job, JobStatus.COMPLETED, t).model_copy(update={"attempt_id": second})
        await publish_events(producer, [completed])
        await wait_for(lambda: _queue_is(stack, job, "final"), timeout=30)
        row = await job_row(stack, job.job_id)
        assert row["status"] == "completed", dict(row)
        assert await has_room_for_a_job(stack, job)
        notice = await asyncio.wait_for(told.get(), timeout=10)
        assert notice == {"job_id": str(job.job_id), "kind": "status", "status": "completed"}
    finally:
        await listener.close()


async def _is(stack: Stack, job: Job, expected: str) -> bool:
    return (await job_row(stack, job.job_id))["status"] == expected


async def _queue_is(stack: Stack, job: Job, expected: str) -> bool:
    return await queue_state(stack, job) == expected
