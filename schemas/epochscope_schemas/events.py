"""Events exchanged over Kafka. Every event carries the same envelope.

A consumer parses raw bytes with `parse_event`; an unknown `type` or an unknown
`schema_version` is a validation error, which the consumer dead-letters.
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from epochscope_schemas.config import JobConfig

SCHEMA_VERSION = 1


def _now() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """Fields shared by every event."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID = Field(default_factory=uuid4)
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: datetime = Field(default_factory=_now)
    job_id: UUID
    job_token: str | None = Field(default=None, description="The job's signed token, where a trainer speaks for a job.")


class JobStartEvent(Envelope):
    """Published by the API's outbox relay when a job is created."""

    type: Literal["job.start"] = "job.start"
    user_id: str
    config: JobConfig


class JobCancelEvent(Envelope):
    """Published by the API when a user cancels a job; keyed by job id like the start event."""

    type: Literal["job.cancel"] = "job.cancel"
    user_id: str


class PredictionEvent(Envelope):
    """One model answer to one sample prompt in one prediction round."""

    type: Literal["prediction"] = "prediction"
    round_index: Annotated[int, Field(ge=0)]
    epoch: Annotated[float, Field(ge=0)]
    step: Annotated[int, Field(ge=0)]
    sample_id: Annotated[str, Field(min_length=1, max_length=200)]
    sample_index: Annotated[int, Field(ge=0)]
    prompt: str
    ground_truth: str | None = None
    prediction: str
    tokens_generated: Annotated[int, Field(ge=0)] = 0
    latency_ms: Annotated[float, Field(ge=0)] = 0.0


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}


class JobStatusEvent(Envelope):
    """A job's lifecycle: running (started), completed, failed or cancelled."""

    type: Literal["job.status"] = "job.status"
    status: JobStatus
    message: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


Event = Annotated[
    JobStartEvent | JobCancelEvent | PredictionEvent | JobStatusEvent,
    Field(discriminator="type"),
]
EVENT_TYPES: tuple[type[Envelope], ...] = (JobStartEvent, JobCancelEvent, PredictionEvent, JobStatusEvent)

_event_adapter: TypeAdapter[Any] = TypeAdapter(Event)


def parse_event(raw: bytes | str) -> Envelope:
    """Parse and validate one event from JSON; raises pydantic.ValidationError."""
    return _event_adapter.validate_json(raw)


def encode_event(event: Envelope) -> bytes:
    return event.model_dump_json().encode()
