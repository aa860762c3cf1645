"""The job config a user submits, with its predictions config.

The models hold the rules that never change. Server limits (how many samples, how often, how many
tokens) are settings, not literals: `PredictionLimits` reads them from the environment and the API
applies them with `limit_violations` when a job is submitted. Consumers of stored or in-flight
configs (trainer, writer) never re-check them, so lowering a limit cannot break a running job.
"""

import json
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from epochscope_schemas.checkpoints import CheckpointsConfig, StopWhen
from epochscope_schemas.graders import MAX_GRADERS, MAX_VALIDATORS, GraderConfig, validator_graders
from epochscope_schemas.linear_regex import schema_problems
from epochscope_schemas.methods import GrpoMethod, MethodConfig, SftMethod


class PredictionLimits(BaseSettings):
    """Server-side bounds on a predictions config (env: EPOCHSCOPE_PREDICTIONS_MAX_SAMPLE_COUNT...)."""

    model_config = SettingsConfigDict(env_prefix="EPOCHSCOPE_PREDICTIONS_")

    max_sample_count: int = 64
    min_step_interval: int = 10
    max_new_tokens: int = 512
    max_json_schema_bytes: int = 64 * 1024


class SampleFrequency(StrEnum):
    EPOCH = "epoch"
    EVAL = "eval"
    STEPS = "steps"


class ValidatorKind(StrEnum):
    JSON_PARSE = "json_parse"
    JSON_SCHEMA = "json_schema"


class ValidatorConfig(BaseModel):
    """A check each prediction must pass: valid JSON, or JSON matching a JSON Schema."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Annotated[ValidatorKind, Field(strict=False)]
    json_schema: Annotated[
        dict[str, Any] | None, Field(description="The JSON Schema predictions must match (kind json_schema).")
    ] = None

    @model_validator(mode="after")
    def _schema_matches_kind(self) -> "ValidatorConfig":
        if self.kind == ValidatorKind.JSON_SCHEMA:
            if self.json_schema is None:
                raise ValueError("json_schema is required when kind is 'json_schema'")
            try:
                Draft202012Validator.check_schema(self.json_schema)
            except SchemaError as exc:
                raise ValueError(f"json_schema is not a valid JSON Schema: {exc.message}") from None
            problems = list(schema_problems(self.json_schema))
            if problems:
                raise ValueError(f"json_schema: {problems[0]}")
        elif self.json_schema is not None:
            raise ValueError("json_schema is only allowed when kind is 'json_schema'")
        return self


class PredictionsConfig(BaseModel):
    """What to predict, how often, and how to generate."""

    model_config = ConfigDict(extra="forbid", strict=True)  # strict: `true` is not a temperature

    enabled: bool = False
    sample_count: Annotated[int, Field(ge=1, description="Prompts per round.")] = 8
    sample_frequency: Annotated[SampleFrequency, Field(strict=False)] = SampleFrequency.EPOCH
    step_interval: Annotated[
        int | None, Field(ge=1, description="Global steps between rounds, for sample_frequency=steps.")
    ] = None
    samples_dataset_id: Annotated[
        UUID | None,
        Field(strict=False, description="Uploaded dataset to draw prediction samples from (default: training data)."),
    ] = None
    seed: int = 42
    max_new_tokens: Annotated[int, Field(ge=1)] = 64
    temperature: Annotated[float, Field(ge=0.0, le=5.0, description="0 means greedy decoding.")] = 0.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    validators: Annotated[
        list[ValidatorConfig],
        Field(
            max_length=MAX_VALIDATORS,
            description="Older form of json_parse/json_schema graders: accepted, and turned into graders when the "
            "config is submitted (so a stored config has none).",
        ),
    ] = []
    graders: Annotated[
        list[GraderConfig],
        Field(
            max_length=MAX_GRADERS,
            description="Named graders: each scores every prediction in [0, 1] and passes it at its threshold. "
            f"At most {MAX_GRADERS}, validators included.",
        ),
    ] = []
    background: Annotated[
        bool,
        Field(
            description="Generate on a snapshot of the weights in a background thread while training goes on; "
            "training stalls only for the snapshot. Single-process jobs only."
        ),
    ] = False
    baseline_round: Annotated[
        bool, Field(description="Also predict once before training starts, to see where the model began.")
    ] = True
    checkpoints: CheckpointsConfig = Field(
        default_factory=CheckpointsConfig, description="Which rounds' weights are kept (none, every_round, best)."
    )
    stop_when: StopWhen | None = Field(default=None, description="End training early, judged on the rounds' answers.")

    @model_validator(mode="after")
    def _steps_need_an_interval(self) -> "PredictionsConfig":
        if self.sample_frequency == SampleFrequency.STEPS and self.step_interval is None:
            raise ValueError("step_interval is required when sample_frequency is 'steps'")
        return self

    # How many of `graders` the submitted `validators` became (first in the list): their limits are reported at
    # the field the user wrote. Not serialized: a stored config is graders only.
    _graders_from_validators: int = PrivateAttr(default=0)

    @model_validator(mode="after")
    def _validators_become_graders(self) -> "PredictionsConfig":
        """The one place validators turn into graders; a config parsed again (stored, in the start event) has
        no validators left, so this runs once per job."""
        if self.validators:
            converted = validator_graders(self.validators)
            if len(converted) + len(self.graders) > MAX_GRADERS:
                raise ValueError(f"at most {MAX_GRADERS} graders, validators included")
            self.graders = [*converted, *self.graders]
            self.validators = []
            self._graders_from_validators = len(converted)
        names = [grader.name for grader in self.graders]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"grader names must be unique (validators count as graders): {', '.join(duplicates)}")
        return self

    def submitted_location(self, grader_index: int) -> tuple[str, int]:
        """The field and index the user wrote `graders[grader_index]` at (`validators` for a converted one)."""
        converted = self._graders_from_validators
        return ("validators", grader_index) if grader_index < converted else ("graders", grader_index - converted)


class LoraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    r: Annotated[int, Field(ge=1, le=256)] = 8
    alpha: Annotated[int, Field(ge=1)] = 16
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    target_modules: Annotated[
        list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.]{1,100}$")]] | Literal["all-linear"],
        Field(
            max_length=64,
            description="Module names to adapt (exact names such as q_proj, or dotted suffixes), or 'all-linear'. "
            "Not a regular expression: PEFT would run one against every module name.",
        ),
    ] = "all-linear"


MetadataKey = Annotated[str, Field(min_length=1, max_length=64)]
MetadataValue = Annotated[str, Field(max_length=512)]


class JobConfig(BaseModel):
    """A fine-tuning job: model, data, hyperparameters and predictions."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[
        str | None, Field(min_length=1, max_length=128, description="A name to know the job by (not unique).")
    ] = None
    metadata: Annotated[
        dict[MetadataKey, MetadataValue],
        Field(max_length=16, description="Up to 16 key/value tags; GET /v1/jobs filters by them."),
    ] = {}
    model: Annotated[str, Field(min_length=1, max_length=64, description="A model id from GET /v1/models.")]
    dataset_id: Annotated[UUID, Field(strict=False, description="The training data: an id from POST /v1/datasets.")]
    num_epochs: Annotated[int, Field(ge=1, le=100)] = 3
    batch_size: Annotated[int, Field(ge=1, le=1024)] = 8
    learning_rate: Annotated[float, Field(gt=0.0, lt=1.0)] = 2e-4
    max_length: Annotated[int, Field(ge=8, le=32768)] = 512
    eval_dataset_id: Annotated[
        UUID | None, Field(strict=False, description="An uploaded eval split (any supported format).")
    ] = None
    eval_fraction: Annotated[
        float | None, Field(gt=0.0, lt=1.0, description="Hold out this fraction of the data for eval.")
    ] = None
    method: MethodConfig = Field(
        default_factory=SftMethod, description="How the job trains (the TRL trainer it runs); SFT by default."
    )
    lora: LoraConfig | None = None
    predictions: PredictionsConfig = PredictionsConfig()

    @model_validator(mode="after")
    def _eval_split(self) -> "JobConfig":
        if self.eval_dataset_id is not None and self.eval_fraction is not None:
            raise ValueError("give eval_dataset_id or eval_fraction, not both")
        if self.predictions.sample_frequency == SampleFrequency.EVAL and not self.has_eval_split:
            raise ValueError("sample_frequency 'eval' needs an eval split: set eval_dataset_id or eval_fraction")
        return self

    @model_validator(mode="after")
    def _grpo_fits_the_job(self) -> "JobConfig":
        """A reward names one of the job's graders; a batch holds whole groups of generations."""
        if not isinstance(self.method, GrpoMethod):
            return self
        graders = {grader.name for grader in self.predictions.graders}
        for index, component in enumerate(self.method.rewards):
            if isinstance(component.grader, str) and component.grader not in graders:
                raise ValueError(
                    f"method.rewards.{index}.grader: no grader named {component.grader!r} in predictions.graders"
                )
        if self.batch_size % self.method.num_generations:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of method.num_generations "
                f"({self.method.num_generations}): a batch holds whole groups of completions"
            )
        return self

    @property
    def has_eval_split(self) -> bool:
        return self.eval_dataset_id is not None or self.eval_fraction is not None

    def dataset_ids(self) -> dict[str, UUID]:
        """Every dataset the job reads, by the config field that names it."""
        named = {
            "dataset_id": self.dataset_id,
            "eval_dataset_id": self.eval_dataset_id,
            "predictions.samples_dataset_id": self.predictions.samples_dataset_id,
        }
        return {field: dataset_id for field, dataset_id in named.items() if dataset_id is not None}

    @field_validator("model")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


