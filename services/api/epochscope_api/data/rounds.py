"""A job's prediction rounds: the trainer's summary where it arrived, else an aggregate of the round's predictions."""

import uuid
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from epochscope_api.response_models import RoundSummary
from epochscope_schemas.checkpoints import round_metric

# The trainer's round summaries, in the shape of an aggregate over a round's predictions (below).
_SUMMARIZED_ROUNDS = (
    "SELECT round_index, epoch, step, trigger, true AS summarized, predictions, validated, valid, scored,"
    " mean_exact_match, mean_f1, mean_rouge_l, graders, tokens_generated AS tokens, wall_ms, stall_ms, occurred_at"
    " FROM job_rounds WHERE job_id = $1"
)
# Each grader over one unsummarized round, in the shape of the trainer's summary (round_index of the outer query).
_AGGREGATED_GRADERS = (
    "(SELECT coalesce(jsonb_object_agg(name, jsonb_build_object('graded', graded, 'passed', passed,"
    " 'mean_score', mean_score)), '{}'::jsonb) FROM (SELECT g.key AS name, count(*) AS graded,"
    " count(*) FILTER (WHERE (g.value->>'passed')::boolean) AS passed, avg((g.value->>'score')::float8) AS mean_score"
    " FROM training_predictions AS graded_rows, jsonb_each(graded_rows.grades) AS g"
    " WHERE graded_rows.job_id = $1 AND graded_rows.round_index = training_predictions.round_index"
    " GROUP BY g.key) AS per_grader)"
)
# Rounds without a summary: those after the last summarized one (in progress), and any gap below it.
# Only their predictions are read (index on job_id, round_index), not the job's whole history.
_AGGREGATED_ROUNDS = (
    "SELECT round_index, min(epoch), min(step), NULL, false, count(*), count(valid), count(*) FILTER (WHERE valid),"
    f" count(exact_match), avg(exact_match), avg(f1), avg(rouge_l), {_AGGREGATED_GRADERS}, sum(tokens_generated),"
    " NULL::float8, NULL::float8, max(created_at)"
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
ROUND_BYTES = 512  # at most one RoundSummary's JSON (numbers and a short trigger): pages of rounds count by it


def _round_fields(row: asyncpg.Record) -> dict[str, Any]:
    """The row with its pass rates, read as checkpoints and stop_when read them (`round_metric`)."""
    fields = dict(row)
    fields["validator_pass_rate"] = round_metric(fields, "validator_pass_rate")
    fields["graders"] = {
        name: summary | {"pass_rate": round_metric(fields, f"grader_pass_rate:{name}")}
        for name, summary in (fields["graders"] or {}).items()
    }
    return fields


def _rounds_of(rows: list[asyncpg.Record]) -> list[RoundSummary]:
    """Round rows as models, validated in one call (a long job has thousands of rounds)."""
    return _ROUND_LIST.validate_python([_round_fields(row) for row in rows])


async def fetch_rounds(conn: asyncpg.Connection, job_id: uuid.UUID) -> list[RoundSummary]:
    """Every round in order: the trainer's summary where it arrived, else an aggregate of the round's predictions."""
    return _rounds_of(await conn.fetch(_ROUNDS, job_id))


async def fetch_round_page(
    conn: asyncpg.Connection, job_id: uuid.UUID, after_round: int, limit: int, max_bytes: int
) -> tuple[list[RoundSummary], bool]:
    """Rounds in order after `after_round`: at most `limit`, and as many as fit `max_bytes` (at least one); and
    whether more exist."""
    limit = max(1, min(limit, max_bytes // ROUND_BYTES))
    rows = await conn.fetch(
        f"SELECT * FROM ({_ROUNDS}) rounds WHERE round_index > $2 ORDER BY round_index LIMIT $3",
        job_id,
        after_round,
        limit + 1,
    )
    return _rounds_of(rows[:limit]), len(rows) > limit


async def fetch_summarized_rounds(
    conn: asyncpg.Connection, job_id: uuid.UUID, after_round: int, limit: int
) -> list[RoundSummary]:
    """The trainer's summaries in round order after `after_round` (what a live client has not seen yet)."""
    rows = await conn.fetch(
        f"{_SUMMARIZED_ROUNDS} AND round_index > $2 ORDER BY round_index LIMIT $3", job_id, after_round, limit
    )
    return _rounds_of(rows)
