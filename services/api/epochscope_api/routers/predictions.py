"""Predictions of one job, newest rounds last, with keyset pagination."""

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from epochscope_api.auth import CurrentUser
from epochscope_api.cursor import decode_cursor, encode_cursor
from epochscope_api.db import user_transaction
from epochscope_api.models import Prediction, PredictionPage, RoundList, RoundSummary, SampleHistory, SampleRound
from epochscope_api.routers.jobs import NOT_FOUND, Pool, Settings, fetch_job

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["predictions"])

PREDICTION_COLUMNS = (
    "round_index, epoch, step, sample_id, sample_index, prompt, ground_truth, prediction,"
    " tokens_generated, latency_ms, created_at"
)


@router.get("/predictions", response_model=PredictionPage, responses=NOT_FOUND, operation_id="list_predictions")
async def list_predictions(
    job_id: uuid.UUID,
    user_id: CurrentUser,
    pool: Pool,
    settings: Settings,
    epoch: Annotated[float | None, Query(description="Only this epoch.")] = None,
    step: Annotated[int | None, Query(ge=0, description="Only this global step.")] = None,
    limit: Annotated[int, Query(ge=1, description="Page size, at most the server's page limit.")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> PredictionPage:
    limit = min(limit, settings.predictions_page_max)
    after_step, after_sample = decode_cursor(cursor, 2) if cursor else (-1, "")
    async with user_transaction(pool, user_id) as conn:
        await fetch_job(conn, job_id)
        rows = await conn.fetch(
            f"SELECT {PREDICTION_COLUMNS} FROM training_predictions"
            " WHERE job_id = $1 AND (step, sample_id) > ($2, $3)"
            " AND ($4::float8 IS NULL OR epoch = $4) AND ($5::int IS NULL OR step = $5)"
            " ORDER BY step, sample_id LIMIT $6",
            job_id,
            int(after_step),
            str(after_sample),
            epoch,
            step,
            limit + 1,
        )
    items = [Prediction(**dict(row)) for row in rows[:limit]]
    next_cursor = encode_cursor([items[-1].step, items[-1].sample_id]) if items else cursor
    return PredictionPage(items=items, next_cursor=next_cursor, has_more=len(rows) > limit)


@router.get("/rounds", response_model=RoundList, responses=NOT_FOUND, operation_id="list_rounds")
async def list_rounds(job_id: uuid.UUID, user_id: CurrentUser, pool: Pool) -> RoundList:
    """One line per prediction round, in order."""
    async with user_transaction(pool, user_id) as conn:
        await fetch_job(conn, job_id)
        rows = await conn.fetch(
            "SELECT round_index, min(epoch) AS epoch, min(step) AS step, count(*) AS predictions,"
            " sum(tokens_generated) AS tokens, avg(latency_ms) AS mean_latency_ms,"
            " min(created_at) AS first_at, max(created_at) AS last_at"
            " FROM training_predictions WHERE job_id = $1 GROUP BY round_index ORDER BY round_index",
            job_id,
        )
    return RoundList(items=[RoundSummary(**dict(row)) for row in rows])


@router.get(
    "/samples/{sample_id}", response_model=SampleHistory, responses=NOT_FOUND, operation_id="get_sample_history"
)
async def get_sample_history(job_id: uuid.UUID, sample_id: str, user_id: CurrentUser, pool: Pool) -> SampleHistory:
    """One sample across all rounds, with its ground truth."""
    async with user_transaction(pool, user_id) as conn:
        await fetch_job(conn, job_id)
        rows = await conn.fetch(
            f"SELECT {PREDICTION_COLUMNS} FROM training_predictions WHERE job_id = $1 AND sample_id = $2 ORDER BY step",
            job_id,
            sample_id,
        )
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="sample not found")
    first = rows[0]
    return SampleHistory(
        sample_id=first["sample_id"],
        sample_index=first["sample_index"],
        prompt=first["prompt"],
        ground_truth=first["ground_truth"],
        rounds=[SampleRound(**{name: row[name] for name in SampleRound.model_fields}) for row in rows],
    )
