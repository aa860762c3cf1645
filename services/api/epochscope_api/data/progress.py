"""A job's training progress: one point per logged step."""

import uuid

import asyncpg

from epochscope_api.response_models import ProgressHistory, ProgressPoint
from epochscope_schemas.methods import MAX_REWARDS

PROGRESS_COLUMNS = (
    "step, max_steps, epoch, loss, learning_rate, samples_per_second, rewards, reward,"
    " chosen_reward, rejected_reward, reward_margin, reward_accuracy, occurred_at"
)
# At most one ProgressPoint's JSON (numbers and a timestamp, and a GRPO job's rewards: up to MAX_REWARDS names of
# 64 characters with two numbers each): pages count by it.
PROGRESS_POINT_BYTES = 384 + MAX_REWARDS * 128  # and a DPO job's four numbers


async def fetch_progress(
    conn: asyncpg.Connection, job_id: uuid.UUID, after_step: int, limit: int
) -> list[ProgressPoint]:
    """Points in step order after `after_step`."""
    rows = await conn.fetch(
        f"SELECT {PROGRESS_COLUMNS} FROM job_progress WHERE job_id = $1 AND step > $2 ORDER BY step LIMIT $3",
        job_id,
        after_step,
        limit,
    )
    return [ProgressPoint(**dict(row)) for row in rows]  # rewards: jsonb, decoded by the pool's codec


async def fetch_progress_history(
    conn: asyncpg.Connection, job_id: uuid.UUID, after_step: int, limit: int, max_bytes: int | None = None
) -> ProgressHistory:
    """Up to `limit` points after `after_step`, as many as fit `max_bytes` (at least one), and whether there are
    more."""
    if max_bytes is not None:
        limit = max(1, min(limit, max_bytes // PROGRESS_POINT_BYTES))
    points = await fetch_progress(conn, job_id, after_step, limit + 1)
    return ProgressHistory(items=points[:limit], has_more=len(points) > limit)
