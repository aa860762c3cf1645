"""OpenAI's `method.reinforcement` onto Epochscope's GRPO method: the grader becomes the rewards (each translated
grader with its weight), and the same graders grade the job's prediction rounds.

The hyperparameters, one by one:
- `n_epochs`, `batch_size`, `learning_rate_multiplier`: mapped by the jobs mapping, as for every method (not here).
- `compute_multiplier`: mapped onto `num_generations`, the completions sampled per prompt (the compute spent
  exploring): round(4 x multiplier), at least 2; "auto" keeps 4. The server's GRPO limits apply at submission.
- `eval_interval`, `eval_samples`: checked, then ignored: prediction rounds are what Epochscope evaluates with, and
  the job's predictions config says when (its trigger) and on how many samples.
- `reasoning_effort`: checked, then ignored: the catalog's models have no reasoning-effort setting.
Any other key is refused (a 400 naming it), as is a grader Epochscope does not run.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from epochscope_api.openai_compat.errors import OpenAIError
from epochscope_api.openai_compat.graders import translate_grader
from epochscope_schemas.graders import GraderConfig
from epochscope_schemas.methods import GrpoMethod, RewardComponent

PARAM = "method.reinforcement"
DEFAULT_GENERATIONS = GrpoMethod.model_fields["num_generations"].default

_Auto = Literal["auto"]
_Interval = Annotated[int, Field(ge=1, le=1_000_000, strict=True)]


class _Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_epochs: Any = None  # the jobs mapping's, as for every method
    batch_size: Any = None
    learning_rate_multiplier: Any = None
    compute_multiplier: _Auto | Annotated[float, Field(gt=0.0, le=10.0, strict=True)] | None = None
    eval_interval: _Auto | _Interval | None = None
    eval_samples: _Auto | _Interval | None = None
    reasoning_effort: Literal["default", "low", "medium", "high"] | None = None


class _Reinforcement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grader: Any
    hyperparameters: _Hyperparameters | None = None


def reinforcement_job_parts(reinforcement: dict[str, Any]) -> tuple[GrpoMethod, list[GraderConfig]]:
    """(the GRPO method, the graders the job's prediction rounds grade with) for OpenAI's `method.reinforcement`;
    an OpenAIError (400) naming the param at fault otherwise."""
    try:
        parsed = _Reinforcement.model_validate(reinforcement)
    except ValidationError as exc:
        field = exc.errors()[0]["loc"][:2]  # the field, not the union member that failed
        reasons = dict.fromkeys(error["msg"] for error in exc.errors() if error["loc"][:2] == field)
        param = ".".join([PARAM, *(str(part) for part in field)])
        raise OpenAIError(400, f"{param}: {' or '.join(reasons)}", param=param) from None
    translated = translate_grader(parsed.grader, param=f"{PARAM}.grader")
    multiplier = (parsed.hyperparameters or _Hyperparameters()).compute_multiplier
    generations = (
        DEFAULT_GENERATIONS if multiplier in (None, "auto") else max(2, round(DEFAULT_GENERATIONS * multiplier))
    )
    method = GrpoMethod(
        type="grpo",
        rewards=[RewardComponent(grader=config, weight=weight) for config, weight in translated.components],
        num_generations=generations,
    )
    return method, translated.graders
