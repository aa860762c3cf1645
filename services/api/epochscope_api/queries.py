"""The API's reads of Postgres, each run on a connection inside the caller's user transaction (RLS).

Row-level security decides what exists: another user's job reads as no job at all (JobNotFound).
"""

import uuid
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from epochscope_api.errors import JobNotFound, SampleNotFound
from epochscope_api.response_models import (
    Job,
    JobDetail,
    JobWarning,
    Prediction,
    ProgressPoint,
    RoundSummary,
    SampleHistory,
    SampleRound,
)

JOB_COLUMNS = (
    "job_id, status, status_message, config, metrics, progress, created_at, updated_at, started_at, finished_at"
)
# What the API reads of a prediction row (the writer writes more: job_id, seq, ...).
PREDICTION_READ_COLUMNS = (
    "round_index, epoch, step, sample_id, sample_index, prompt, ground_truth, prediction, tokens_generated,"
    " latency_ms, valid, validation_error, exact_match, f1, rouge_l, created_at"
)
PROGRESS_COLUMNS = "step, max_steps, epoch, loss, learning_rate, samples_per_second, occurred_at"
WARNING_COLUMNS = "seq, event_id AS warning_id, code, message, occurred_at"
# The trainer's round summaries, in the shape of an aggregate over a round's predictions (below).
_SUMMARIZED_ROUNDS = (
    "SELECT round_index, epoch, step, trigger, true AS summarized, predictions, validated, valid, scored,"
    " mean_exact_match, mean_f1, mean_rouge_l, tokens_generated AS tokens, wall_ms, stall_ms, occurred_at"
    " FROM job_rounds WHERE job_id = $1"
)
# Rounds without a summary: those after the last summarized one (in progress), and any gap below it.
# Only their predictions are read (index on job_id, round_index), not the job's whole history.
_AGGREGATED_ROUNDS = (
    "SELECT round_index, min(epoch), min(step), NULL, false, count(*), count(valid), count(*) FILTER (WHERE valid),"
    " count(exact_match), avg(exact_match), avg(f1), avg(rouge_l), sum(tokens_generated), NULL::float8,"
    " NULL::float8, max(created_at)"
    " FROM training_predictions WHERE job_id = $1 AND (round_index > (SELECT last FROM summarized)"
    " OR round_index = ANY(ARRAY(SELECT generate_series(0, (SELECT last FROM summarized))"
    " EXCEPT SELECT round_index FROM job_rounds WHERE job_id = $1)))"
    " GROUP BY round_index"
)
_ROUNDS = (
    "WITH summarized AS (SELECT coalesce(max(round_index), -1) AS last FROM job_rounds WHERE job_id = $1)"
    f" {_SUMMARIZED_ROUNDS} UNION ALL {_AGGREGATED_ROUNDS} ORDER BY round_index"
)

_ROUND_LIST = TypeAdapter(list[RoundSummary])
_SAMPLE_ROUNDS = TypeAdapter(list[SampleRound])


def job_of(row: asyncpg.Record) -> Job:
    return Job(**dict(row))


def prediction_fields(row: asyncpg.Record) -> dict[str, Any]:
    """A prediction row as Prediction's fields (scores nested), so a whole page is validated in one call."""
    fields = dict(row)
    scores = {name: fields.pop(name) for name in ("exact_match", "f1", "rouge_l")}
    fields["scores"] = None if None in scores.values() else scores
    return fields


def prediction_of(row: asyncpg.Record) -> Prediction:
    return Prediction.model_validate(prediction_fields(row))


def _round_fields(row: asyncpg.Record) -> dict[str, Any]:
    fields = dict(row)
    validated = fields["validated"]
    fields["validator_pass_rate"] = fields["valid"] / validated if validated else None
    return fields


def rounds_of(rows: list[asyncpg.Record]) -> list[RoundSummary]:
    """Round rows as models, validated in one call (a long job has thousands of rounds)."""
    return _ROUND_LIST.validate_python([_round_fields(row) for row in rows])


def progress_of(row: asyncpg.Record) -> ProgressPoint:
    return ProgressPoint(**dict(row))


