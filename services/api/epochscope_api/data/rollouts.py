"""A job's GRPO rollouts: keyset pages in (step, completion_index) order, bounded in rows and bytes."""

import uuid

import asyncpg

from epochscope_api.data.cursor import INT4, decode_cursor, encode_cursor
from epochscope_api.data.page_bytes import bounded_by_bytes, text_bytes, without_measures
from epochscope_api.errors import JobNotFound
from epochscope_api.response_models import RolloutPage

ROLLOUT_READ_COLUMNS = "step, completion_index, prompt, completion, rewards, reward, advantage, truncated, occurred_at"
# Keyset pagination on the primary key; the job comes along in the same round trip (as predictions): no row means
# no such job for this user (RLS), a single row of NULLs a job with nothing past the cursor.
ROLLOUT_PAGE_SQL = (
    "SELECT page.* FROM jobs LEFT JOIN LATERAL ("
    + bounded_by_bytes(
        f"SELECT {ROLLOUT_READ_COLUMNS}, {text_bytes('prompt', 'completion', 'rewards::text')} AS row_bytes"
        " FROM training_rollouts WHERE job_id = $1 AND (step, completion_index) > ($2, $3)"
        " AND ($4::int IS NULL OR step = $4) ORDER BY step, completion_index LIMIT $5",
        "step, completion_index",
        "$6",
    )
    + ") page ON true WHERE jobs.job_id = $1"
)


async def fetch_rollout_page(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    step: int | None,
    limit: int,
    cursor: str | None,
    max_bytes: int,
) -> RolloutPage:
    """Up to `limit` rollouts, and about `max_bytes` (at least one row), after `cursor`; JobNotFound without the
    job."""
    after_step, after_index = decode_cursor(cursor, INT4, INT4) if cursor else (-1, -1)
    rows = await conn.fetch(ROLLOUT_PAGE_SQL, job_id, after_step, after_index, step, limit + 1, max_bytes)
    if not rows:
        raise JobNotFound
    rows = [row for row in rows if row["step"] is not None][:limit]
    last = rows[-1] if rows else None
    items = [without_measures(dict(row)) for row in rows]
    return RolloutPage.model_validate(
        {
            "items": items,
            "next_cursor": encode_cursor([last["step"], last["completion_index"]]) if last else cursor,
            "has_more": bool(last and last["followed"]),
        }
    )
