"""An Epochscope job in OpenAI's `fine_tuning.job` shape: its status, method and hyperparameters (the explicit
learning rate beside its multiplier), files, the model its final checkpoint is named by, and the estimate."""

import uuid
from datetime import datetime

from epochscope_api.openai_compat.ids import FILE, JOB, openai_id
from epochscope_api.openai_compat.job_config import BASE_LEARNING_RATE, OPENAI_METHOD
from epochscope_api.openai_compat.model_names import CheckpointRef, model_name
from epochscope_api.openai_compat.objects import (
    OpenAIFineTuningJob,
    OpenAIHyperparameters,
    OpenAIJobError,
    OpenAIMethod,
    OpenAIMethodSettings,
)
from epochscope_api.openai_compat.statuses import OPENAI_STATUS
from epochscope_api.response_models import Job
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import JobStatus
from epochscope_schemas.methods import DpoMethod


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def hyperparameters_of(config: JobConfig) -> OpenAIHyperparameters:
    return OpenAIHyperparameters(
        n_epochs=config.num_epochs,
        batch_size=config.batch_size,
        learning_rate_multiplier=config.learning_rate / BASE_LEARNING_RATE,
        learning_rate=config.learning_rate,
        beta=config.method.beta if isinstance(config.method, DpoMethod) else None,
    )


def method_of(config: JobConfig) -> OpenAIMethod:
    method_type = OPENAI_METHOD[config.method.type]
    graders = {g.name: g.model_dump(mode="json") for g in config.predictions.graders}
    settings = OpenAIMethodSettings(
        hyperparameters=hyperparameters_of(config), grader=graders if method_type == "reinforcement" else None
    )
    return OpenAIMethod(type=method_type, **{method_type: settings})


def _estimated_finish(job: Job, queued_for: float | None, now: datetime) -> int | None:
    """A running job's finish from its pace (Epochscope's own estimate); a queued job's estimated start (its
    training not begun, no pace to go by); None otherwise."""
    if job.estimated_finish is not None:
        return unix(job.estimated_finish)
    return int(now.timestamp() + queued_for) if queued_for is not None else None


def fine_tuning_job(
    job: Job, user_id: str, final_checkpoint: uuid.UUID | None, file_tokens: int | None, now: datetime
) -> OpenAIFineTuningJob:
    """`final_checkpoint`: the id of the job's final weights, if kept; `file_tokens`: the training file's tokens
    with the job's model (its upload report), trained once per epoch; `now` dates the queued job's estimate."""
    config = job.config
    failed = job.status is JobStatus.FAILED
    queued_for = job.estimated_start_seconds if job.status is JobStatus.QUEUED else None
    succeeded = job.status is JobStatus.COMPLETED
    ref = CheckpointRef(job.job_id, final_checkpoint) if final_checkpoint else None
    return OpenAIFineTuningJob(
        id=openai_id(JOB, job.job_id),
        created_at=unix(job.created_at),
        finished_at=unix(job.finished_at),
        error=OpenAIJobError(code="training_failed", message=job.status_message or "failed") if failed else None,
        fine_tuned_model=model_name(config.model, config.name, ref) if ref and succeeded else None,
        hyperparameters=hyperparameters_of(config),
        method=method_of(config),
        model=config.model,
        organization_id=user_id,
        seed=config.predictions.seed,
        status=OPENAI_STATUS[job.status],
        trained_tokens=file_tokens * config.num_epochs if succeeded and file_tokens is not None else None,
        training_file=openai_id(FILE, config.dataset_id),
        validation_file=openai_id(FILE, config.eval_dataset_id) if config.eval_dataset_id else None,
        estimated_finish=_estimated_finish(job, queued_for, now),
        metadata=job.metadata,
        suffix=config.name,
        epochscope_job_id=str(job.job_id),
    )
