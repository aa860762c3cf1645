"""Jobs: create (job row + start event in one transaction), read."""

import uuid
from datetime import datetime, timedelta
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from epochscope_api.auth import CurrentUser
from epochscope_api.cursor import decode_cursor, encode_cursor
from epochscope_api.db import user_transaction
from epochscope_api.errors import error_responses
from epochscope_api.models import Job, JobPage
from epochscope_api.outbox import enqueue
from epochscope_api.settings import ApiSettings
from epochscope_api.validation import check_job_config
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import JobCancelEvent, JobStartEvent, JobStatus
from epochscope_schemas.job_token import mint_job_token
from epochscope_schemas.topics import JOBS_START

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JOB_COLUMNS = "job_id, status, status_message, config, metrics, created_at, updated_at, started_at, finished_at"
NOT_FOUND = error_responses(404)


def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
Settings = Annotated[ApiSettings, Depends(get_settings)]


async def fetch_job(conn: asyncpg.Connection, job_id: uuid.UUID) -> Job:
    """The job as the current user sees it (RLS), or 404: another user's job does not exist for them."""
    row = await conn.fetchrow(f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1", job_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="job not found")
    return Job(**dict(row))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Job, operation_id="create_job")
async def create_job(config: JobConfig, user_id: CurrentUser, pool: Pool, settings: Settings) -> Job:
    check_job_config(config, settings.limits)
    job_id = uuid.uuid4()
    token, claims = mint_job_token(
        settings.job_token_secret.get_secret_value(), job_id, user_id, timedelta(hours=settings.job_token_ttl_hours)
    )
    async with user_transaction(pool, user_id) as conn:
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
    user_id: CurrentUser,
    pool: Pool,
    settings: Settings,
    status_filter: Annotated[JobStatus | None, Query(alias="status", description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, description="Page size, at most the server's page limit.")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> JobPage:
    """The current user's jobs, newest first."""
    limit = min(limit, settings.predictions_page_max)
    before = decode_cursor(cursor, 2) if cursor else None
    async with user_transaction(pool, user_id) as conn:
        rows = await conn.fetch(
            f"SELECT {JOB_COLUMNS} FROM jobs"
            " WHERE ($1::text IS NULL OR status = $1)"
            " AND ($2::timestamptz IS NULL OR (created_at, job_id) < ($2, $3::uuid))"
            " ORDER BY created_at DESC, job_id DESC LIMIT $4",
            status_filter,
            datetime.fromisoformat(before[0]) if before else None,
            before[1] if before else None,
            limit + 1,
        )
    items = [Job(**dict(row)) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return JobPage(
        items=items, next_cursor=encode_cursor([last.created_at.isoformat(), str(last.job_id)]) if last else None
    )


@router.get("/{job_id}", response_model=Job, responses=NOT_FOUND, operation_id="get_job")
async def get_job(job_id: uuid.UUID, user_id: CurrentUser, pool: Pool) -> Job:
    async with user_transaction(pool, user_id) as conn:
        return await fetch_job(conn, job_id)


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses=NOT_FOUND,
    operation_id="cancel_job",
)
async def cancel_job(job_id: uuid.UUID, user_id: CurrentUser, pool: Pool) -> Job:
    """Ask the trainer to stop at its next step; the job ends as cancelled. A finished job is left as it is."""
    async with user_transaction(pool, user_id) as conn:
        job = await fetch_job(conn, job_id)
        if not job.status.is_final:
            await enqueue(conn, JOBS_START, JobCancelEvent(job_id=job_id, user_id=user_id))
        return job


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND, operation_id="delete_job")
async def delete_job(job_id: uuid.UUID, user_id: CurrentUser, pool: Pool) -> None:
    """Delete the job and its predictions; a job still queued or running is cancelled first."""
    async with user_transaction(pool, user_id) as conn:
        job = await fetch_job(conn, job_id)
        if not job.status.is_final:
            await enqueue(conn, JOBS_START, JobCancelEvent(job_id=job_id, user_id=user_id))
        await conn.execute("DELETE FROM jobs WHERE job_id = $1", job_id)
