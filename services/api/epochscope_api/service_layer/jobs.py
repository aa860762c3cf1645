"""Jobs' use cases: submit (quotas, inputs, the row and its place in the queue in one transaction), read with the
place in line, cancel (a signed cancel for its trainer, or withdrawn while queued), delete (row, then objects).

Each takes its adapters: a connection in the caller's user transaction (or the pool, where the use case owns its
transaction), the object store, the clock and the settings. Errors are errors.py's domain errors.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg

from epochscope_api.bus.outbox import enqueue
from epochscope_api.data.db import user_transaction
from epochscope_api.data.job_inputs import link_job_datasets, resolve_inputs
from epochscope_api.data.jobs import (
    JobFilter,
    delete_job_row,
    fetch_job,
    fetch_job_attempt,
    fetch_job_detail,
    fetch_job_page,
    insert_job,
)
from epochscope_api.data.quotas import (
    check_active_jobs,
    check_prediction_bytes,
    check_rollout_bytes,
    checkpoint_bytes_left,
)
from epochscope_api.jobs.finish_estimate import estimated_finish
from epochscope_api.jobs.objects import delete_job_objects
from epochscope_api.jobs.validation import check_job_config, check_job_work_of, check_method_rows_of
from epochscope_api.response_models import Job, JobDetail, JobPage
from epochscope_api.service_layer.queue import job_token, queue_job, withdraw_if_queued
from epochscope_api.service_layer.queue_places import queue_places
from epochscope_api.settings import ApiSettings
from epochscope_runtime.command_signing import signed_cancel
from epochscope_runtime.object_store import ObjectStore
from epochscope_schemas.checkpoints import CheckpointMode
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import JobStartEvent, JobStatus
from epochscope_schemas.methods import GrpoMethod
from epochscope_schemas.topics import JOB_COMMANDS

Clock = Callable[[], datetime]
AnyJob = TypeVar("AnyJob", bound=Job)


def utc_now() -> datetime:
    return datetime.now(UTC)


async def submit_job(
    conn: asyncpg.Connection, user_id: str, config: JobConfig, settings: ApiSettings, clock: Clock = utc_now
) -> Job:
    """Queue a job on the user's datasets and a catalog model. UnknownDatasets naming each field whose dataset the
    user does not have; a 422 past a job's work limits; QuotaExceeded past active jobs or stored prediction bytes
    (rollout bytes, for GRPO), or for a job that keeps checkpoints when the user's checkpoints fill their quota;
    EventTooLarge if its start would not fit the bus. The start carries no job token: the dispatcher mints one for
    each attempt; the job row records the tokens' expiry."""
    model = check_job_config(config, settings)
    inputs = await resolve_inputs(conn, config, model)
    await check_method_rows_of(conn, config)
    await check_job_work_of(conn, config, settings)
    await check_active_jobs(conn, user_id, settings)
    if config.predictions.enabled:
        await check_prediction_bytes(conn, user_id, settings)
    if isinstance(config.method, GrpoMethod):
        await check_rollout_bytes(conn, user_id, settings)
    if config.predictions.checkpoints.mode != CheckpointMode.NONE:
        allowance = await checkpoint_bytes_left(conn, user_id, settings)
        inputs = inputs.model_copy(update={"checkpoint_bytes_max": allowance})
    start = JobStartEvent(job_id=uuid.uuid4(), user_id=user_id, config=config, inputs=inputs)
    token_expires_at = (clock() + timedelta(hours=settings.job_token_ttl_hours)).replace(microsecond=0)
    await insert_job(conn, start.job_id, user_id, config.model_dump(mode="json"), token_expires_at)
    await link_job_datasets(conn, start.job_id, user_id, inputs)
    await queue_job(conn, start, token_expires_at, settings.kafka.max_message_bytes)
    return await job_with_place(conn, start.job_id, settings.dispatch_lease_seconds)


async def with_places(conn: asyncpg.Connection, jobs: list[AnyJob], lease_s: float) -> list[AnyJob]:
    """The queued ones with their place in line and estimated start (`lease_s`: the dispatcher's lease), the
    running ones with their estimated finish."""
    queued = [job.job_id for job in jobs if job.status is JobStatus.QUEUED]
    places = await queue_places(conn, queued, lease_s) if queued else {}
    now = utc_now()
    return [
        job.model_copy(update={"queue_position": p.position, "estimated_start_seconds": p.estimated_start_s})
        if (p := places.get(job.job_id))
        else job.model_copy(update={"estimated_finish": estimated_finish(job, now)})
        for job in jobs
    ]


async def job_with_place(conn: asyncpg.Connection, job_id: uuid.UUID, lease_s: float) -> Job:
    """The job as the user sees it, with its place in line while queued; JobNotFound if they have none."""
    return (await with_places(conn, [await fetch_job(conn, job_id)], lease_s))[0]


async def job_detail(conn: asyncpg.Connection, job_id: uuid.UUID, lease_s: float) -> JobDetail:
    """The job with its rounds, warnings and best round, and its place in line while queued."""
    return (await with_places(conn, [await fetch_job_detail(conn, job_id)], lease_s))[0]


async def job_page(
    conn: asyncpg.Connection, where: JobFilter, limit: int, cursor: str | None, lease_s: float
) -> JobPage:
    """A page of the user's jobs that match `where`, the queued ones with their place in line."""
    page = await fetch_job_page(conn, where, limit, cursor)
    return page.model_copy(update={"items": await with_places(conn, page.items, lease_s)})


async def cancel_job(conn: asyncpg.Connection, job_id: uuid.UUID, user_id: str, settings: ApiSettings) -> Job:
    """The job as it was. Unless it has ended: a job still queued is withdrawn, and one sent to a trainer gets a
    cancel for it, signed with its current attempt's token (minted again from the rows: the token is stored
    nowhere), which only the trainer holding that attempt's start can verify."""
    found = await fetch_job_attempt(conn, job_id)
    if found.job.status.is_final:
        return found.job
    if found.attempt_id is not None:
        secret = settings.job_token_secret.get_secret_value()
        token = job_token(secret, job_id, user_id, found.token_expires_at, found.attempt_id)
        cancel = signed_cancel(job_id, user_id, token)
        await enqueue(conn, JOB_COMMANDS, cancel, settings.kafka.max_message_bytes)
    await withdraw_if_queued(conn, job_id, user_id)
    return found.job


async def delete_job(
    pool: asyncpg.Pool, store: ObjectStore, job_id: uuid.UUID, user_id: str, settings: ApiSettings
) -> None:
    """The job cancelled unless it has ended, its row deleted (predictions, rounds and progress go with it), then,
    once that has committed, its stored objects. The datasets it read are the user's and stay."""
    async with user_transaction(pool, user_id) as conn:
        await cancel_job(conn, job_id, user_id, settings)
        await delete_job_row(conn, job_id)
    await delete_job_objects(store, job_id)
