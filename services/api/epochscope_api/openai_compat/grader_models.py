"""The bodies of POST /openai/v1/fine_tuning/alpha/graders/{run,validate}, in the shapes of the official SDK's
`GraderRunParams`/`GraderRunResponse` and `GraderValidateParams`/`GraderValidateResponse`. Fields starting with
`epochscope_` are Epochscope's additions: the Epochscope graders that ran, and their verdicts."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from epochscope_schemas.graders import GraderConfig

_GRADER = "An OpenAI grader: string_check, text_similarity, or multi whose calculate_output is a weighted sum."


class OpenAIGraderRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grader: dict[str, Any] = Field(description=_GRADER)
    model_sample: str = Field(description="The answer to grade: what `{{sample.output_text}}` stands for.")
    item: Any = Field(default=None, description="The dataset row: `{{item.<field>}}` reads its top-level fields.")


class OpenAIGraderValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grader: dict[str, Any] = Field(description=_GRADER)


class OpenAIGraderRunErrors(BaseModel):
    """OpenAI's error flags; Epochscope sets `invalid_variable_error` when the item lacks a field a grader reads."""

    model_config = ConfigDict(protected_namespaces=())

    formula_parse_error: bool = False
    invalid_variable_error: bool = False
    model_grader_parse_error: bool = False
    model_grader_refusal_error: bool = False
    model_grader_server_error: bool = False
    model_grader_server_error_details: str | None = None
    other_error: bool = False
    python_grader_runtime_error: bool = False
    python_grader_runtime_error_details: str | None = None
    python_grader_server_error: bool = False
    python_grader_server_error_type: str | None = None
    sample_parse_error: bool = False
    truncated_observation_error: bool = False
    unresponsive_reward_error: bool = False


class OpenAIGraderRunMetadata(BaseModel):
    errors: OpenAIGraderRunErrors
    execution_time: float = Field(description="Seconds spent grading.")
    name: str = Field(description="The grader's name, as given.")
    sampled_model_name: str | None = None
    scores: dict[str, float] = Field(description="Each Epochscope grader's score, by name (those that graded).")
    token_usage: int | None = None
    type: str = Field(description="The grader's type, as given.")


class EpochscopeVerdict(BaseModel):
    """One Epochscope grader's verdict, as POST /v1/graders/run gives it, and its weight in the reward."""

    graded: bool = Field(description="False when the item lacked the field the grader compares with.")
    score: float | None = None
    passed: bool | None = None
    reason: str | None = None
    weight: float


class OpenAIGraderRunResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    reward: float = Field(description="The weighted sum of the graders' scores (one grader: its score).")
    metadata: OpenAIGraderRunMetadata
    sub_rewards: dict[str, float] = Field(description="Each Epochscope grader's score, by name.")
    model_grader_token_usage_per_model: dict[str, Any] = Field(default_factory=dict)
    epochscope_verdicts: dict[str, EpochscopeVerdict] = Field(description="By Epochscope grader name.")


class EpochscopeComponent(BaseModel):
    grader: GraderConfig
    weight: float


class OpenAIGraderValidateResponse(BaseModel):
    grader: dict[str, Any] = Field(description="The grader, as given.")
    epochscope_graders: list[EpochscopeComponent] = Field(
        description="The Epochscope graders it runs as, each with its weight in the reward."
    )
