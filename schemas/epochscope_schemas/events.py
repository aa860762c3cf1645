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
from epochscope_schemas.dataset_formats import FileType, RowFormat
from epochscope_schemas.graders import MAX_GRADERS, Grade, GraderName, GraderSummary
from epochscope_schemas.methods import MAX_REWARDS
from epochscope_schemas.topics import JOB_COMMANDS, TRAINING_PREDICTIONS, TRAINING_STATUS

SCHEMA_VERSION = 1
# 2: datasets and the model named by object keys and a catalog source, not paths; 3: addressed to one trainer as one
# attempt (`trainer_id`, `attempt_id`, `attempt_no`) by the API's dispatcher
JOB_START_SCHEMA_VERSION = 3
JOB_CANCEL_SCHEMA_VERSION = 2  # 2: signed by the API with the job's token (`command_signing`); v1 carried no proof


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
    attempt_id: UUID | None = Field(
        default=None,
        description="The dispatch this trainer event belongs to; the writer refuses events of an attempt that is no"
        " longer the job's current one.",
    )


class DatasetObject(BaseModel):
    """An uploaded dataset as the trainer reads it: its object key, file type and content hash."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: UUID
    key: Annotated[str, Field(min_length=1, max_length=1024)]
    file_type: FileType
    row_format: RowFormat
    sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$")]
    bytes: Annotated[int, Field(ge=0)]


class ModelSource(BaseModel):
    """The catalog entry a job names: its id and where the trainer loads it from."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source: str


class JobInputs(BaseModel):
    """What the trainer reads (and the bytes it may keep), resolved by the API from the job's ids and the owner's quota:
    never a user-chosen path."""

    model_config = ConfigDict(extra="forbid")

    model: ModelSource
    train: DatasetObject
    eval: DatasetObject | None = None
    samples: DatasetObject | None = None
    checkpoint_bytes_max: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="The most bytes the job's kept checkpoints may take: what was left of the owner's checkpoint quota"
        " when the job was submitted; null: no limit.",
    )


class JobStartEvent(Envelope):
    """Published by the API's dispatcher (through the outbox) for one attempt, addressed to one trainer."""

    schema_version: Literal[3] = JOB_START_SCHEMA_VERSION
    type: Literal["job.start"] = "job.start"
    user_id: str
    trainer_id: str | None = Field(default=None, max_length=200, description="The one trainer that runs this start.")
    attempt_no: Annotated[int, Field(ge=0)] = 0
    config: JobConfig
    inputs: JobInputs
    sealed_job_token: str | None = Field(
        default=None,
        max_length=2048,
        description="The attempt's job token sealed for the addressed trainer's public key (X25519, HKDF-SHA256,"
        " AES-256-GCM; `epochscope_runtime.token_sealing`): only that trainer can open it. The dispatcher never sends"
        " `job_token` in the clear.",
    )
    signature: str | None = Field(
        default=None,
        max_length=128,
        description="Ed25519 signature (hex) of every other field under the dispatcher's private key: proof the API's"
        " dispatcher sent this start to this trainer; a trainer with the dispatcher's public keys refuses a start"
        " without it.",
    )


class JobCancelEvent(Envelope):
    """Published by the API when a user cancels or deletes a job, or by its dispatcher for one attempt it fenced
    (`attempt_id` set: that attempt stops, the job's other attempts do not); keyed by job id like the start event.

    A trainer obeys it only when `signature` verifies against the token of the job's start event
    (`epochscope_runtime.command_signing`); any other cancel is dead-lettered and ignored.
    """

    schema_version: Literal[2] = JOB_CANCEL_SCHEMA_VERSION
    type: Literal["job.cancel"] = "job.cancel"
    user_id: str
    signature: str = Field(
        default="",
        max_length=128,
        description="HMAC-SHA256 (hex) keyed by the job's token over the type, job id, user id, event id,"
        " occurred_at and attempt_id (when set): proof the API sent it, without putting the token on the topic"
        " again.",
    )