Loc = tuple[str | int, ...]


def limit_violations(config: JobConfig, limits: PredictionLimits) -> list[tuple[Loc, str]]:
    """(field path, message) for every server limit the config exceeds; empty when it fits."""
    predictions = config.predictions
    violations: list[tuple[Loc, str]] = []
    if predictions.sample_count > limits.max_sample_count:
        violations.append(
            (("predictions", "sample_count"), f"must be at most {limits.max_sample_count} (server limit)")
        )
    if predictions.max_new_tokens > limits.max_new_tokens:
        violations.append(
            (("predictions", "max_new_tokens"), f"must be at most {limits.max_new_tokens} (server limit)")
        )
    for index, grader in enumerate(predictions.graders):
        violations += [
            (("predictions", *predictions.submitted_location(index), *loc), message)
            for loc, message in grader_limit_violations(grader, limits)
        ]
    if predictions.step_interval is not None and predictions.step_interval < limits.min_step_interval:
        violations.append(
            (("predictions", "step_interval"), f"must be at least {limits.min_step_interval} (server limit)")
        )
    return violations


def grader_limit_violations(grader: GraderConfig, limits: PredictionLimits) -> list[tuple[Loc, str]]:
    """(field path within the grader, message) for every server limit one grader exceeds: a job's graders and a
    grader tried alone (POST /v1/graders/run) are bounded alike."""
    schema = getattr(grader, "json_schema", None)
    size = len(json.dumps(schema)) if schema is not None else 0
    if size > limits.max_json_schema_bytes:
        return [
            (
                ("json_schema",),
                f"must be at most {limits.max_json_schema_bytes} bytes as JSON (server limit); it is {size}",
            )
        ]
    return []
