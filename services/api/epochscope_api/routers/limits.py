"""Server limits a client needs before it submits a job (the web UI's sample count slider, page sizes)."""

from fastapi import APIRouter
from pydantic import BaseModel, Field

from epochscope_api.deps import CurrentUser, SettingsDep

router = APIRouter(prefix="/v1", tags=["operations"])


class Limits(BaseModel):
    max_sample_count: int = Field(description="Most prompts per prediction round.")
    min_step_interval: int = Field(description="Fewest global steps between rounds, for sample_frequency=steps.")
    max_new_tokens: int = Field(description="Most tokens generated per prediction.")
    jobs_page_max: int = Field(description="Most jobs per page of GET /v1/jobs.")
    predictions_page_max: int = Field(description="Most predictions per page of GET /v1/jobs/{id}/predictions.")
    rounds_page_max: int = Field(description="Most round summaries per read of GET /v1/jobs/{id}/rounds.")
    sample_rounds_max: int = Field(description="Most rounds per read of one sample's history.")
    progress_page_max: int = Field(description="Most progress points per read of GET /v1/jobs/{id}/progress.")
    timeline_page_max: int = Field(description="Most samples per page of GET /v1/jobs/{id}/timeline.")
    datasets_page_max: int = Field(description="Most datasets per page of GET /v1/datasets.")
    dataset_rows_page_max: int = Field(description="Most rows per page of GET /v1/datasets/{id}/rows.")
    page_max_bytes: int = Field(description="A page or a stream read stops adding rows past these bytes (each list).")
    quota_active_jobs: int = Field(description="Most queued or running jobs per user.")
    quota_datasets: int = Field(description="Most datasets per user.")
    quota_dataset_bytes: int = Field(description="Most bytes of datasets per user.")
    quota_checkpoint_bytes: int = Field(description="Most bytes of checkpoints a user's jobs may keep.")
    quota_writes_per_minute: int = Field(description="Most write requests (POST, DELETE) a minute.")
    grader_run_max_chars: int = Field(
        description="Most characters of the answer, the prompt and each reference of POST /v1/graders/run."
    )
    max_json_schema_bytes: int = Field(description="Largest JSON Schema of a grader, in bytes as JSON.")
    grpo_max_num_generations: int = Field(description="Most completions per prompt of a GRPO method.")
    grpo_max_completion_length: int = Field(description="Most tokens generated per GRPO completion.")
    grpo_max_rollouts_per_step: int = Field(description="Most rollouts a GRPO method may keep per step.")


@router.get("/limits", response_model=Limits, operation_id="get_limits")
async def get_limits(_: CurrentUser, settings: SettingsDep) -> Limits:
    """The limits this server applies when a job is submitted, from its settings."""
    limits = settings.limits
    return Limits(
        max_sample_count=limits.max_sample_count,
        min_step_interval=limits.min_step_interval,
        max_new_tokens=limits.max_new_tokens,
        jobs_page_max=settings.jobs_page_max,
        predictions_page_max=settings.predictions_page_max,
        rounds_page_max=settings.rounds_page_max,
        sample_rounds_max=settings.sample_rounds_max,
        progress_page_max=settings.progress_page_max,
        timeline_page_max=settings.timeline_page_max,
        datasets_page_max=settings.datasets_page_max,
        dataset_rows_page_max=settings.dataset_rows_page_max,
        page_max_bytes=settings.page_max_bytes,
        quota_active_jobs=settings.quota_active_jobs,
        quota_datasets=settings.quota_datasets,
        quota_dataset_bytes=settings.quota_dataset_bytes,
        quota_checkpoint_bytes=settings.quota_checkpoint_bytes,
        quota_writes_per_minute=settings.quota_writes_per_minute,
        grader_run_max_chars=settings.grader_run_max_chars,
        max_json_schema_bytes=limits.max_json_schema_bytes,
        grpo_max_num_generations=settings.grpo_limits.max_num_generations,
        grpo_max_completion_length=settings.grpo_limits.max_completion_length,
        grpo_max_rollouts_per_step=settings.grpo_limits.max_rollouts_per_step,
    )
