"""A job's GRPO rollouts: keyset pages in (step, completion_index) order, bounded in rows and bytes; the rows a live
client has not seen (in commit order); every row of a job for an export, a page in memory at a time."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from epochscope_api.data.cursor import INT4, decode_cursor, encode_cursor
from epochscope_api.data.db import user_transaction
from epochscope_api.data.page_bytes import bounded_by_bytes, text_bytes, without_measures
from epochscope_api.errors import JobNotFound
from epochscope_api.response_models import Rollout, RolloutPage

ROLLOUT_READ_COLUMNS = "step, completion_index, prompt, completion, rewards, reward, advantage, truncated, occurred_at"
ROLLOUT_BYTES = text_bytes("prompt", "completion", "rewards::text")
# Keyset pagination on the primary key; the job comes along in the same round trip (as predictions): no row means
# no such job for this user (RLS), a single row of NULLs a job with nothing past the cursor.
ROLLOUT_PAGE_SQL = (
    "SELECT page.* FROM jobs LEFT JOIN LATERAL ("
    + bounded_by_bytes(
        f"SELECT {ROLLOUT_READ_COLUMNS}, {ROLLOUT_BYTES} AS row_bytes"
        " FROM training_rollouts WHERE job_id = $1 AND (step, completion_index) > ($2, $3)"
        " AND ($4::int IS NULL OR step = $4) ORDER BY step, completion_index LIMIT $5",
        "step, completion_index",
        "$6",
    )
    + ") page ON true WHERE jobs.job_id = $1"
)
# The live stream's read: by the commit sequence (migration 0038), so a row committed late is never skipped.
NEW_ROLLOUTS_SQL = bounded_by_bytes(
    f"SELECT seq, {ROLLOUT_READ_COLUMNS}, {ROLLOUT_BYTES} AS row_bytes FROM training_rollouts"
    " WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    "seq",
    "$4",
)
EXPORT_PAGE_ROWS = 200  # rows per export page; a row holds two texts of the trainer's size limit
EXPORT_SQL = (
    f"SELECT r.job_id, j.name AS job_name, {', '.join('r.' + c.strip() for c in ROLLOUT_READ_COLUMNS.split(','))}"
    " FROM training_rollouts r JOIN jobs j USING (job_id)"
    " WHERE r.job_id = $1 AND (r.step, r.completion_index) > ($2, $3) ORDER BY r.step, r.completion_index LIMIT $4"
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


async def fetch_new_rollouts(
    conn: asyncpg.Connection, job_id: uuid.UUID, after_seq: int, limit: int, max_bytes: int
) -> tuple[list[tuple[int, Rollout]], bool]:
    """(seq, rollout) in commit order after `after_seq`, at most `limit` and about `max_bytes` (at least one): what a
    live client has not seen yet; and whether more rows exist."""
    rows = (await conn.fetch(NEW_ROLLOUTS_SQL, job_id, after_seq, limit + 1, max_bytes))[:limit]
    more = bool(rows and rows[-1]["followed"])
    return [(row["seq"], Rollout.model_validate(without_measures(dict(row)))) for row in rows], more


async def stream_rollouts(pool: asyncpg.Pool, user_id: str, job_id: uuid.UUID) -> AsyncIterator[asyncpg.Record]:
    """Every rollout of the job in (step, completion_index) order, with `job_id` and `job_name`, a page in memory at a
    time, each page in a short transaction of its own (no connection held while the client downloads)."""
    after: tuple[Any, ...] = (-1, -1)
    while True:
        async with user_transaction(pool, user_id) as conn:
            rows = await conn.fetch(EXPORT_SQL, job_id, *after, EXPORT_PAGE_ROWS)
        for row in rows:
            yield row
        if len(rows) < EXPORT_PAGE_ROWS:
            return
        after = (rows[-1]["step"], rows[-1]["completion_index"])
