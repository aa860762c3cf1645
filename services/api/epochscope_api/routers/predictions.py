"""Predictions of one job: a keyset-paged list, the per-round summary, one sample across all rounds."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from epochscope_api.data.cursor import INT4_MAX
from epochscope_api.data.db import user_transaction
from epochscope_api.data.jobs import ensure_job
from epochscope_api.data.predictions import fetch_prediction_page, fetch_sample_history
from epochscope_api.data.rounds import fetch_round_page
from epochscope_api.deps import CurrentUser, PoolDep, SettingsDep, UserConn
from epochscope_api.http.direct_route import DirectRoute
from epochscope_api.http.errors import NOT_FOUND
from epochscope_api.response_models import PredictionPage, RoundList, SampleHistory
from epochscope_schemas.graders import GRADER_NAME_PATTERN

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["predictions"])


async def list_predictions(
    job_id: uuid.UUID,
    pool: PoolDep,
    user_id: CurrentUser,
    settings: SettingsDep,
    epoch: Annotated[float | None, Query(description="Only this epoch.")] = None,
    step: Annotated[int | None, Query(ge=0, le=INT4_MAX, description="Only this global step.")] = None,
    limit: Annotated[int, Query(ge=1, description="Page size, at most the server's page limit.")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    failing_grader: Annotated[
        str | None, Query(pattern=GRADER_NAME_PATTERN, description="Only predictions this grader graded and failed.")
    ] = None,
) -> Response:
    """In (step, sample_id) order; rows stored while a client pages appear on a later page, never twice. A page
    holds at most `limit` rows and stops early past the server's page size in bytes (always one row at least)."""
    limit = min(limit, settings.predictions_page_max)
    # The hottest read opens its transaction here rather than through UserConn: FastAPI's machinery for a
    # dependency that yields (an exit stack, a shielded cancel scope) cost a fifth of the page's framework time.
    async with user_transaction(pool, user_id) as conn:
        page = await fetch_prediction_page(
            conn, job_id, epoch, step, limit, cursor, settings.page_max_bytes, failing_grader
        )
    return Response(page, media_type="application/json")  # already PredictionPage's JSON, built by Postgres


# The hottest read: served by a DirectRoute, without FastAPI's general dependency solver (http/direct_route.py).
router.add_api_route(
    "/predictions",
    list_predictions,
    methods=["GET"],
    response_model=PredictionPage,
    responses=NOT_FOUND,
    operation_id="list_predictions",
    route_class_override=DirectRoute,
)


@router.get("/rounds", response_model=RoundList, responses=NOT_FOUND, operation_id="list_rounds")
async def list_rounds(
    job_id: uuid.UUID,
    conn: UserConn,
    settings: SettingsDep,
    after_round: Annotated[
        int, Query(ge=-1, le=INT4_MAX, description="Only rounds after this one (the last one a client has).")
    ] = -1,
) -> RoundList:
    """One line per prediction round, in order: the trainer's summary, or until it arrives the round's place and
    prediction count with every metric null. A page holds at most the server's page limit of rounds and stops short
    of its page size in bytes (`has_more`)."""
    await ensure_job(conn, job_id)
    page_max = settings.rounds_page_max
    items, more = await fetch_round_page(conn, job_id, after_round, page_max, settings.page_max_bytes)
    return RoundList(items=items, has_more=more)


@router.get(
    "/samples/{sample_id}", response_model=SampleHistory, responses=NOT_FOUND, operation_id="get_sample_history"
)
async def get_sample_history(
    job_id: uuid.UUID,
    sample_id: Annotated[str, Path(max_length=200)],
    conn: UserConn,
    settings: SettingsDep,
    after_step: Annotated[
        int, Query(ge=-1, le=INT4_MAX, description="Only rounds after this step (the last one a client has).")
    ] = -1,
) -> SampleHistory:
    """One sample across its rounds, with its ground truth; bounded in rows and bytes (`has_more`)."""
    await ensure_job(conn, job_id)
    limit, max_bytes = settings.sample_rounds_max, settings.page_max_bytes
    return await fetch_sample_history(conn, job_id, sample_id, after_step, limit, max_bytes)