def warning_of(row: asyncpg.Record) -> JobWarning:
    return JobWarning(**{name: row[name] for name in JobWarning.model_fields})


async def fetch_job(conn: asyncpg.Connection, job_id: uuid.UUID) -> Job:
    """The job as the current user sees it; JobNotFound if they have none."""
    row = await conn.fetchrow(f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1", job_id)
    if row is None:
        raise JobNotFound
    return job_of(row)


async def ensure_job(conn: asyncpg.Connection, job_id: uuid.UUID) -> None:
    """JobNotFound unless the current user has this job (cheaper than fetch_job: no config to decode)."""
    if not await conn.fetchval("SELECT true FROM jobs WHERE job_id = $1", job_id):
        raise JobNotFound


async def fetch_rounds(conn: asyncpg.Connection, job_id: uuid.UUID) -> list[RoundSummary]:
    """Every round in order: the trainer's summary where it arrived, else an aggregate of the round's predictions."""
    rows = await conn.fetch(_ROUNDS, job_id)
    return rounds_of(rows)


async def fetch_summarized_rounds(
    conn: asyncpg.Connection, job_id: uuid.UUID, after_round: int, limit: int
) -> list[RoundSummary]:
    rows = await conn.fetch(
        f"{_SUMMARIZED_ROUNDS} AND round_index > $2 ORDER BY round_index LIMIT $3", job_id, after_round, limit
    )
    return rounds_of(rows)


async def fetch_warnings(
    conn: asyncpg.Connection, job_id: uuid.UUID, after_seq: int = 0, limit: int | None = None
) -> list[asyncpg.Record]:
    """Warnings in the order they were stored (`seq`), after `after_seq`; every one when `limit` is None."""
    return await conn.fetch(
        f"SELECT {WARNING_COLUMNS} FROM job_warnings WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        job_id,
        after_seq,
        limit,
    )


async def fetch_job_detail(conn: asyncpg.Connection, job_id: uuid.UUID) -> JobDetail:
    job = await fetch_job(conn, job_id)
    rounds = await fetch_rounds(conn, job_id)
    warnings = [warning_of(row) for row in await fetch_warnings(conn, job_id)]
    return JobDetail(**dict(job), rounds=rounds, warnings=warnings)


async def fetch_progress(
    conn: asyncpg.Connection, job_id: uuid.UUID, after_step: int, limit: int
) -> list[ProgressPoint]:
    rows = await conn.fetch(
        f"SELECT {PROGRESS_COLUMNS} FROM job_progress WHERE job_id = $1 AND step > $2 ORDER BY step LIMIT $3",
        job_id,
        after_step,
        limit,
    )
    return [progress_of(row) for row in rows]


async def fetch_new_predictions(
    conn: asyncpg.Connection, job_id: uuid.UUID, after_seq: int, limit: int
) -> list[tuple[int, Prediction]]:
    """(seq, prediction) in commit order after `after_seq`: what a live client has not seen yet."""
    rows = await conn.fetch(
        f"SELECT seq, {PREDICTION_READ_COLUMNS} FROM training_predictions"
        " WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        job_id,
        after_seq,
        limit,
    )
    return [(row["seq"], prediction_of(row)) for row in rows]


async def fetch_sample_history(conn: asyncpg.Connection, job_id: uuid.UUID, sample_id: str) -> SampleHistory:
    """One sample across all rounds; SampleNotFound without a prediction (or a NUL, which no text holds)."""
    if "\x00" in sample_id:
        raise SampleNotFound
    rows = await conn.fetch(
        f"SELECT {PREDICTION_READ_COLUMNS} FROM training_predictions"
        " WHERE job_id = $1 AND sample_id = $2 ORDER BY step",
        job_id,
        sample_id,
    )
    if not rows:
        raise SampleNotFound
    first = rows[0]
    return SampleHistory(
        sample_id=first["sample_id"],
        sample_index=first["sample_index"],
        prompt=first["prompt"],
        ground_truth=first["ground_truth"],
        rounds=_SAMPLE_ROUNDS.validate_python([prediction_fields(row) for row in rows]),
    )
