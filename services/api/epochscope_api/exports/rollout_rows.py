"""What a GRPO rollouts export looks like: JSONL lines are the API's rollout rows (as GET /v1/jobs/{id}/rollouts
returns them) with `job_id` and `job_name`; CSV and Parquet are flat, each reward component a `reward.<name>` column
(null where it did not grade the completion) beside the total `reward` and the `advantage`."""

import json
from dataclasses import dataclass
from typing import Any

import asyncpg
import pyarrow as pa

from epochscope_api.response_models import Rollout
from epochscope_schemas.config import JobConfig
from epochscope_schemas.methods import GrpoMethod

_TEXT = pa.string()
BASE_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("job_id", _TEXT),
    ("job_name", _TEXT),
    ("step", pa.int32()),
    ("completion_index", pa.int32()),
    ("prompt", _TEXT),
    ("completion", _TEXT),
    ("reward", pa.float64()),
    ("advantage", pa.float64()),
    ("truncated", _TEXT),
    ("occurred_at", pa.timestamp("us", tz="UTC")),
]


def reward_names(config: Any) -> list[str]:
    """A job config's reward components, in order (none for a job of another method)."""
    method = JobConfig.model_validate(config).method
    if not isinstance(method, GrpoMethod):
        return []
    return [c.grader if isinstance(c.grader, str) else c.grader.name for c in method.rewards]


@dataclass(frozen=True)
class RolloutRows:
    """Rollouts, with a column per reward component."""

    components: list[str]

    def columns(self) -> list[tuple[str, pa.DataType]]:
        return BASE_COLUMNS + [(f"reward.{name}", pa.float64()) for name in self.components]

    def flat_row(self, row: asyncpg.Record) -> list[Any]:
        values = [str(row["job_id"]), *(row[name] for name, _ in BASE_COLUMNS[1:8])]
        values += [json.dumps(row["truncated"]), row["occurred_at"]]
        rewards = row["rewards"] or {}
        return values + [rewards.get(name) for name in self.components]

    def json_object(self, row: asyncpg.Record) -> dict[str, Any]:
        fields = Rollout.model_validate({name: row[name] for name in Rollout.model_fields}).model_dump(mode="json")
        return {"job_id": str(row["job_id"]), "job_name": row["job_name"]} | fields

    def text_length(self, row: asyncpg.Record) -> int:
        return len(row["prompt"]) + len(row["completion"])
