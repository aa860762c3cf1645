"""A job's training method (`method`): which TRL trainer the job runs. SFT is the default; every other method
(DPO, GRPO) is one more model here with its own `type`, joined into `MethodConfig` as a discriminated union.

Bounds that are server policy (how many generations, how long a completion) are settings (`GrpoLimits`), applied
by the API with `grpo_limit_violations` at submission, like the predictions limits."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from epochscope_schemas.graders import GraderConfig, GraderName


class SftMethod(BaseModel):
    """Supervised fine-tuning (TRL's SFTTrainer) on chat, prompt/completion or text rows."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["sft"] = "sft"
    train_on: Literal["answers", "all"] = Field(
        default="answers",
        description="The tokens the loss covers: `answers` (a chat row's assistant turns, a prompt/completion "
        "row's completion, a text row's whole text) or `all` (every token of every row).",
    )
    assistant_turns: Literal["all", "last"] = Field(
        default="all",
        description="With `train_on: answers`, which assistant turns of a chat row are trained on: every one "
        "(less those with `weight: 0`) or the last only.",
    )


class RewardComponent(BaseModel):
    """One part of a GRPO reward: a grader (inline, or the name of one of the job's `predictions.graders`) and its
    weight. A completion's reward is the weighted mean of its components' scores."""

    model_config = ConfigDict(extra="forbid", strict=True)

    grader: GraderConfig | GraderName
    weight: Annotated[float, Field(ge=0.0, le=1000.0)] = 1.0

    @property
    def name(self) -> str:
        """The component's name: its grader's."""
        return self.grader if isinstance(self.grader, str) else self.grader.name


class RolloutLogging(BaseModel):
    """Which of each step's completions are published as rollouts: all, or a seeded sample of `per_step`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    log: Literal["all", "sample"] = "sample"
    per_step: Annotated[int, Field(ge=1, description="Completions kept per step when log is 'sample'.")] = 8
    seed: int = 0


class DivergenceWatch(BaseModel):
    """When a `reward_divergence` warning is recorded: one component's mean score rose by at least `min_change` while
    another's fell by at least as much, across the last `window` training steps."""

    model_config = ConfigDict(extra="forbid", strict=True)

    window: Annotated[int, Field(ge=2, le=1000, description="Training steps compared, first to last.")] = 5
    min_change: Annotated[float, Field(gt=0.0, le=1.0, description="Least rise and fall of a mean score.")] = 0.2


MAX_REWARDS = 8


class GrpoMethod(BaseModel):
    """Reinforcement learning on checkable answers (TRL's GRPOTrainer): for each prompt, `num_generations`
    completions are sampled and rewarded by graders. The job's `learning_rate` and `num_epochs` apply; `max_steps`
    ends training earlier."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["grpo"]
    rewards: Annotated[list[RewardComponent], Field(min_length=1, max_length=MAX_REWARDS)]
    num_generations: Annotated[int, Field(ge=2, description="Completions per prompt (the group).")] = 4
    max_completion_length: Annotated[int, Field(ge=1, description="Most tokens generated per completion.")] = 64
    temperature: Annotated[float, Field(gt=0.0, le=5.0)] = 1.0
    beta: Annotated[float, Field(ge=0.0, le=10.0, description="Weight of the KL penalty to the starting model.")] = 0.0
    max_steps: Annotated[int | None, Field(ge=1, le=1_000_000, description="Stop after this many steps.")] = None
    rollouts: RolloutLogging = Field(default_factory=RolloutLogging)
    reward_divergence: DivergenceWatch = Field(default_factory=DivergenceWatch)

    @model_validator(mode="after")
    def _rewards_weigh_something(self) -> "GrpoMethod":
        if sum(component.weight for component in self.rewards) <= 0:
            raise ValueError("rewards: the weights must not sum to zero")
        names = [component.name for component in self.rewards]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"rewards: each grader at most once: {', '.join(duplicates)}")
        return self


class DpoMethod(BaseModel):
    """Direct preference optimisation (TRL's DPOTrainer) on preference rows (`prompt`/`chosen`/`rejected`, text or
    conversational, or OpenAI's `input`/`preferred_output`/`non_preferred_output`). The job's `learning_rate` and
    `num_epochs` apply; with LoRA the reference model is the base with the adapter disabled."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["dpo"]
    beta: Annotated[
        float, Field(gt=0.0, le=10.0, description="How far from the reference model the policy may move (DPO's beta).")
    ] = 0.1
    max_steps: Annotated[int | None, Field(ge=1, le=1_000_000, description="Stop after this many steps.")] = None


MethodConfig = Annotated[SftMethod | GrpoMethod | DpoMethod, Field(discriminator="type")]


class GrpoLimits(BaseSettings):
    """Server-side bounds on a GRPO method (env: EPOCHSCOPE_GRPO_MAX_NUM_GENERATIONS...)."""

    model_config = SettingsConfigDict(env_prefix="EPOCHSCOPE_GRPO_")

    max_num_generations: int = 16
    max_completion_length: int = 1024
    max_rollouts_per_step: int = 64


def grpo_limit_violations(
    method: SftMethod | GrpoMethod | DpoMethod, limits: GrpoLimits
) -> list[tuple[tuple[str, ...], str]]:
    """(field path, message) for every GRPO server limit the method exceeds; empty when it fits (or is not GRPO)."""
    if not isinstance(method, GrpoMethod):
        return []
    checks = [
        ("num_generations", method.num_generations, limits.max_num_generations),
        ("max_completion_length", method.max_completion_length, limits.max_completion_length),
    ]
    violations: list[tuple[tuple[str, ...], str]] = [
        (("method", field), f"must be at most {limit} (server limit)")
        for field, value, limit in checks
        if value > limit
    ]
    if method.rollouts.per_step > limits.max_rollouts_per_step:
        violations.append(
            (("method", "rollouts", "per_step"), f"must be at most {limits.max_rollouts_per_step} (server limit)")
        )
    return violations
