"""GRPO rollouts through the real writer (subprocess), broker and Postgres: one row per (job, step, completion)
however often it is delivered, owned by the job's owner and visible to no one else (forced RLS)."""

import json

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from writer_events import publish_events
from writer_stack import (
    Job,
    Stack,
    admin_fetch,
    create_job,
    producer_fixture,  # noqa: F401  fixture
    stack_fixture,  # noqa: F401  fixture
    wait_for,
    writer_fixture,  # noqa: F401  fixture
)

from epochscope_schemas.events import RolloutEvent

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="module")]


def rollout(job: Job, step: int, index: int) -> RolloutEvent:
    return RolloutEvent(
        job_id=job.job_id,
        job_token=job.token,
        step=step,
        completion_index=index,
        prompt=f"Is {index} even?",
        completion="yes",
        rewards={"label": 1.0 if index % 2 == 0 else 0.0, "is_json": None},
        reward=1.0 if index % 2 == 0 else 0.0,
        advantage=0.5 if index % 2 == 0 else -0.5,
        truncated=["prompt"] if index == 1 else [],
    )


async def visible_to(stack: Stack, user: str) -> int:
    conn = await asyncpg.connect(stack.writer_dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.user_id', $1, true)", user)
            return await conn.fetchval("SELECT count(*) FROM training_rollouts")
    finally:
        await conn.close()


async def test_rollouts_are_stored_once_for_their_owner_only(
    stack: Stack,
    producer: AIOKafkaProducer,
    writer: object,
) -> None:
    job = await create_job(stack, "rhea")
    events = [rollout(job, step, index) for step in (1, 2) for index in (0, 1)]
    await publish_events(producer, events)
    await publish_events(producer, events[:3])  # redelivered

    async def stored() -> bool:
        rows = await admin_fetch(stack, "SELECT count(*) AS n FROM training_rollouts WHERE job_id = $1", job.job_id)
        return rows[0]["n"] == 4

    await wait_for(stored, timeout=30)
    rows = await admin_fetch(
        stack,
        "SELECT step, completion_index, owner_id, rewards, reward, advantage, truncated FROM training_rollouts"
        " WHERE job_id = $1 ORDER BY step, completion_index",
        job.job_id,
    )
    assert [(r["step"], r["completion_index"], r["owner_id"]) for r in rows] == [
        (1, 0, "rhea"),
        (1, 1, "rhea"),
        (2, 0, "rhea"),
        (2, 1, "rhea"),
    ]
    assert json.loads(rows[1]["rewards"]) == {"label": 0.0, "is_json": None}
    assert (rows[1]["reward"], rows[1]["advantage"], json.loads(rows[1]["truncated"])) == (0.0, -0.5, ["prompt"])
    assert await visible_to(stack, "rhea") == 4 and await visible_to(stack, "someone-else") == 0
