"""Users' verdicts on predictions (good or bad, a note, a corrected answer) and the `human` grader they make: SQL
expressions that add a user's verdict to a prediction's grades and to a round's grader summaries, so every reader
of grades (predictions, timeline, comparisons, rounds, checkpoints) sees `human` as it sees the trainer's graders.

Row-level security keeps each user to their own verdicts; a prediction they cannot see cannot be judged.
"""

import uuid
from typing import Any

import asyncpg

from epochscope_api.errors import PredictionNotFound, VerdictNotFound

HUMAN = "human"  # the grader name verdicts read as; job configs may not name a grader so (graders config)


def graded(table: str) -> str:
    """The grades of a prediction row of `table` (a name or alias in the query) with the user's verdict as the
    `human` grade: passed = good, score 1 or 0."""
    return (
        f"({table}.grades || coalesce((SELECT jsonb_build_object('{HUMAN}', jsonb_build_object('score',"
        " CASE WHEN v.good THEN 1.0 ELSE 0.0 END, 'passed', v.good, 'error', NULL)) FROM prediction_verdicts v"
        f" WHERE v.job_id = {table}.job_id AND v.step = {table}.step AND v.sample_id = {table}.sample_id),"
        " '{}'::jsonb))"
    )


def with_human_summary(graders: str, job_id: str, step: str) -> str:
    """A round's grader summaries (`graders`, an SQL expression) with the `human` one: the verdicts on the round's
    predictions (the round at `step`), counted as a grader's are; unchanged while the round has none."""
    return (
        f"({graders} || coalesce((SELECT jsonb_build_object('{HUMAN}', jsonb_build_object('graded', count(*),"
        " 'passed', count(*) FILTER (WHERE v.good), 'mean_score', avg(CASE WHEN v.good THEN 1.0 ELSE 0.0 END)))"
        f" FROM prediction_verdicts v WHERE v.job_id = {job_id} AND v.step = {step} HAVING count(*) > 0),"
        " '{}'::jsonb))"
    )


SAMPLE_ID_MAX_CHARS = 200  # sample ids are `row-NNNNNN`: a longer one names no prediction


def _no_such_id(sample_id: str) -> bool:
    """A sample id no prediction has: too long, or holding a NUL (which no text in Postgres holds)."""
    return len(sample_id) > SAMPLE_ID_MAX_CHARS or "\x00" in sample_id


_READ_SQL = (
    "SELECT v.step, v.sample_id, p.round_index, v.good, v.note, v.correction, v.created_at, v.updated_at"
    " FROM prediction_verdicts v JOIN training_predictions p USING (job_id, step, sample_id)"
)


async def upsert_verdict(
    conn: asyncpg.Connection,
    owner_id: str,
    job_id: uuid.UUID,
    step: int,
    sample_id: str,
    good: bool,
    note: str | None,
    correction: str | None,
) -> tuple[dict[str, Any], bool]:
    """Sets the verdict on the prediction (job, step, sample); (its fields, whether it is new). PredictionNotFound
    when the user has no such prediction (another user's reads as none)."""
    if _no_such_id(sample_id) or not await conn.fetchval(
        "SELECT true FROM training_predictions WHERE job_id = $1 AND step = $2 AND sample_id = $3",
        job_id,
        step,
        sample_id,
    ):
        raise PredictionNotFound
    created = await conn.fetchval(
        "INSERT INTO prediction_verdicts (job_id, step, sample_id, owner_id, good, note, correction)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job_id, step, sample_id) DO UPDATE"
        " SET good = excluded.good, note = excluded.note, correction = excluded.correction, updated_at = now()"
        " RETURNING xmax = 0",
        job_id,
        step,
        sample_id,
        owner_id,
        good,
        note,
        correction,
    )
    return await fetch_verdict(conn, job_id, step, sample_id), created


async def fetch_verdict(conn: asyncpg.Connection, job_id: uuid.UUID, step: int, sample_id: str) -> dict[str, Any]:
    """The verdict on one prediction; VerdictNotFound without one."""
    if _no_such_id(sample_id):
        raise VerdictNotFound
    row = await conn.fetchrow(
        f"{_READ_SQL} WHERE v.job_id = $1 AND v.step = $2 AND v.sample_id = $3", job_id, step, sample_id
    )
    if row is None:
        raise VerdictNotFound
    return dict(row)


async def delete_verdict(conn: asyncpg.Connection, job_id: uuid.UUID, step: int, sample_id: str) -> None:
    """Removes the verdict on one prediction; VerdictNotFound without one."""
    if _no_such_id(sample_id):
        raise VerdictNotFound
    deleted = await conn.fetchval(
        "DELETE FROM prediction_verdicts WHERE job_id = $1 AND step = $2 AND sample_id = $3 RETURNING true",
        job_id,
        step,
        sample_id,
    )
    if not deleted:
        raise VerdictNotFound


async def fetch_verdict_page(
    conn: asyncpg.Connection, job_id: uuid.UUID, sample_id: str | None, after: tuple[int, str], limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` of the job's verdicts (only `sample_id`'s, when given) after (step, sample id), in that order."""
    rows = await conn.fetch(
        f"{_READ_SQL} WHERE v.job_id = $1 AND ($2::text IS NULL OR v.sample_id = $2)"
        " AND (v.step, v.sample_id) > ($3, $4) ORDER BY v.step, v.sample_id LIMIT $5",
        job_id,
        sample_id,
        after[0],
        after[1],
        limit,
    )
    return [dict(row) for row in rows]
