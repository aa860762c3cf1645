"""Per-user quotas, checked in the user's transaction (row-level security counts only their rows).

Counts (active jobs, datasets and their bytes) are taken under a per-user transaction-scoped advisory lock, held
until the insert that follows commits, so two API replicas cannot both admit the last free slot. The write rate
is one atomic UPSERT on the user's row of `api_write_rate` (see migration 0010): every replica shares it, and no
other infrastructure is needed.
"""

import math

import asyncpg

from epochscope_api.errors import QuotaExceeded
from epochscope_api.settings import ApiSettings

# pg_advisory_xact_lock(class, hashtext(user)): the two-int4 key space, apart from the migrator's bigint key.
# A hash collision between two users only makes them wait for each other briefly; it never mixes their counts.
JOBS_LOCK = 14_001
DATASETS_LOCK = 14_002

_ADMIT_WRITE = (
    "INSERT INTO api_write_rate AS r (owner_id, allowed_at) VALUES ($1, now() + make_interval(secs => $2))"
    " ON CONFLICT (owner_id) DO UPDATE SET allowed_at = greatest(r.allowed_at, now()) + make_interval(secs => $2)"
    " WHERE greatest(r.allowed_at, now()) + make_interval(secs => $2) <= now() + interval '1 minute'"
    " RETURNING true"
)
_WRITE_WAIT = (
    "SELECT extract(epoch FROM greatest(allowed_at, now()) + make_interval(secs => $2) - now() - interval '1 minute')"
    " FROM api_write_rate WHERE owner_id = $1"
)


async def _lock(conn: asyncpg.Connection, kind: int, user_id: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", kind, user_id)


async def check_active_jobs(conn: asyncpg.Connection, user_id: str, settings: ApiSettings) -> None:
    """QuotaExceeded unless the user has room for one more queued or running job. Locks the user's job quota until
    the transaction ends: call it just before inserting the job, in the same transaction."""
    await _lock(conn, JOBS_LOCK, user_id)
    active = await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE owner_id = $1 AND status IN ('queued', 'running')", user_id
    )
    if active >= settings.quota_active_jobs:
        raise QuotaExceeded.active_jobs(settings.quota_active_jobs, settings.quota_retry_after_seconds)


async def _dataset_usage(conn: asyncpg.Connection, user_id: str) -> tuple[int, int]:
    row = await conn.fetchrow("SELECT count(*), coalesce(sum(bytes), 0) FROM datasets WHERE owner_id = $1", user_id)
    return row[0], row[1]


async def dataset_bytes_left(conn: asyncpg.Connection, user_id: str, settings: ApiSettings) -> int:
    """The bytes an upload may still take (at least 1); QuotaExceeded if the user has no room for a dataset."""
    count, used = await _dataset_usage(conn, user_id)
    retry_after = settings.quota_retry_after_seconds
    if count >= settings.quota_datasets:
        raise QuotaExceeded.datasets(settings.quota_datasets, retry_after)
    if used >= settings.quota_dataset_bytes:
        raise QuotaExceeded.dataset_bytes(settings.quota_dataset_bytes, retry_after)
    return settings.quota_dataset_bytes - used


async def check_dataset_room(conn: asyncpg.Connection, user_id: str, size: int, settings: ApiSettings) -> None:
    """QuotaExceeded unless one more dataset of `size` bytes fits; the re-check at insert, under the user's dataset
    lock until the transaction ends (uploads running side by side each saw room before storing)."""
    await _lock(conn, DATASETS_LOCK, user_id)
    count, used = await _dataset_usage(conn, user_id)
    retry_after = settings.quota_retry_after_seconds
    if count >= settings.quota_datasets:
        raise QuotaExceeded.datasets(settings.quota_datasets, retry_after)
    if used + size > settings.quota_dataset_bytes:
        raise QuotaExceeded.dataset_bytes(settings.quota_dataset_bytes, retry_after)


async def checkpoint_bytes_left(conn: asyncpg.Connection, user_id: str, settings: ApiSettings) -> int:
    """The bytes of checkpoints a new job may keep: the quota less what the user's jobs keep now (pruned ones no
    longer count); QuotaExceeded when nothing is left. Call it under the user's job lock (`check_active_jobs`).

    The trainer has no database, so this figure travels in the job's start event and the trainer enforces it.
    Jobs that run at the same time were each allowed what was left when they were submitted: together they may keep
    more than the quota, never more than the quota for any one job, and the next submit sees the total.
    """
    used = await conn.fetchval(
        "SELECT coalesce(sum(bytes), 0)::bigint FROM job_checkpoints WHERE owner_id = $1 AND deleted_at IS NULL",
        user_id,
    )  # ::bigint: sum() of a bigint is a numeric, which asyncpg hands over as a Decimal; the start event wants an int
    if used >= settings.quota_checkpoint_bytes:
        raise QuotaExceeded.checkpoint_bytes(settings.quota_checkpoint_bytes, settings.quota_retry_after_seconds)
    return settings.quota_checkpoint_bytes - used


async def check_prediction_bytes(conn: asyncpg.Connection, user_id: str, settings: ApiSettings) -> None:
    """QuotaExceeded once the texts of the user's stored predictions reach the quota: their bytes as the database
    counts them (`prediction_usage`, kept by migration 0042's trigger with `prediction_text_bytes`), the one figure
    the writer also checks before storing a running job's predictions."""
    used = await conn.fetchval("SELECT coalesce((SELECT bytes FROM prediction_usage WHERE owner_id = $1), 0)", user_id)
    if used >= settings.quota_prediction_bytes:
        raise QuotaExceeded.prediction_bytes(settings.quota_prediction_bytes, settings.quota_retry_after_seconds)


async def check_rollout_bytes(conn: asyncpg.Connection, user_id: str, settings: ApiSettings) -> None:
    """QuotaExceeded once the user's stored GRPO rollouts (prompt, completion and reward components) reach the
    quota; checked when a GRPO job is submitted. Linear in the user's rollouts."""
    row_bytes = "octet_length(prompt) + octet_length(completion) + octet_length(rewards::text)"
    used = await _stored_bytes(conn, user_id, "training_rollouts", row_bytes)
    if used >= settings.quota_rollout_bytes:
        raise QuotaExceeded.rollout_bytes(settings.quota_rollout_bytes, settings.quota_retry_after_seconds)


async def _stored_bytes(conn: asyncpg.Connection, user_id: str, table: str, row_bytes: str) -> int:
    """The sum of `row_bytes` (SQL over a row's columns; octet_length reads no TOASTed value) over the user's rows of
    `table`, found by job (the primary key's index)."""
    return await conn.fetchval(
        f"SELECT coalesce(sum({row_bytes}), 0) FROM {table}"
        " WHERE job_id IN (SELECT job_id FROM jobs WHERE owner_id = $1)",
        user_id,
    )


async def admit_write(conn: asyncpg.Connection, user_id: str, per_minute: int) -> None:
    """Counts one write request; QuotaExceeded (Retry-After: when the next one is admitted) past `per_minute`.
    A token bucket of `per_minute` tokens refilled evenly over a minute (GCRA: one timestamp per user)."""
    interval = 60.0 / per_minute
    if await conn.fetchval(_ADMIT_WRITE, user_id, interval):
        return
    wait = await conn.fetchval(_WRITE_WAIT, user_id, interval)
    raise QuotaExceeded.writes_per_minute(per_minute, math.ceil(float(wait or 1)))
