"""What preference pairs are built from: a job's answers in chosen rounds, each with one grader's verdict (the
user's own for `human`) and the user's corrected answer, read one sample at a time."""

import uuid
from collections.abc import AsyncIterator

import asyncpg

from epochscope_api.data.comparisons import SAMPLES_DATASET_SQL
from epochscope_api.data.verdicts import graded
from epochscope_api.errors import JobNotFound

_ANSWERS_SQL = (
    "SELECT p.sample_id, p.round_index, p.prediction, p.ground_truth, p.truncated,"
    f" ({graded('p')} -> $3::text ->> 'passed')::boolean AS passed, v.correction"
    " FROM training_predictions p LEFT JOIN prediction_verdicts v USING (job_id, step, sample_id)"
    " WHERE p.job_id = $1 AND ($2::int[] IS NULL OR p.round_index = ANY($2))"
    " ORDER BY p.sample_index, p.sample_id, p.round_index"
)
ROWS_PER_FETCH = 200


async def fetch_samples_dataset_id(conn: asyncpg.Connection, job_id: uuid.UUID) -> uuid.UUID:
    """The dataset the job's prediction samples come from; JobNotFound unless the user has the job."""
    row = await conn.fetchrow(f"SELECT {SAMPLES_DATASET_SQL} AS dataset_id FROM jobs WHERE job_id = $1", job_id)
    if row is None:
        raise JobNotFound
    return row["dataset_id"]


async def fetch_rounds_with_answers(conn: asyncpg.Connection, job_id: uuid.UUID, rounds: list[int] | None) -> list[int]:
    """The rounds (of `rounds`, or all) that have answers, in order."""
    rows = await conn.fetch(
        "SELECT DISTINCT round_index FROM training_predictions WHERE job_id = $1"
        " AND ($2::int[] IS NULL OR round_index = ANY($2)) ORDER BY round_index",
        job_id,
        rounds,
    )
    return [row["round_index"] for row in rows]


async def answers_by_sample(
    conn: asyncpg.Connection, job_id: uuid.UUID, rounds: list[int] | None, grader: str
) -> AsyncIterator[list[asyncpg.Record]]:
    """Each sample's answers in round order, one sample at a time (a server-side cursor: never the whole job in
    memory); `passed` is null where `grader` did not grade the answer. Runs inside the caller's transaction."""
    cursor = conn.cursor(_ANSWERS_SQL, job_id, rounds, grader, prefetch=ROWS_PER_FETCH)
    pending: list[asyncpg.Record] = []
    async for row in cursor:
        if pending and pending[0]["sample_id"] != row["sample_id"]:
            yield pending
            pending = []
        pending.append(row)
    if pending:
        yield pending
