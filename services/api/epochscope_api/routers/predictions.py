"""Predictions of one job: a keyset-paged list, the per-round summary, one sample across all rounds."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query

from epochscope_api.cursor import INT4_MAX
from epochscope_api.data.jobs import ensure_job
from epochscope_api.data.predictions import fetch_prediction_page, fetch_sample_history
from epochscope_api.data.rounds import fetch_rounds
from epochscope_api.deps import SettingsDep, UserConn
from epochscope_api.http_errors import NOT_FOUND
from epochscope_api.response_models import PredictionPage, RoundList, SampleHistory

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["predictions"])


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
    return await fetch_prediction_page(conn, job_id, epoch, step, min(limit, settings.predictions_page_max), cursor)


@router.get("/rounds", response_model=RoundList, responses=NOT_FOUND, operation_id="list_rounds")
async def list_rounds(job_id: uuid.UUID, conn: UserConn) -> RoundList:
    """One line per prediction round, in order: the trainer's summary, or an aggregate until it arrives."""
    await ensure_job(conn, job_id)
    return RoundList(items=await fetch_rounds(conn, job_id))


@router.get(
    "/samples/{sample_id}", response_model=SampleHistory, responses=NOT_FOUND, operation_id="get_sample_history"
)
async def get_sample_history(
    job_id: uuid.UUID, sample_id: Annotated[str, Path(max_length=200)], conn: UserConn
) -> SampleHistory:
    """One sample across all rounds, with its ground truth."""
    await ensure_job(conn, job_id)
    return await fetch_sample_history(conn, job_id, sample_id)
