"""Predictions of one job: a keyset-paged list, the per-round summary, one sample across all rounds."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query

from epochscope_api.cursor import INT4, INT4_MAX, decode_cursor, encode_cursor, text
from epochscope_api.deps import SettingsDep, UserConn
from epochscope_api.errors import JobNotFound
from epochscope_api.http_errors import NOT_FOUND
from epochscope_api.queries import (
    PREDICTION_READ_COLUMNS,
    ensure_job,
    fetch_rounds,
    fetch_sample_history,
    prediction_fields,
)
from epochscope_api.response_models import PredictionPage, RoundList, SampleHistory

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["predictions"])

# Keyset pagination on the primary key (job_id, step, sample_id): a deep page costs what the first does.
# The job comes along in the same round trip: no row means no such job for this user (RLS), and a
# single row of NULLs means the job has nothing past the cursor.
PAGE_QUERY = (
    "SELECT page.* FROM jobs LEFT JOIN LATERAL ("
    f"SELECT {PREDICTION_READ_COLUMNS} FROM training_predictions"
    " WHERE job_id = $1 AND (step, sample_id) > ($2, $3)"
    " AND ($4::float8 IS NULL OR epoch = $4) AND ($5::int IS NULL OR step = $5)"
    " ORDER BY step, sample_id LIMIT $6"
    ") page ON true WHERE jobs.job_id = $1"
)


@router.get("/predictions", response_model=PredictionPage, responses=NOT_FOUND, operation_id="list_predictions")
async def list_predictions(
    job_id: uuid.UUID,
    conn: UserConn,
    settings: SettingsDep,
    epoch: Annotated[float | None, Query(description="Only this epoch.")] = None,
    step: Annotated[int | None, Query(ge=0, le=INT4_MAX, description="Only this global step.")] = None,
    limit: Annotated[int, Query(ge=1, description="Page size, at most the server's page limit.")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> PredictionPage:
    """In (step, sample_id) order; rows stored while a client pages appear on a later page, never twice."""
    limit = min(limit, settings.predictions_page_max)
    after_step, after_sample = decode_cursor(cursor, INT4, text) if cursor else (-1, "")
    rows = await conn.fetch(PAGE_QUERY, job_id, after_step, after_sample, epoch, step, limit + 1)
    if not rows:
        raise JobNotFound
    rows = [row for row in rows if row["step"] is not None]
    last = rows[min(limit, len(rows)) - 1] if rows else None
    return PredictionPage.model_validate(
        {
            "items": [prediction_fields(row) for row in rows[:limit]],
            "next_cursor": encode_cursor([last["step"], last["sample_id"]]) if last else cursor,
            "has_more": len(rows) > limit,
        }
    )


@router.get("/rounds", response_model=RoundList, responses=NOT_FOUND, operation_id="list_rounds")
async def list_rounds(job_id: uuid.UUID, conn: UserConn) -> RoundList:
    """One line per prediction round, in order: the trainer's summary, or an aggregate until it arrives."""
    await ensure_job(conn, job_id)
    return RoundList(items=await fetch_rounds(conn, job_id))


@router.get(
    "/samples/{sample_id}", response_model=SampleHistory, responses=NOT_FOUND, operation_id="get_sample_history"
)
async def get_sample_history(
    job_id: uuid.UUID,
    sample_id: Annotated[str, Path(max_length=200)],
    conn: UserConn,
) -> SampleHistory:
    """One sample across all rounds, with its ground truth."""
    await ensure_job(conn, job_id)
    return await fetch_sample_history(conn, job_id, sample_id)
