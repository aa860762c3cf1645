"""A job's predictions: keyset pages, the rows a live client has not seen, one sample across all rounds."""

import uuid
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from epochscope_api.cursor import INT4, decode_cursor, encode_cursor, text
from epochscope_api.errors import JobNotFound, SampleNotFound
from epochscope_api.response_models import Prediction, PredictionPage, SampleHistory, SampleRound

# What the API reads of a prediction row (the writer inserts more: job_id, seq, ...).
PREDICTION_READ_COLUMNS = (
    "round_index, epoch, step, sample_id, sample_index, prompt, ground_truth, prediction, tokens_generated,"
    " latency_ms, valid, validation_error, exact_match, f1, rouge_l, grades, truncated, created_at"
)
# Keyset pagination on the primary key (job_id, step, sample_id): a deep page costs what the first does.
# The job comes along in the same round trip: no row means no such job for this user (RLS), and a
# single row of NULLs means the job has nothing past the cursor.
PREDICTION_PAGE_SQL = (
    "SELECT page.* FROM jobs LEFT JOIN LATERAL ("
    f"SELECT {PREDICTION_READ_COLUMNS} FROM training_predictions"
    " WHERE job_id = $1 AND (step, sample_id) > ($2, $3)"
    " AND ($4::float8 IS NULL OR epoch = $4) AND ($5::int IS NULL OR step = $5)"
    " ORDER BY step, sample_id LIMIT $6"
    ") page ON true WHERE jobs.job_id = $1"
)

_SAMPLE_ROUNDS = TypeAdapter(list[SampleRound])


def _prediction_fields(row: asyncpg.Record) -> dict[str, Any]:
    """A prediction row as Prediction's fields (scores nested), so a whole page is validated in one call."""
    fields = dict(row)
    scores = {name: fields.pop(name) for name in ("exact_match", "f1", "rouge_l")}
    fields["scores"] = None if None in scores.values() else scores
    return fields


async def fetch_prediction_page(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    epoch: float | None,
    step: int | None,
    limit: int,
    cursor: str | None,
) -> PredictionPage:
    """Up to `limit` predictions in (step, sample_id) order after `cursor`; JobNotFound without the job."""
    after_step, after_sample = decode_cursor(cursor, INT4, text) if cursor else (-1, "")
    rows = await conn.fetch(PREDICTION_PAGE_SQL, job_id, after_step, after_sample, epoch, step, limit + 1)
    if not rows:
        raise JobNotFound
    rows = [row for row in rows if row["step"] is not None]
    last = rows[min(limit, len(rows)) - 1] if rows else None
    return PredictionPage.model_validate(
        {
            "items": [_prediction_fields(row) for row in rows[:limit]],
            "next_cursor": encode_cursor([last["step"], last["sample_id"]]) if last else cursor,
            "has_more": len(rows) > limit,
        }
    )


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
    return [(row["seq"], Prediction.model_validate(_prediction_fields(row))) for row in rows]


async def fetch_sample_history(conn: asyncpg.Connection, job_id: uuid.UUID, sample_id: str) -> SampleHistory:
    """One sample across all rounds; SampleNotFound without a prediction (or with a NUL, which no text holds)."""
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
        rounds=_SAMPLE_ROUNDS.validate_python([_prediction_fields(row) for row in rows]),
    )
