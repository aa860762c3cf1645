"""Jobs: create (job row + start event in one transaction), list, read (with progress, rounds and warnings),
progress history, cancel, delete."""

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, status

from epochscope_api.data.cursor import INT4_MAX
from epochscope_api.data.db import user_transaction
from epochscope_api.data.job_inputs import resolve_inputs
from epochscope_api.data.jobs import (
    JobFilter,
    cancel_unless_final,
    delete_job_row,
    ensure_job,
    fetch_job_detail,
    fetch_job_page,
    insert_job,
    parse_metadata_filter,
)
from epochscope_api.data.progress import fetch_progress_history
from epochscope_api.data.quotas import check_active_jobs, check_prediction_bytes, checkpoint_bytes_left
from epochscope_api.deps import WRITE_LIMITED, CurrentUser, PoolDep, SettingsDep, StoreDep, UserConn
from epochscope_api.errors import UnknownDatasets
from epochscope_api.http.errors import NOT_FOUND, QUOTA
from epochscope_api.jobs.objects import delete_job_objects
from epochscope_api.jobs.validation import check_job_config, check_job_work_of, unknown_datasets
from epochscope_api.response_models import Job, JobDetail, JobPage, ProgressHistory
from epochscope_api.settings import ApiSettings
from epochscope_runtime.job_token import mint_job_token
from epochscope_schemas.checkpoints import CheckpointMode
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import JobStartEvent, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Job,
    operation_id="create_job",
    dependencies=WRITE_LIMITED,
    responses=QUOTA,
)
async def create_job(config: JobConfig, user_id: CurrentUser, conn: UserConn, settings: SettingsDep) -> Job:
    """Queue a job on uploaded datasets and a catalog model; the trainer learns their object keys and the model's
    source from the start event, never a path. A dataset id the user does not have is a 422 naming its field;
    past the user's quota of queued or running jobs, a 429 (`limit`: active_jobs); a job that keeps checkpoints
    when the user's checkpoints already fill their quota, a 429 (`limit`: checkpoint_bytes)."""
    model = check_job_config(config, settings)
    try:
        inputs = await resolve_inputs(conn, config, model)
    except UnknownDatasets as error:
        raise unknown_datasets(error) from None
    await check_job_work_of(conn, config, settings)
    await check_active_jobs(conn, user_id, settings)
    if config.predictions.enabled:
        await check_prediction_bytes(conn, user_id, settings)
    if config.predictions.checkpoints.mode != CheckpointMode.NONE:
        allowance = await checkpoint_bytes_left(conn, user_id, settings)
        inputs = inputs.model_copy(update={"checkpoint_bytes_max": allowance})
    job_id = uuid.uuid4()
    token_secret = _token_secret(settings)
    token, claims = mint_job_token(token_secret, job_id, user_id, timedelta(hours=settings.job_token_ttl_hours))
    event = JobStartEvent(job_id=job_id, user_id=user_id, config=config, inputs=inputs, job_token=token)
    return await insert_job(
        conn,
        event,
        token_expires_at=claims.expires_at,
        max_event_bytes=settings.kafka.max_message_bytes,
        lease_s=settings.dispatch_lease_seconds,
        token_secret=token_secret,
        immediate=settings.dispatch == "immediate",
    )


@router.get("", response_model=JobPage, operation_id="list_jobs")
async def list_jobs(
    conn: UserConn,
    settings: SettingsDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status", description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, description="Page size, at most the server's page limit.")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    name: Annotated[
        str | None, Query(min_length=1, max_length=128, description="Only jobs whose name contains this (any case).")
    ] = None,
    metadata: Annotated[
        list[str], Query(max_length=16, description="key=value; only jobs with every pair given (repeat it).")
    ] = [],  # noqa: B006  FastAPI copies a default
) -> JobPage:
    """The current user's jobs, newest first, filtered by status, name and metadata."""
    where = JobFilter(status_filter, name, parse_metadata_filter(metadata))
    limit = min(limit, settings.predictions_page_max)
    return await fetch_job_page(conn, where, limit, cursor, settings.dispatch_lease_seconds)


@router.get("/{job_id}", response_model=JobDetail, responses=NOT_FOUND, operation_id="get_job")
async def get_job(job_id: uuid.UUID, conn: UserConn, settings: SettingsDep) -> JobDetail:
    """The job with its status, latest progress, per-round summary and warnings."""
    return await fetch_job_detail(conn, job_id, settings.dispatch_lease_seconds)


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
    await ensure_job(conn, job_id)
    limit = min(limit, settings.progress_page_max)
    return await fetch_progress_history(conn, job_id, after_step, limit, settings.page_max_bytes)


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses=NOT_FOUND | QUOTA,
    operation_id="cancel_job",
    dependencies=WRITE_LIMITED,
)
async def cancel_job(job_id: uuid.UUID, user_id: CurrentUser, conn: UserConn, settings: SettingsDep) -> Job:
    """Ask the trainer to stop at its next step; the job ends as cancelled. A finished job is left as it is."""
    return await cancel_unless_final(conn, job_id, user_id, settings.kafka.max_message_bytes, _token_secret(settings))


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND | QUOTA,
    operation_id="delete_job",
    dependencies=WRITE_LIMITED,
)
async def delete_job(
    job_id: uuid.UUID, user_id: CurrentUser, pool: PoolDep, store: StoreDep, settings: SettingsDep
) -> None:
    """Delete the job, its predictions and its stored objects; a job still queued or running is cancelled first
    (the trainer then removes its work folder). The datasets it read are the user's and stay."""
    async with user_transaction(pool, user_id) as conn:
        await cancel_unless_final(conn, job_id, user_id, settings.kafka.max_message_bytes, _token_secret(settings))
        await delete_job_row(conn, job_id)
    await delete_job_objects(store, job_id)  # once the row's deletion has committed


def _token_secret(settings: ApiSettings) -> str:
    return settings.job_token_secret.get_secret_value()
