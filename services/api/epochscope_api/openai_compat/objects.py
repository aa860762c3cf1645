"""OpenAI's object shapes for files, fine-tuning jobs, their events and checkpoints, and its list envelope, as the
official SDK reads them (field names and types from its `types/`). Schema names start with `OpenAI` so they stay
apart from Epochscope's own in the OpenAPI document."""

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

Item = TypeVar("Item")


class OpenAIList(BaseModel, Generic[Item]):
    object: Literal["list"] = "list"
    data: list[Item]
    has_more: bool
    first_id: str | None
    last_id: str | None

    @classmethod
    def of(cls, data: list[Any], has_more: bool) -> "OpenAIList[Any]":
        return cls(
            data=data, has_more=has_more, first_id=data[0].id if data else None, last_id=data[-1].id if data else None
        )


class OpenAIFile(BaseModel):
    id: str = Field(description="`file-` and the dataset's id.")
    object: Literal["file"] = "file"
    bytes: int
    created_at: int = Field(description="Unix seconds.")
    filename: str
    purpose: Literal["fine-tune"] = "fine-tune"
    status: Literal["processed"] = Field(
        default="processed", description="Always processed: an upload is validated before it is answered."
    )
    status_details: str | None = Field(default=None, description="The validation report in one line.")


class OpenAIFileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


class OpenAIJobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class OpenAIHyperparameters(BaseModel):
    """What the job trains with; `learning_rate` is the explicit rate the multiplier was mapped to."""

    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float = Field(description="learning_rate / the base rate (2e-4).")
    learning_rate: float = Field(description="The learning rate the job trains with (Epochscope's own).")
    beta: float | None = Field(default=None, description="DPO's beta; null for the other methods.")


class OpenAIMethodSettings(BaseModel):
    hyperparameters: OpenAIHyperparameters
    grader: dict[str, Any] | None = Field(default=None, description="reinforcement: the job's graders, by name.")


class OpenAIMethod(BaseModel):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: OpenAIMethodSettings | None = None
    dpo: OpenAIMethodSettings | None = None
    reinforcement: OpenAIMethodSettings | None = None


class OpenAIFineTuningJob(BaseModel):
    id: str = Field(description="`ftjob-` and the Epochscope job's id.")
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: int | None
    error: OpenAIJobError | None
    fine_tuned_model: str | None = Field(description="Names the job's final checkpoint (see docs/openai.md).")
    hyperparameters: OpenAIHyperparameters
    method: OpenAIMethod
    model: str
    organization_id: str = Field(description="The user's id: Epochscope has no organizations.")
    result_files: list[str] = Field(default_factory=list, description="Always empty.")
    seed: int = Field(description="The seed of the prediction samples and of the eval split.")
    status: Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    estimated_finish: int | None = Field(
        description="While queued: now plus the queue's estimated start (unix seconds); null otherwise."
    )
    integrations: list[dict[str, Any]] = Field(default_factory=list, description="Always empty.")
    metadata: dict[str, str]
    suffix: str | None = Field(description="The job's name.")
    epochscope_job_id: str = Field(description="The same job in Epochscope's own API (/v1/jobs/{job_id}).")


class OpenAIJobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: dict[str, Any] | None = None


class OpenAICheckpointMetrics(BaseModel):
    step: float | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    graders: dict[str, float | None] = Field(
        default_factory=dict, description="The round's pass rate of each grader (and Epochscope's round metrics)."
    )


class OpenAICheckpoint(BaseModel):
    id: str = Field(description="`ftckpt-` and the Epochscope checkpoint's id.")
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: OpenAICheckpointMetrics
    step_number: int
    download_url: str = Field(description="Epochscope's download of this checkpoint (a tar).")


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    error: OpenAIErrorDetail


_ERRORS = {
    400: "A field is invalid or refused; `param` names it.",
    401: "Missing or invalid bearer token (an Epochscope user token).",
    404: "No such object for this user.",
    409: "The object is in use.",
    413: "The body or file is larger than the server's limit.",
    429: "A rate limit or quota; Retry-After says when to retry.",
    "default": "Any other error, in OpenAI's shape (field errors are 400s here, never 422s).",
}


def openai_error_responses(*codes: int | str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries in OpenAI's error shape."""
    return {code: {"model": OpenAIErrorBody, "description": _ERRORS[code]} for code in codes}
