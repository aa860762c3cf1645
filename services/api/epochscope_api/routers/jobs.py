"""Jobs: create (job row + start event in one transaction), list, read (with progress, rounds and warnings),
progress history, cancel, delete."""

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from epochscope_api.cursor import INT4_MAX, decode_cursor, encode_cursor, text
from epochscope_api.deps import CurrentUser, SettingsDep, UserConn
from epochscope_api.http_errors import NOT_FOUND
from epochscope_api.outbox import enqueue
from epochscope_api.queries import JOB_COLUMNS, ensure_job, fetch_job, fetch_job_detail, fetch_progress, job_of
from epochscope_api.response_models import Job, JobDetail, JobPage, ProgressHistory
from epochscope_api.validation import check_job_config
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import JobCancelEvent, JobStartEvent, JobStatus
from epochscope_schemas.job_token import mint_job_token
from epochscope_schemas.topics import JOBS_START

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _timestamp(value: Any) -> datetime:
    return datetime.fromisoformat(text(value))


def _uuid(value: Any) -> uuid.UUID:
    return uuid.UUID(text(value))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Job, operation_id="create_job")
async def create_job(config: JobConfig, user_id: CurrentUser, conn: UserConn, settings: SettingsDep) -> Job:
    check_job_config(config, settings.limits)
    job_id = uuid.uuid4()
    token, claims = mint_job_token(
        settings.job_token_secret.get_secret_value(), job_id, user_id, timedelta(hours=settings.job_token_ttl_hours)
    )
    await conn.execute(
        "INSERT INTO jobs (job_id, owner_id, config, token_expires_at) VALUES ($1, $2, $3, $4)",
        job_id,
        user_id,
        config.model_dump(mode="json"),
        claims.expires_at,
    )
    await enqueue(conn, JOBS_START, JobStartEvent(job_id=job_id, user_id=user_id, config=config, job_token=token))
    return await fetch_job(conn, job_id)


@router.get("", response_model=JobPage, operation_id="list_jobs")
async def list_jobs(
    conn: UserConn,
    settings: SettingsDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status", description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, description="Page size, at most the server's page limit.")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> JobPage:
    """The current user's jobs, newest first."""
    limit = min(limit, settings.predictions_page_max)
    before = decode_cursor(cursor, _timestamp, _uuid) if cursor else None
    rows = await conn.fetch(
        f"SELECT {JOB_COLUMNS} FROM jobs"
        " WHERE ($1::text IS NULL OR status = $1)"
        " AND ($2::timestamptz IS NULL OR (created_at, job_id) < ($2, $3::uuid))"
        " ORDER BY created_at DESC, job_id DESC LIMIT $4",
        status_filter,
        before[0] if before else None,
        before[1] if before else None,
        limit + 1,
    )
    items = [job_of(row) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return JobPage(
        items=items, next_cursor=encode_cursor([last.created_at.isoformat(), str(last.job_id)]) if last else None
    )


@router.get("/{job_id}", response_model=JobDetail, responses=NOT_FOUND, operation_id="get_job")
async def get_job(job_id: uuid.UUID, conn: UserConn) -> JobDetail:
    """The job with its status, latest progress, per-round summary and warnings."""
    return await fetch_job_detail(conn, job_id)


@router.get("/{job_id}/progress", response_model=ProgressHistory, responses=NOT_FOUND, operation_id="get_job_progress")
async def get_job_progress(
    job_id: uuid.UUID,
    conn: UserConn,
    settings: SettingsDep,
    after_step: Annotated[
        int, Query(ge=-1, le=INT4_MAX, description="Only points after this step (the last one a client has).")
    ] = -1,
    limit: Annotated[int, Query(ge=1, description="At most this many, and at most the server's limit.")] = 10_000,
) -> ProgressHistory:
    """The training progress history in step order: loss, learning rate and throughput, for the loss chart."""
    limit = min(limit, settings.progress_page_max)
    await ensure_job(conn, job_id)
    points = await fetch_progress(conn, job_id, after_step, limit + 1)
    return ProgressHistory(items=points[:limit], has_more=len(points) > limit)


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses=NOT_FOUND,
    operation_id="cancel_job",
)
async def cancel_job(job_id: uuid.UUID, user_id: CurrentUser, conn: UserConn) -> Job:
    """Ask the trainer to stop at its next step; the job ends as cancelled. A finished job is left as it is."""
    job = await fetch_job(conn, job_id)
    if not job.status.is_final:
        await enqueue(conn, JOBS_START, JobCancelEvent(job_id=job_id, user_id=user_id))
    return job


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND, operation_id="delete_job")
async def delete_job(job_id: uuid.UUID, user_id: CurrentUser, conn: UserConn) -> None:
    """Delete the job and its predictions; a job still queued or running is cancelled first."""
    job = await fetch_job(conn, job_id)
    if not job.status.is_final:
        await enqueue(conn, JOBS_START, JobCancelEvent(job_id=job_id, user_id=user_id))
    await conn.execute("DELETE FROM jobs WHERE job_id = $1", job_id)
