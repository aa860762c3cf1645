"""OpenAI-compatible fine-tuning jobs (/openai/v1/fine_tuning/jobs): create, list (with the metadata filter),
retrieve, cancel, and pause/resume (refused: the trainer cannot pause a job). A job created here is an Epochscope
job (same validation, queue, rounds, graders, checkpoints, UI and row-level security)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from epochscope_api.data.cursor import encode_cursor
from epochscope_api.data.jobs import JobFilter, ensure_job, fetch_job
from epochscope_api.data.openai_events import fetch_final_checkpoints
from epochscope_api.deps import WRITE_LIMITED, CurrentUser, SettingsDep, UserConn
from epochscope_api.openai_compat.errors import OpenAIError
from epochscope_api.openai_compat.ids import JOB, parse_id
from epochscope_api.openai_compat.job_submission import submit_openai_job
from epochscope_api.openai_compat.job_view import fine_tuning_job
from epochscope_api.openai_compat.objects import OpenAIFineTuningJob, OpenAIList, openai_error_responses
from epochscope_api.openai_compat.requests import JobCreateRequest
from epochscope_api.response_models import Job
from epochscope_api.service_layer import jobs
from epochscope_api.service_layer.jobs import utc_now
from epochscope_schemas.config import JobConfig

router = APIRouter(prefix="/openai/v1/fine_tuning/jobs", tags=["openai"])
NOT_FOUND = openai_error_responses(404)
MAX_METADATA_FILTERS: int = JobConfig.model_fields["metadata"].metadata[0].max_length or 16


async def _shown(conn: UserConn, user_id: str, found: list[Job]) -> list[OpenAIFineTuningJob]:
    finals = await fetch_final_checkpoints(conn, [job.job_id for job in found])
    now = utc_now()
    return [fine_tuning_job(job, user_id, finals.get(job.job_id), now) for job in found]


def metadata_filter(request: Request) -> dict[str, str]:
    """The `metadata[key]=value` pairs of the query, as the SDK sends `metadata={...}`."""
    pairs = {
        name[len("metadata[") : -1]: value
        for name, value in request.query_params.multi_items()
        if name.startswith("metadata[") and name.endswith("]")
    }
    if len(pairs) > MAX_METADATA_FILTERS:
        raise OpenAIError(400, f"at most {MAX_METADATA_FILTERS} metadata filters", param="metadata")
    return pairs


@router.post(
    "",
    response_model=OpenAIFineTuningJob,
    operation_id="openai_create_fine_tuning_job",
    dependencies=WRITE_LIMITED,
    responses=openai_error_responses(400, 429),
)
async def create_job(
    body: JobCreateRequest, user_id: CurrentUser, conn: UserConn, settings: SettingsDep
) -> OpenAIFineTuningJob:
    """Queue a job on uploaded files and a catalog model. Epochscope's predictions config may come as
    `predictions` (the SDK's extra_body); without one the job predicts on a seeded sample of the validation file
    (or of the training file) each epoch and keeps its final weights."""
    job = await submit_openai_job(conn, user_id, body, settings)
    return (await _shown(conn, user_id, [job]))[0]


@router.get("", response_model=OpenAIList[OpenAIFineTuningJob], operation_id="openai_list_fine_tuning_jobs")
async def list_jobs(
    request: Request,
    user_id: CurrentUser,
    conn: UserConn,
    settings: SettingsDep,
    after: Annotated[str | None, Query(max_length=64, description="The last job id of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most the server's page size.")] = 20,
) -> OpenAIList[OpenAIFineTuningJob]:
    """The user's jobs, newest first; `metadata[key]=value` keeps those with every pair given."""
    cursor = None
    if after is not None:
        last = await fetch_job(conn, parse_id(JOB, after, param="after"))
        cursor = encode_cursor([last.created_at.isoformat(), str(last.job_id)])
    where = JobFilter(metadata=metadata_filter(request))
    page = await jobs.job_page(conn, where, min(limit, settings.jobs_page_max), cursor, settings.dispatch_lease_seconds)
    return OpenAIList[OpenAIFineTuningJob].of(await _shown(conn, user_id, page.items), page.next_cursor is not None)


@router.get(
    "/{fine_tuning_job_id}",
    response_model=OpenAIFineTuningJob,
    operation_id="openai_retrieve_fine_tuning_job",
    responses=NOT_FOUND,
)
async def retrieve_job(
    fine_tuning_job_id: str, user_id: CurrentUser, conn: UserConn, settings: SettingsDep
) -> OpenAIFineTuningJob:
    job = await jobs.job_with_place(conn, parse_id(JOB, fine_tuning_job_id), settings.dispatch_lease_seconds)
    return (await _shown(conn, user_id, [job]))[0]


@router.post(
    "/{fine_tuning_job_id}/cancel",
    response_model=OpenAIFineTuningJob,
    operation_id="openai_cancel_fine_tuning_job",
    dependencies=WRITE_LIMITED,
    responses=NOT_FOUND | openai_error_responses(429),
)
async def cancel_job(
    fine_tuning_job_id: str, user_id: CurrentUser, conn: UserConn, settings: SettingsDep
) -> OpenAIFineTuningJob:
    """Withdraw a queued job, or ask its trainer to stop at the next step; a finished job is left as it is."""
    job_id = parse_id(JOB, fine_tuning_job_id)
    await jobs.cancel_job(conn, job_id, user_id, settings)
    job = await jobs.job_with_place(conn, job_id, settings.dispatch_lease_seconds)
    return (await _shown(conn, user_id, [job]))[0]


async def _refuse_pausing(fine_tuning_job_id: str, conn: UserConn, action: str) -> OpenAIFineTuningJob:
    job_id: uuid.UUID = parse_id(JOB, fine_tuning_job_id)
    await ensure_job(conn, job_id)  # another user's job: a 404, as for every other route
    raise OpenAIError(
        400,
        f"cannot {action} a job: Epochscope's trainer cannot pause one and resume it later; cancel it instead",
        code="unsupported_operation",
    )


@router.post(
    "/{fine_tuning_job_id}/pause",
    response_model=OpenAIFineTuningJob,
    operation_id="openai_pause_fine_tuning_job",
    responses=NOT_FOUND | openai_error_responses(400),
)
async def pause_job(fine_tuning_job_id: str, conn: UserConn) -> OpenAIFineTuningJob:
    """Refused (a 400): the trainer cannot pause a job."""
    return await _refuse_pausing(fine_tuning_job_id, conn, "pause")


@router.post(
    "/{fine_tuning_job_id}/resume",
    response_model=OpenAIFineTuningJob,
    operation_id="openai_resume_fine_tuning_job",
    responses=NOT_FOUND | openai_error_responses(400),
)
async def resume_job(fine_tuning_job_id: str, conn: UserConn) -> OpenAIFineTuningJob:
    """Refused (a 400): the trainer cannot pause a job, so none can be resumed."""
    return await _refuse_pausing(fine_tuning_job_id, conn, "resume")
