"""The request bodies of the OpenAI-compatible surface, as the official SDK sends them (`job_create_params`).
Unknown fields are refused (a 400 naming them), never ignored; `predictions` is Epochscope's own (`extra_body`)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Auto = Literal["auto"]


class Hyperparameters(BaseModel):
    """`auto` is Epochscope's default: 3 epochs, batches of 8, the base learning rate (2e-4)."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: int | Auto = "auto"
    batch_size: int | Auto = "auto"
    learning_rate_multiplier: float | Auto = Field(default="auto", description="Times the base rate, 2e-4.")


class DpoHyperparameters(Hyperparameters):
    beta: float | Auto = Field(default="auto", description="DPO's beta; auto is 0.1.")


class ReinforcementHyperparameters(Hyperparameters):
    """The settings mapped here; the rest of `method.reinforcement` goes to the reinforcement mapping."""

    model_config = ConfigDict(extra="allow")


class SupervisedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: Hyperparameters | None = None


class DpoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: DpoHyperparameters | None = None


class MethodRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedSettings | None = None
    dpo: DpoSettings | None = None
    reinforcement: dict[str, Any] | None = Field(
        default=None, description="`grader` and `hyperparameters`, as OpenAI's reinforcement method."
    )


class JobCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(max_length=64, description="A model id from GET /v1/models.")
    training_file: str = Field(max_length=64)
    validation_file: str | None = Field(default=None, max_length=64)
    hyperparameters: Hyperparameters | None = Field(default=None, description="Deprecated by OpenAI: use method.")
    method: MethodRequest | None = None
    suffix: str | None = Field(default=None, min_length=1, max_length=64, description="Becomes the job's name.")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, description="Seeds the prediction samples.")
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = Field(default=None, description="Refused unless empty.")
    predictions: dict[str, Any] | None = Field(
        default=None, description="Epochscope's predictions config (extra_body); see docs/openai.md for the default."
    )
