"""Rows behind the OpenAI-compatible surface's job events (the job's status changes, progress steps, prediction
rounds and warnings, newest first, in keyset pages) and its final checkpoints."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

# Each event's key: (when, kind, key within the kind), newest first; `kind` orders events at the same moment.
CREATED, STARTED, STEP, ROUND, WARNING, FINISHED = range(6)
_EVENTS = f"""
WITH events AS (
  SELECT created_at AS at, {CREATED} AS kind, '' AS key, NULL::jsonb AS data FROM jobs WHERE job_id = $1
  UNION ALL SELECT started_at, {STARTED}, '', jsonb_build_object('message', status_message) FROM jobs
    WHERE job_id = $1 AND started_at IS NOT NULL
  UNION ALL SELECT occurred_at, {STEP}, lpad(step::text, 10, '0'), jsonb_build_object('step', step,
      'total_steps', max_steps, 'epoch', epoch, 'train_loss', loss, 'learning_rate', learning_rate)
    FROM job_progress WHERE job_id = $1
  UNION ALL SELECT occurred_at, {ROUND}, lpad(round_index::text, 10, '0'), jsonb_build_object('step', step,
      'round_index', round_index, 'epoch', epoch, 'graders', graders, 'mean_exact_match', mean_exact_match,
      'mean_rouge_l', mean_rouge_l, 'validated', validated, 'valid', valid)
    FROM job_rounds WHERE job_id = $1
  UNION ALL SELECT occurred_at, {WARNING}, event_id::text, jsonb_build_object('code', code, 'message', message)
    FROM job_warnings WHERE job_id = $1
  UNION ALL SELECT finished_at, {FINISHED}, '', jsonb_build_object('status', status, 'message', status_message)
    FROM jobs WHERE job_id = $1 AND finished_at IS NOT NULL AND status IN ('completed', 'failed', 'cancelled')
)
SELECT at, kind, key, data FROM events
WHERE at IS NOT NULL AND ($2::timestamptz IS NULL OR (at, kind, key) < ($2, $3::integer, $4::text))
ORDER BY at DESC, kind DESC, key DESC LIMIT $5
"""


@dataclass(frozen=True)
class EventRow:
    at: datetime
    kind: int
    key: str
    data: dict[str, Any] | None


async def fetch_event_rows(
    conn: asyncpg.Connection, job_id: uuid.UUID, before: tuple[datetime, int, str] | None, limit: int
) -> list[EventRow]:
    """Up to `limit` of the job's events, newest first, after (older than) `before`."""
    at, kind, key = before if before else (None, None, None)
    rows = await conn.fetch(_EVENTS, job_id, at, kind, key, limit)
    return [EventRow(row["at"], row["kind"], row["key"], row["data"]) for row in rows]


async def fetch_final_checkpoints(conn: asyncpg.Connection, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """The id of each job's kept final weights, by job (jobs without any are absent)."""
    rows = await conn.fetch(
        "SELECT job_id, checkpoint_id FROM job_checkpoints WHERE job_id = ANY($1::uuid[]) AND final"
        " AND deleted_at IS NULL",
        job_ids,
    )
    return {row["job_id"]: row["checkpoint_id"] for row in rows}


async def fetch_losses(conn: asyncpg.Connection, job_id: uuid.UUID, steps: list[int]) -> dict[int, float | None]:
    """The training loss logged at each of these steps (absent where none was logged)."""
    rows = await conn.fetch(
        "SELECT step, loss FROM job_progress WHERE job_id = $1 AND step = ANY($2::integer[])", job_id, steps
    )
    return {row["step"]: row["loss"] for row in rows}
