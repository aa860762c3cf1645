"""Exports: every prediction of a job, or of compared jobs on their shared samples, or every GRPO rollout of a job,
streamed as JSONL, CSV or Parquet in keyset pages: the API's memory stays flat whatever the number of rows, and a
slow download holds no database connection. At most EPOCHSCOPE_EXPORTS_PER_USER downloads per user at once (a 429
past it)."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from epochscope_api.data.comparisons import fetch_compared_jobs
from epochscope_api.data.exports import export_plan, stream_rows
from epochscope_api.data.rollouts import stream_rollouts
from epochscope_api.deps import CurrentUser, ExportSlotsDep, PoolDep, UserConn
from epochscope_api.exports.encoders import ENCODERS, MEDIA_TYPES, ExportFormat, PredictionRows
from epochscope_api.exports.rollout_rows import RolloutRows, reward_names
from epochscope_api.http.errors import NOT_FOUND, QUOTA
from epochscope_api.routers.comparisons import JobIds

router = APIRouter(tags=["exports"])

FormatQuery = Annotated[ExportFormat, Query(description="jsonl (the API's rows), csv or parquet (flat columns).")]
EXPORT_RESPONSES = (
    NOT_FOUND
    | QUOTA
    | {
        200: {
            "description": "The file, streamed.",
            "content": {media: {} for media in MEDIA_TYPES.values()},
        }
    }
)


async def _export(
    conn: UserConn,
    pool: PoolDep,
    slots: ExportSlotsDep,
    user_id: str,
    job_ids: list[uuid.UUID],
    shared_only: bool,
    fmt: ExportFormat,
    name: str,
) -> StreamingResponse:
    graders, samples = await export_plan(conn, job_ids, shared_only)  # a foreign job: 404 before any byte is sent
    body = slots.hold(user_id, ENCODERS[fmt](stream_rows(pool, user_id, job_ids, samples), PredictionRows(graders)))
    return _attachment(body, fmt, name)


def _attachment(body: Any, fmt: ExportFormat, name: str) -> StreamingResponse:
    headers = {"Content-Disposition": f'attachment; filename="{name}.{fmt.value}"'}
    return StreamingResponse(body, media_type=MEDIA_TYPES[fmt], headers=headers)


@router.get(
    "/v1/jobs/{job_id}/predictions/export",
    response_class=StreamingResponse,
    responses=EXPORT_RESPONSES,
    operation_id="export_predictions",
)
async def export_predictions(
    job_id: uuid.UUID,
    conn: UserConn,
    pool: PoolDep,
    slots: ExportSlotsDep,
    user_id: CurrentUser,
    format: FormatQuery = ExportFormat.JSONL,
) -> StreamingResponse:
    """Every prediction of the job with its scores and grades, in (step, sample_id) order."""
    return await _export(conn, pool, slots, user_id, [job_id], False, format, f"predictions-{job_id}")


@router.get(
    "/v1/comparisons/export",
    response_class=StreamingResponse,
    responses=EXPORT_RESPONSES,
    operation_id="export_comparison",
)
async def export_comparison(
    job_ids: JobIds,
    conn: UserConn,
    pool: PoolDep,
    slots: ExportSlotsDep,
    user_id: CurrentUser,
    format: FormatQuery = ExportFormat.JSONL,
) -> StreamingResponse:
    """Every prediction of the compared jobs on the samples they share, job by job."""
    return await _export(conn, pool, slots, user_id, job_ids, True, format, "comparison")


@router.get(
    "/v1/jobs/{job_id}/rollouts/export",
    response_class=StreamingResponse,
    responses=EXPORT_RESPONSES,
    operation_id="export_rollouts",
)
async def export_rollouts(
    job_id: uuid.UUID,
    conn: UserConn,
    pool: PoolDep,
    slots: ExportSlotsDep,
    user_id: CurrentUser,
    format: FormatQuery = ExportFormat.JSONL,
) -> StreamingResponse:
    """Every GRPO rollout of the job with each reward component's score, the total and the advantage, in
    (step, completion_index) order."""
    (job,) = await fetch_compared_jobs(conn, [job_id])  # a foreign job: 404 before any byte is sent
    body = slots.hold(
        user_id, ENCODERS[format](stream_rollouts(pool, user_id, job_id), RolloutRows(reward_names(job["config"])))
    )
    return _attachment(body, format, f"rollouts-{job_id}")
