"""What a job keeps of its weights (`predictions.checkpoints`) and when it stops early (`predictions.stop_when`).

Both judge a round by one metric of its summary, read by `round_metric` the same way in the trainer (which
checkpoints to keep, when to stop) and in the API (which checkpoint is best). Where a checkpoint lives and its id
are built from ids (`checkpoint_key`, `checkpoint_id`), never taken from an event: the writer refuses an event
that names any other.
"""

import re
import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

METRIC_PATTERN = (
    r"^(validator_pass_rate|mean_exact_match|mean_f1|mean_rouge_l|grader_(pass_rate|mean):[A-Za-z0-9_.-]{1,64})$"
)
METRIC_DESCRIPTION = (
    "A round metric: validator_pass_rate, mean_exact_match, mean_f1, mean_rouge_l, grader_pass_rate:<grader name> "
    "or grader_mean:<grader name>. Higher is better."
)
Metric = Annotated[str, Field(pattern=METRIC_PATTERN, description=METRIC_DESCRIPTION)]


class CheckpointMode(StrEnum):
    NONE = "none"
    EVERY_ROUND = "every_round"
    BEST = "best"


class CheckpointsConfig(BaseModel):
    """Which rounds' weights are kept in the object store. With any mode but `none` the final weights of a
    completed job are kept too, whatever the pruning."""

    model_config = ConfigDict(extra="forbid", strict=True)

    mode: Annotated[CheckpointMode, Field(strict=False)] = CheckpointMode.NONE
    metric: Metric = "validator_pass_rate"
    keep: Annotated[int, Field(ge=1, le=100, description="For mode best: how many rounds' checkpoints to keep.")] = 1


class StopWhen(BaseModel):
    """End training early, judged on the rounds' answers: when `metric` >= `threshold` for `rounds` rounds in a
    row (give threshold), or when it has not improved for `patience` rounds (give patience)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    metric: Metric
    threshold: Annotated[float | None, Field(ge=0.0, le=1.0)] = None
    rounds: Annotated[int, Field(ge=1, le=1000, description="Consecutive rounds at or above the threshold.")] = 1
    patience: Annotated[int | None, Field(ge=1, le=1000, description="Rounds without improvement.")] = None

    @model_validator(mode="after")
    def _one_rule(self) -> "StopWhen":
        if (self.threshold is None) == (self.patience is None):
            raise ValueError("give exactly one of threshold and patience")
        return self


def round_metric(summary: Mapping[str, Any], metric: str) -> float | None:
    """The metric of one round summary (a RoundSummaryEvent's or the API's fields); None where it has no value."""
    if metric == "validator_pass_rate":
        validated = summary.get("validated") or 0
        return summary.get("valid", 0) / validated if validated else None
    if metric in ("mean_exact_match", "mean_f1", "mean_rouge_l"):
        return summary.get(metric)
    match = re.fullmatch(r"grader_(pass_rate|mean):(.+)", metric)
    if match is None:
        return None
    grader = (summary.get("graders") or {}).get(match.group(2))
    if grader is None:
        return None
    grader = grader if isinstance(grader, Mapping) else grader.model_dump()
    if match.group(1) == "mean":
        return grader.get("mean_score")
    return grader["passed"] / grader["graded"] if grader.get("graded") else None


def metric_label(metric: str) -> str:
    """A metric's name for people: 'validator pass rate', 'grader exact pass rate'."""
    return metric.replace("_", " ").replace(":", " ")


def checkpoint_name(round_index: int | None) -> str:
    """`round-<index>` for a round's weights, `final` for the weights at the end of training."""
    return "final" if round_index is None else f"round-{round_index}"


def checkpoint_key(job_id: uuid.UUID, round_index: int | None) -> str:
    """A checkpoint's key prefix in the object store: under its job's own prefix, which the API deletes with it."""
    return f"jobs/{job_id}/checkpoints/{checkpoint_name(round_index)}"


def checkpoint_id(job_id: uuid.UUID, round_index: int | None) -> uuid.UUID:
    """The same id on every redelivery, and one no other job's checkpoint can take."""
    return uuid.uuid5(job_id, f"checkpoint/{checkpoint_name(round_index)}")
