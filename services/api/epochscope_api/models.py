"""Response bodies of the REST API (request bodies are the shared models in epochscope_schemas)."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import JobStatus


class Job(BaseModel):
    job_id: UUID
    status: JobStatus
    status_message: str | None
    config: JobConfig
    metrics: dict[str, float]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    items: list[Job]
    next_cursor: str | None


class Prediction(BaseModel):
    round_index: int
    epoch: float
    step: int
    sample_id: str
    sample_index: int
    prompt: str
    ground_truth: str | None
    prediction: str
    tokens_generated: int
    latency_ms: float
    created_at: datetime


class PredictionPage(BaseModel):
    items: list[Prediction]
    next_cursor: str | None = Field(description="Continue after this page's last row; null when the page is empty.")
    has_more: bool = Field(description="More rows exist now; a live client keeps next_cursor to ask for newer ones.")


class RoundSummary(BaseModel):
    round_index: int
    epoch: float
    step: int
    predictions: int
    tokens: int
    mean_latency_ms: float
    first_at: datetime
    last_at: datetime


class RoundList(BaseModel):
    items: list[RoundSummary]


class SampleRound(BaseModel):
    round_index: int
    epoch: float
    step: int
    prediction: str
    tokens_generated: int
    latency_ms: float


class SampleHistory(BaseModel):
    """One sample's prompt and ground truth, and its prediction at every round: the comparison view."""

    sample_id: str
    sample_index: int
    prompt: str
    ground_truth: str | None
    rounds: list[SampleRound]
