"""OpenAI-compatible job events and checkpoints (/openai/v1/fine_tuning/jobs/{id}/events and /checkpoints), newest
first, paged by `after` and `limit` with `has_more`."""

from typing import Annotated

from fastapi import APIRouter, Query

from epochscope_api.data.checkpoints import fetch_checkpoints
from epochscope_api.data.jobs import ensure_job, fetch_job
from epochscope_api.data.openai_events import fetch_event_rows, fetch_losses
from epochscope_api.deps import SettingsDep, UserConn
from epochscope_api.openai_compat.errors import OpenAIError
from epochscope_api.openai_compat.events import event_place, job_event
from epochscope_api.openai_compat.ids import CHECKPOINT, JOB, openai_id, parse_id
from epochscope_api.openai_compat.model_names import CheckpointRef, model_name
from epochscope_api.openai_compat.objects import (
    OpenAICheckpoint,
    OpenAICheckpointMetrics,
    OpenAIJobEvent,
    OpenAIList,
    openai_error_responses,
)

router = APIRouter(prefix="/openai/v1/fine_tuning/jobs", tags=["openai"])
After = Annotated[str | None, Query(max_length=200, description="The last id of the previous page.")]


@router.get(
    "/{fine_tuning_job_id}/events",
    response_model=OpenAIList[OpenAIJobEvent],
    operation_id="openai_list_fine_tuning_events",
    responses=openai_error_responses(404),
)
async def list_events(
    fine_tuning_job_id: str,
    conn: UserConn,
    settings: SettingsDep,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most the server's page size.")] = 20,
) -> OpenAIList[OpenAIJobEvent]:
    """Status changes, warnings, and a `metrics` event per training step (loss) and per prediction round (each
    grader's pass rate), newest first."""
    job_id = parse_id(JOB, fine_tuning_job_id)
    await ensure_job(conn, job_id)
    limit = min(limit, settings.jobs_page_max)
    rows = await fetch_event_rows(conn, job_id, event_place(after) if after else None, limit + 1)
    return OpenAIList[OpenAIJobEvent].of([job_event(row) for row in rows[:limit]], len(rows) > limit)


@router.get(
    "/{fine_tuning_job_id}/checkpoints",
    response_model=OpenAIList[OpenAICheckpoint],
    operation_id="openai_list_fine_tuning_checkpoints",
    responses=openai_error_responses(404),
)
async def list_checkpoints(
    fine_tuning_job_id: str,
    conn: UserConn,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Page size.")] = 10,
) -> OpenAIList[OpenAICheckpoint]:
    """One per kept Epochscope checkpoint, newest first: its step, the loss there and its round's metrics, and a
    model name that resolves to it."""
    job_id = parse_id(JOB, fine_tuning_job_id)
    job = await fetch_job(conn, job_id)
    kept = list(reversed((await fetch_checkpoints(conn, job_id)).items))  # bounded by the job's checkpoint mode
    losses = await fetch_losses(conn, job_id, [checkpoint.step for checkpoint in kept])
    shown = [
        OpenAICheckpoint(
            id=openai_id(CHECKPOINT, checkpoint.checkpoint_id),
            created_at=int(checkpoint.occurred_at.timestamp()),
            fine_tuned_model_checkpoint=model_name(
                job.config.model, job.config.name, CheckpointRef(job_id, checkpoint.checkpoint_id)
            ),
            fine_tuning_job_id=openai_id(JOB, job_id),
            metrics=OpenAICheckpointMetrics(
                step=checkpoint.step, train_loss=losses.get(checkpoint.step), graders=checkpoint.metrics
            ),
            step_number=checkpoint.step,
            download_url=f"/v1/jobs/{job_id}/checkpoints/{checkpoint.checkpoint_id}/download",
        )
        for checkpoint in kept
    ]
    if after is not None:
        ids = [checkpoint.id for checkpoint in shown]
        if after not in ids:
            raise OpenAIError(400, f"after: no checkpoint {after[:100]!r} in this job", param="after")
        shown = shown[ids.index(after) + 1 :]
    return OpenAIList[OpenAICheckpoint].of(shown[:limit], len(shown) > limit)
