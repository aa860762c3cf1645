"""Server limits a client needs before it submits a job (the web UI's sample count slider, page sizes)."""

from fastapi import APIRouter
from pydantic import BaseModel, Field

from epochscope_api.deps import CurrentUser, SettingsDep

router = APIRouter(prefix="/v1", tags=["operations"])


class Limits(BaseModel):
    max_sample_count: int = Field(description="Most prompts per prediction round.")
    min_step_interval: int = Field(description="Fewest global steps between rounds, for sample_frequency=steps.")
    max_new_tokens: int = Field(description="Most tokens generated per prediction.")
    page_max: int = Field(description="Largest page a list endpoint returns.")
    page_max_bytes: int = Field(description="A page or a stream read stops adding rows past these bytes.")
    quota_active_jobs: int = Field(description="Most queued or running jobs per user.")
    quota_datasets: int = Field(description="Most datasets per user.")
    quota_dataset_bytes: int = Field(description="Most bytes of datasets per user.")
    quota_checkpoint_bytes: int = Field(description="Most bytes of checkpoints a user's jobs may keep.")
    quota_writes_per_minute: int = Field(description="Most write requests (POST, DELETE) a minute.")


@router.get("/limits", response_model=Limits, operation_id="get_limits")
async def get_limits(_: CurrentUser, settings: SettingsDep) -> Limits:
    """The limits this server applies when a job is submitted, from its settings."""
    limits = settings.limits
    return Limits(
        max_sample_count=limits.max_sample_count,
        min_step_interval=limits.min_step_interval,
        max_new_tokens=limits.max_new_tokens,
        page_max=settings.predictions_page_max,
        page_max_bytes=settings.page_max_bytes,
        quota_active_jobs=settings.quota_active_jobs,
        quota_datasets=settings.quota_datasets,
        quota_dataset_bytes=settings.quota_dataset_bytes,
        quota_checkpoint_bytes=settings.quota_checkpoint_bytes,
        quota_writes_per_minute=settings.quota_writes_per_minute,
    )
