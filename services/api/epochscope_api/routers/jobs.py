"""Jobs: create (job row + start event in one transaction), read."""

import uuid
from datetime import timedelta
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request, status

from epochscope_api.auth import CurrentUser
from epochscope_api.db import user_transaction
from epochscope_api.models import ErrorResponse, Job
from epochscope_api.outbox import enqueue
from epochscope_api.settings import ApiSettings
from epochscope_api.validation import check_job_config
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import JobStartEvent
from epochscope_schemas.job_token import mint_job_token
from epochscope_schemas.topics import JOBS_START

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JOB_COLUMNS = "job_id, status, status_message, config, metrics, created_at, updated_at, started_at, finished_at"
NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such job for this user."}}


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


@router.get("/{job_id}", response_model=Job, responses=NOT_FOUND, operation_id="get_job")
async def get_job(job_id: uuid.UUID, user_id: CurrentUser, pool: Pool) -> Job:
    async with user_transaction(pool, user_id) as conn:
        return await fetch_job(conn, job_id)