class PredictionScores(BaseModel):
    """Similarity of one prediction to its ground truth, each in [0, 1], counted in Unicode-aware normalized words
    (`epochscope_runtime.grading.similarity`, the same numbers as the text_similarity graders)."""

    model_config = ConfigDict(extra="forbid")

    exact_match: Annotated[float, Field(ge=0, le=1, description="Normalized exact match (0 or 1).")]
    f1: Annotated[float, Field(ge=0, le=1, description="Token-level F1.")]
    rouge_l: Annotated[float, Field(ge=0, le=1, description="ROUGE-L F-measure over normalized words.")]


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
    valid: bool | None = Field(
        default=None,
        description="Passed every format grader (json_parse, json_schema: what validators become); null without one.",
    )
    validation_error: str | None = Field(
        default=None, max_length=2000, description="The reason of the first format grader that failed."
    )
    scores: PredictionScores | None = Field(
        default=None, description="The built-in similarities to the ground truth, when there is one."
    )
    grades: dict[str, Grade] = Field(
        default_factory=dict,
        max_length=MAX_GRADERS,
        description="Each grader's verdict, by grader name (validators included); a grader that needs a ground "
        "truth is absent where there is none.",
    )
    truncated: list[Literal["prompt", "ground_truth", "prediction"]] = Field(
        default_factory=list,
        max_length=3,
        description="The texts cut to the trainer's limit in UTF-8 bytes "
        "(EPOCHSCOPE_TRAINER_PREDICTION_TEXT_MAX_BYTES, 64 KiB by default); empty when none was.",
    )


class RolloutEvent(Envelope):
    """One completion a GRPO training step generated and rewarded: its prompt, each reward component's score (the
    job's graders), the total (their weighted mean) and the advantage the update used."""

    type: Literal["rollout"] = "rollout"
    step: Annotated[int, Field(ge=1, description="The training step the completion was generated for.")]
    completion_index: Annotated[int, Field(ge=0, description="Its place among the step's completions.")]
    prompt: str
    completion: str
    rewards: dict[GraderName, Annotated[float, Field(ge=0, le=1)] | None] = Field(
        max_length=MAX_GRADERS, description="Each reward component's score, by grader name; null: not graded."
    )
    reward: float | None = Field(
        description="The total: the weighted mean of the scores (weights summing to 1; a component that did not grade "
        "it adds nothing); null when none graded it."
    )
    advantage: float
    truncated: list[Literal["prompt", "completion"]] = Field(
        default_factory=list, max_length=2, description="The texts cut to the trainer's text limit, as predictions."
    )


class RoundTrigger(StrEnum):
    """What started a prediction round."""

    BASELINE = "baseline"  # before training
    EPOCH = "epoch"  # an epoch's end
    EVAL = "eval"  # an evaluation
    STEPS = "steps"  # every `step_interval` global steps


class RoundSummaryEvent(Envelope):
    """Published once per prediction round, after its predictions."""

    type: Literal["round.summary"] = "round.summary"
    round_index: Annotated[int, Field(ge=0)]
    epoch: Annotated[float, Field(ge=0)]
    step: Annotated[int, Field(ge=0)]
    trigger: RoundTrigger = Field(description="What started the round.")
    predictions: Annotated[int, Field(ge=0)]
    validated: Annotated[int, Field(ge=0, description="Predictions with a `valid` (the job has format graders).")] = 0
    valid: Annotated[int, Field(ge=0, description="Predictions that passed every format grader.")] = 0
    scored: Annotated[int, Field(ge=0, description="Predictions with a ground truth to score against.")] = 0
    mean_exact_match: float | None = None
    mean_f1: float | None = None
    mean_rouge_l: float | None = None
    graders: dict[str, GraderSummary] = Field(
        default_factory=dict, max_length=MAX_GRADERS, description="Each grader's count, passes and mean score."
    )
    tokens_generated: Annotated[int, Field(ge=0)] = 0
    wall_ms: Annotated[float, Field(ge=0, description="Round wall time.")] = 0.0
    stall_ms: Annotated[float, Field(ge=0, description="How long training waited for this round.")] = 0.0


