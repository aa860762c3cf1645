"""A job's predictions: keyset pages, the rows a live client has not seen, one sample across all rounds."""

import uuid
from typing import Any

import asyncpg
import orjson
from pydantic import TypeAdapter

from epochscope_api.data.cursor import INT4, decode_cursor, encode_cursor, text
from epochscope_api.data.page_bytes import bounded_by_bytes, text_bytes, without_measures
from epochscope_api.data.verdicts import graded
from epochscope_api.errors import JobNotFound, SampleNotFound
from epochscope_api.response_models import Prediction, SampleHistory, SampleRound

_READ_COLUMNS = (
    "round_index, epoch, step, sample_id, sample_index, prompt, ground_truth, prediction, tokens_generated,"
    " latency_ms, valid, validation_error, exact_match, f1, rouge_l"
)


def prediction_columns(table: str) -> str:
    """What the API reads of a prediction row of `table` (a name or alias; the writer inserts more: job_id, seq,
    ...): its grades with the user's verdict as the `human` grade."""
    columns = ", ".join(f"{table}.{column.strip()}" for column in _READ_COLUMNS.split(","))
    return f"{columns}, {graded(table)} AS grades, {table}.truncated, {table}.created_at"


PREDICTION_READ_COLUMNS = prediction_columns("training_predictions")
# A row's size, for pages bounded in bytes (page_bytes.py): its text columns, measured in Postgres.
PREDICTION_BYTES = text_bytes("sample_id", "prompt", "ground_truth", "prediction", "validation_error", "grades::text")


# Keyset pagination on the primary key (job_id, step, sample_id): a deep page costs what the first does. One round
# trip: the function (migration 0044) sets the user for its statement's transaction, then reads the page, each row
# already the JSON of the API's Prediction model (encoded once, by Postgres; the API passes it through). The job comes
# along: no row means no such job for this user (RLS), and a single row of NULLs means nothing past the cursor.
PREDICTION_PAGE_SQL = "SELECT step, sample_id, item, followed FROM prediction_page($1, $2, $3, $4, $5, $6, $7, $8, $9)"
NEW_PREDICTIONS_SQL = bounded_by_bytes(
    f"SELECT seq, {PREDICTION_READ_COLUMNS}, {PREDICTION_BYTES} AS row_bytes FROM training_predictions"
    " WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    "seq",
    "$4",
)
# A sample's history returns its prompt and ground truth once: a round counts its own texts only.
SAMPLE_HISTORY_SQL = bounded_by_bytes(
    f"SELECT {PREDICTION_READ_COLUMNS}, {text_bytes('prediction', 'validation_error')} AS row_bytes"
    " FROM training_predictions"
    " WHERE job_id = $1 AND sample_id = $2 AND step > $3 ORDER BY step LIMIT $4",
    "step",
    "$5",
)

_SAMPLE_ROUNDS = TypeAdapter(list[SampleRound])


def _prediction_fields(row: asyncpg.Record) -> dict[str, Any]:
    """A prediction row as Prediction's fields (scores nested), so a whole page is validated in one call."""
    fields = without_measures(dict(row))
    scores = {name: fields.pop(name) for name in ("exact_match", "f1", "rouge_l")}
    fields["scores"] = None if None in scores.values() else scores
    return fields


async def fetch_prediction_page(
    conn: asyncpg.Connection,
    user_id: str,
    job_id: uuid.UUID,
    epoch: float | None,
    step: int | None,
    limit: int,
    cursor: str | None,
    max_bytes: int,
    failing_grader: str | None = None,
) -> bytes:
    """Up to `limit` predictions of `user_id`'s job, and about `max_bytes` (at least one row), in (step, sample_id)
    order after `cursor`, as the JSON of a PredictionPage; with `failing_grader`, only those that grader graded and
    failed; JobNotFound without the job. `conn` must be outside a transaction: the user is set for this statement's.
    """
    after_step, after_sample = decode_cursor(cursor, INT4, text) if cursor else (-1, "")
    rows = await conn.fetch(
        PREDICTION_PAGE_SQL,
        user_id,
        job_id,
        after_step,
        after_sample,
        epoch,
        step,
        limit + 1,
        max_bytes,
        failing_grader,
    )
    if not rows:
        raise JobNotFound
    rows = [row for row in rows if row["step"] is not None][:limit]
    last = rows[-1] if rows else None
    next_cursor = encode_cursor([last["step"], last["sample_id"]]) if last else cursor
    ending = orjson.dumps({"next_cursor": next_cursor, "has_more": bool(last and last["followed"])})
    return b"".join([b'{"items":[', ",".join(row["item"] for row in rows).encode(), b"],", ending[1:]])


async def fetch_new_predictions(
    conn: asyncpg.Connection, job_id: uuid.UUID, after_seq: int, limit: int, max_bytes: int
) -> tuple[list[tuple[int, Prediction]], bool]:
    """(seq, prediction) in commit order after `after_seq`, at most `limit` and about `max_bytes` (at least one):
    what a live client has not seen yet; and whether more rows exist."""
    rows = (await conn.fetch(NEW_PREDICTIONS_SQL, job_id, after_seq, limit + 1, max_bytes))[:limit]
    more = bool(rows and rows[-1]["followed"])
    return [(row["seq"], Prediction.model_validate(_prediction_fields(row))) for row in rows], more


async def fetch_sample_history(
    conn: asyncpg.Connection, job_id: uuid.UUID, sample_id: str, after_step: int, limit: int, max_bytes: int
) -> SampleHistory:
    """One sample across its rounds after `after_step`, at most `limit` and about `max_bytes` (at least one);
    SampleNotFound without a prediction there (or with a NUL in the id, which no text holds)."""
    if "\x00" in sample_id:
        raise SampleNotFound
    rows = (await conn.fetch(SAMPLE_HISTORY_SQL, job_id, sample_id, after_step, limit + 1, max_bytes))[:limit]
    first = rows[0] if rows else await conn.fetchrow(SAMPLE_HISTORY_SQL, job_id, sample_id, -1, 1, max_bytes)
    if first is None:
        raise SampleNotFound
    return SampleHistory(
        sample_id=first["sample_id"],
        sample_index=first["sample_index"],
        prompt=first["prompt"],
        ground_truth=first["ground_truth"],
        rounds=_SAMPLE_ROUNDS.validate_python([_prediction_fields(row) for row in rows]),
        has_more=bool(rows and rows[-1]["followed"]),
    )
