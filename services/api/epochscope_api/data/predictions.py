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


def _finite(column: str) -> str:
    """SQL: a float8 column, null where it is not finite (JSON has no Infinity or NaN; pydantic writes null)."""
    return f"CASE WHEN {column} IN ('Infinity', '-Infinity', 'NaN') THEN NULL ELSE {column} END"


def _iso_utc(column: str) -> str:
    """SQL: a timestamptz column as pydantic writes a UTC datetime (`...T16:29:02.102096Z`, no fraction when it is
    whole), so the page and the exports render a prediction's time alike."""
    whole = f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    fraction = f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    return f"CASE WHEN extract(microseconds FROM {column})::bigint % 1000000 = 0 THEN {whole} ELSE {fraction} END"


_SCORES_JSON = (
    "CASE WHEN exact_match IS NULL OR f1 IS NULL OR rouge_l IS NULL THEN NULL ELSE json_build_object("
    f"'exact_match', {_finite('exact_match')}, 'f1', {_finite('f1')}, 'rouge_l', {_finite('rouge_l')}) END"
)
# A prediction as the JSON of the API's Prediction model, built by Postgres: a page is encoded once, where the rows
# are, and the API passes it through (no per-row decoding, validation and re-encoding in Python). Non-finite numbers
# become null, as pydantic writes them; the grades carry the user's verdict as the `human` grade.
PREDICTION_JSON = (
    f"json_build_object('round_index', round_index, 'epoch', {_finite('epoch')}, 'step', step,"
    " 'sample_id', sample_id, 'sample_index', sample_index, 'prompt', prompt, 'ground_truth', ground_truth,"
    f" 'prediction', prediction, 'tokens_generated', tokens_generated, 'latency_ms', {_finite('latency_ms')},"
    f" 'valid', valid, 'validation_error', validation_error, 'scores', {_SCORES_JSON},"
    f" 'grades', {graded('training_predictions')}, 'truncated', truncated,"
    f" 'created_at', {_iso_utc('created_at')})::text"
)
# Keyset pagination on the primary key (job_id, step, sample_id): a deep page costs what the first does.
# The job comes along in the same round trip: no row means no such job for this user (RLS), and a
# single row of NULLs means the job has nothing past the cursor.
PREDICTION_PAGE_SQL = (
    "SELECT page.step, page.sample_id, page.item, page.followed FROM jobs LEFT JOIN LATERAL ("
    + bounded_by_bytes(
        f"SELECT step, sample_id, {PREDICTION_JSON} AS item, {PREDICTION_BYTES} AS row_bytes"
        " FROM training_predictions"
        " WHERE job_id = $1 AND (step, sample_id) > ($2, $3)"
        " AND ($4::float8 IS NULL OR epoch = $4) AND ($5::int IS NULL OR step = $5)"
        f" AND ($8::text IS NULL OR {graded('training_predictions')} -> $8 ->> 'passed' = 'false')"
        " ORDER BY step, sample_id LIMIT $6",
        "step, sample_id",
        "$7",
    )
    + ") page ON true WHERE jobs.job_id = $1"
)
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
    job_id: uuid.UUID,
    epoch: float | None,
    step: int | None,
    limit: int,
    cursor: str | None,
    max_bytes: int,
    failing_grader: str | None = None,
) -> bytes:
    """Up to `limit` predictions, and about `max_bytes` (at least one row), in (step, sample_id) order after
    `cursor`, as the JSON of a PredictionPage; with `failing_grader`, only those that grader graded and failed;
    JobNotFound without the job."""
    after_step, after_sample = decode_cursor(cursor, INT4, text) if cursor else (-1, "")
    rows = await conn.fetch(
        PREDICTION_PAGE_SQL, job_id, after_step, after_sample, epoch, step, limit + 1, max_bytes, failing_grader
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
