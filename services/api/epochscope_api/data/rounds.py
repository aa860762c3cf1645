"""A job's prediction rounds: the trainer's summary is the only source of a round's metrics, and the user's verdicts
add the `human` grader to it. A round whose summary has not arrived (in progress, or lost) is listed with its place
and how many predictions are stored, nothing judged."""

import uuid
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from epochscope_api.data.verdicts import with_human_summary
from epochscope_api.response_models import RoundSummary
from epochscope_schemas.checkpoints import round_metric

# The trainer's round summaries.
_SUMMARIZED_ROUNDS = (
    "SELECT round_index, epoch, step, trigger, true AS summarized, predictions, validated, valid, scored,"
    " mean_exact_match, mean_f1, mean_rouge_l,"
    f" {with_human_summary('job_rounds.graders', 'job_rounds.job_id', 'job_rounds.step')} AS graders,"
    " tokens_generated AS tokens, wall_ms, stall_ms, occurred_at"
    " FROM job_rounds WHERE job_id = $1"
)
# Rounds without a summary: those after the last summarized one (in progress), and any gap below it. Only where
# they are and how many predictions arrived: every metric stays null until the summary lands. Only their
# predictions are read (index on job_id, round_index), not the job's whole history.
_UNSUMMARIZED_ROUNDS = (
    "SELECT round_index, min(epoch), min(step), NULL, false, count(*), NULL::integer, NULL::integer, NULL::integer,"
    " NULL::float8, NULL::float8, NULL::float8, NULL::jsonb, NULL::integer, NULL::float8, NULL::float8,"
    " max(created_at)"
    " FROM training_predictions WHERE job_id = $1 AND (round_index > (SELECT last FROM summarized)"
    " OR round_index = ANY(ARRAY(SELECT generate_series(0, (SELECT last FROM summarized))"
    " EXCEPT SELECT round_index FROM job_rounds WHERE job_id = $1)))"
    " GROUP BY round_index"
)
_ROUNDS = (
    "WITH summarized AS (SELECT coalesce(max(round_index), -1) AS last FROM job_rounds WHERE job_id = $1)"
    f" {_SUMMARIZED_ROUNDS} UNION ALL {_UNSUMMARIZED_ROUNDS} ORDER BY round_index"
)

_ROUND_LIST = TypeAdapter(list[RoundSummary])
ROUND_BYTES = 512  # at most one RoundSummary's JSON (numbers and a short trigger): pages of rounds count by it


def _round_fields(row: asyncpg.Record) -> dict[str, Any]:
    """The row with its summary's pass rates, read as checkpoints and stop_when read them (`round_metric`); an
    unsummarized round has none."""
    fields = dict(row)
    if not fields["summarized"]:
        return fields | {"validator_pass_rate": None}
    fields["validator_pass_rate"] = round_metric(fields, "validator_pass_rate")
    fields["graders"] = {
        name: summary | {"pass_rate": round_metric(fields, f"grader_pass_rate:{name}")}
        for name, summary in fields["graders"].items()
    }
    return fields


def _rounds_of(rows: list[asyncpg.Record]) -> list[RoundSummary]:
    """Round rows as models, validated in one call (a long job has thousands of rounds)."""
    return _ROUND_LIST.validate_python([_round_fields(row) for row in rows])


async def fetch_rounds(conn: asyncpg.Connection, job_id: uuid.UUID) -> list[RoundSummary]:
    """Every round in order: the trainer's summary where it arrived, else the round's place and prediction count."""
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
