"""Graders' verdicts of stored predictions: a page of samples across all rounds, two rounds of a job, and each
job's latest answers. Only the verdicts and scores leave Postgres, not the answers."""

import uuid
from typing import Any

import asyncpg

from epochscope_api.data.verdicts import graded


def _verdicts(grader: str, table: str = "training_predictions") -> str:
    """Each grader's {"passed", "score"} of a row of `table`, the user's `human` verdict included; only `grader`'s
    (an SQL expression) unless it is NULL."""
    return (
        "(SELECT coalesce(jsonb_object_agg(key, jsonb_build_object('passed', value->'passed', 'score',"
        f" value->'score')), '{{}}') FROM jsonb_each({graded(table)}) WHERE {grader} IS NULL OR key = {grader})"
        " AS verdicts"
    )


TIMELINE_SQL = (
    "WITH page AS (SELECT DISTINCT sample_id FROM training_predictions WHERE job_id = $1 AND sample_id > $2"
    " ORDER BY sample_id LIMIT $3)"
    f" SELECT p.sample_id, p.sample_index, p.round_index, {_verdicts('$4::text', 'p')}"
    " FROM training_predictions p JOIN page USING (sample_id) WHERE p.job_id = $1 ORDER BY p.sample_id, p.round_index"
)
ROUNDS_SQL = (
    f"SELECT round_index, sample_id, {_verdicts('NULL::text')} FROM training_predictions"
    " WHERE job_id = $1 AND round_index = ANY($2::int[])"
)
LATEST_SQL = (
    f"SELECT DISTINCT ON (job_id, sample_id) job_id, sample_id, {_verdicts('NULL::text')}"
    " FROM training_predictions WHERE job_id = ANY($1) AND sample_id = ANY($2) ORDER BY job_id, sample_id, step DESC"
)

Verdicts = dict[str, dict[str, Any]]  # grader name -> {"passed": bool, "score": float}


async def fetch_timeline_rows(
    conn: asyncpg.Connection, job_id: uuid.UUID, after_sample: str, samples: int, grader: str | None
) -> list[asyncpg.Record]:
    """(sample_id, sample_index, round_index, verdicts) of up to `samples` samples after `after_sample`, in sample
    then round order."""
    return await conn.fetch(TIMELINE_SQL, job_id, after_sample, samples, grader)


async def fetch_round_verdicts(
    conn: asyncpg.Connection, job_id: uuid.UUID, rounds: list[int]
) -> dict[int, dict[str, Verdicts]]:
    """Per round asked, each sample's verdicts; a round without predictions is absent."""
    by_round: dict[int, dict[str, Verdicts]] = {}
    for row in await conn.fetch(ROUNDS_SQL, job_id, rounds):
        by_round.setdefault(row["round_index"], {})[row["sample_id"]] = row["verdicts"]
    return by_round


async def fetch_latest_verdicts(
    conn: asyncpg.Connection, job_ids: list[uuid.UUID], sample_ids: list[str]
) -> dict[uuid.UUID, dict[str, Verdicts]]:
    """Per job, each of `sample_ids`' verdicts in the job's latest round that has it."""
    by_job: dict[uuid.UUID, dict[str, Verdicts]] = {job_id: {} for job_id in job_ids}
    for row in await conn.fetch(LATEST_SQL, job_ids, sample_ids):
        by_job[row["job_id"]][row["sample_id"]] = row["verdicts"]
    return by_job