class CheckpointFile(BaseModel):
    """One file of a checkpoint, under the checkpoint's key prefix."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=200,
            pattern=r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
            description="A file name, never a path: letters, digits, '_', '-' and '.', not only dots ('.', '..').",
        ),
    ]
    bytes: Annotated[int, Field(ge=0)]
    sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$")]


class CheckpointEvent(Envelope):
    """The weights behind one round (or the final weights), uploaded to the object store under `key`."""

    type: Literal["checkpoint"] = "checkpoint"
    checkpoint_id: UUID = Field(description="uuid5 of the job id and the checkpoint's name: the same on a redelivery.")
    round_index: Annotated[int | None, Field(ge=0, description="The round; null for the final weights.")] = None
    step: Annotated[int, Field(ge=0)]
    epoch: Annotated[float, Field(ge=0)]
    final: bool = Field(default=False, description="The weights at the end of training.")
    key: Annotated[str, Field(min_length=1, max_length=1024, description="The checkpoint's key prefix.")]
    files: Annotated[list[CheckpointFile], Field(min_length=1, max_length=64)]
    bytes: Annotated[int, Field(ge=0, description="All files together.")]
    sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$", description="Of the files' names and hashes, in order.")]
    metrics: dict[str, float | None] = Field(
        default_factory=dict, max_length=MAX_GRADERS * 2 + 8, description="The round's metrics by metric name."
    )
    save_ms: Annotated[float, Field(ge=0, description="Writing the weights to local disk.")] = 0.0
    stall_ms: Annotated[
        float | None,
        Field(
            ge=0,
            description="How long training waited for the save: its save_ms where the save ran in training's thread "
            "(an inline round, the final weights); null where it ran beside training (a background round), not "
            "measured there (a wait for it shows in the next round's stall_ms).",
        ),
    ] = None
    upload_ms: Annotated[float, Field(ge=0)] = 0.0


class CheckpointDeletedEvent(Envelope):
    """A checkpoint pruned (mode best): its objects are gone from the store."""

    type: Literal["checkpoint.deleted"] = "checkpoint.deleted"
    checkpoint_id: UUID
    round_index: Annotated[int | None, Field(ge=0)] = None


class RewardProgress(BaseModel):
    """One GRPO reward component over the training steps since the last progress event: its mean score, and the
    fraction of its graded completions that passed (score at the grader's threshold); null where nothing was graded."""

    model_config = ConfigDict(extra="forbid")

    mean: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    pass_rate: Annotated[float, Field(ge=0.0, le=1.0)] | None = None


class ProgressEvent(Envelope):
    """Training progress at a configurable interval: the data of the progress bar and the loss chart."""

    type: Literal["job.progress"] = "job.progress"
    step: Annotated[int, Field(ge=0)]
    max_steps: Annotated[int, Field(ge=0)]
    epoch: Annotated[float, Field(ge=0)]
    num_epochs: Annotated[int, Field(ge=1)]
    loss: float | None = None
    learning_rate: float | None = None
    samples_per_second: float | None = None
    # GRPO only (null for SFT): each reward component by grader name, and the mean total reward.
    rewards: Annotated[dict[GraderName, RewardProgress], Field(max_length=MAX_REWARDS)] | None = None
    reward: float | None = None
    # DPO only (null otherwise), means over the pairs since the last progress event: the implicit rewards (beta times
    # the policy's log-ratio to the reference) of the chosen and the rejected answers, the chosen one's margin over
    # the rejected one, and the fraction of pairs whose chosen answer has the higher reward.
    chosen_reward: float | None = None
    rejected_reward: float | None = None
    reward_margin: float | None = None
    reward_accuracy: Annotated[float, Field(ge=0.0, le=1.0)] | None = None


class WarningEvent(Envelope):
    """Something the user should know that did not stop training (a missing samples file, a failed round)."""

    type: Literal["job.warning"] = "job.warning"
    code: Annotated[str, Field(min_length=1, max_length=100)]
    message: Annotated[str, Field(max_length=2000)]


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
    JobStartEvent
    | JobCancelEvent
    | PredictionEvent
    | RoundSummaryEvent
    | JobStatusEvent
    | ProgressEvent
    | WarningEvent
    | CheckpointEvent
    | CheckpointDeletedEvent
    | RolloutEvent,
    Field(discriminator="type"),
]
EVENT_TYPES: tuple[type[Envelope], ...] = (
    JobStartEvent,
    JobCancelEvent,
    PredictionEvent,
    RoundSummaryEvent,
    JobStatusEvent,
    ProgressEvent,
    WarningEvent,
    CheckpointEvent,
    CheckpointDeletedEvent,
    RolloutEvent,
)

# The topic each event travels on: a consumer applies an event only from its own topic.
EVENTS_BY_TOPIC: dict[str, tuple[type[Envelope], ...]] = {
    JOB_COMMANDS: (JobStartEvent, JobCancelEvent),
    TRAINING_PREDICTIONS: (PredictionEvent, RolloutEvent),
    TRAINING_STATUS: (
        JobStatusEvent,
        RoundSummaryEvent,
        ProgressEvent,
        WarningEvent,
        CheckpointEvent,
        CheckpointDeletedEvent,
    ),
}

_event_adapter: TypeAdapter[Any] = TypeAdapter(Event)


def parse_event(raw: bytes | str) -> Envelope:
    """Parse and validate one event from JSON; raises pydantic.ValidationError."""
    return _event_adapter.validate_json(raw)


def encode_event(event: Envelope) -> bytes:
    return event.model_dump_json().encode()
