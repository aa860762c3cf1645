"""A job's checkpoints: the kept ones with their round metrics and which is best by the job's metric."""

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from epochscope_api.errors import CheckpointNotFound, JobNotFound
from epochscope_api.response_models import Checkpoint, CheckpointList, RoundSummary
from epochscope_schemas.checkpoints import round_metric

_COLUMNS = (
    "checkpoint_id, round_index, step, epoch, final, key, files, bytes, sha256, metrics, save_ms, stall_ms, occurred_at"
)


@dataclass(frozen=True)
class StoredCheckpoint:
    """Where a checkpoint's files are in the object store."""

    checkpoint_id: uuid.UUID
    round_index: int | None
    key: str
    files: list[dict[str, Any]]


def best_round(rounds: list[RoundSummary], metric: str) -> int | None:
    """The round with the highest `metric` (the earliest on a tie); None while no round has a value."""
    scored = [(value, r.round_index) for r in rounds if (value := round_metric(r.model_dump(), metric)) is not None]
    return min(scored, key=lambda pair: (-pair[0], pair[1]))[1] if scored else None


async def _metric_of(conn: asyncpg.Connection, job_id: uuid.UUID) -> str:
    """The job's checkpoint metric; JobNotFound unless the current user has the job."""
    metric = await conn.fetchval(
        "SELECT coalesce(config #>> '{predictions,checkpoints,metric}', 'validator_pass_rate') FROM jobs"
        " WHERE job_id = $1",
        job_id,
    )
    if metric is None:
        raise JobNotFound
    return metric


async def fetch_checkpoints(conn: asyncpg.Connection, job_id: uuid.UUID) -> CheckpointList:
    """The job's kept checkpoints in round order (the final weights last), the best marked."""
    metric = await _metric_of(conn, job_id)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM job_checkpoints WHERE job_id = $1 AND deleted_at IS NULL"
        " ORDER BY round_index NULLS LAST, occurred_at",
        job_id,
    )
    fields = [dict(row) | {"files": _json(row["files"]), "metrics": _json(row["metrics"])} for row in rows]
    scored = [(f["metrics"].get(metric), f["round_index"], f["checkpoint_id"]) for f in fields if not f["final"]]
    scored = [entry for entry in scored if entry[0] is not None]
    best = min(scored, key=lambda entry: (-entry[0], entry[1]))[2] if scored else None
    items = [Checkpoint(**{k: v for k, v in f.items() if k != "key"}, best=f["checkpoint_id"] == best) for f in fields]
    return CheckpointList(metric=metric, items=items, best_checkpoint_id=best)


async def fetch_stored_checkpoint(
    conn: asyncpg.Connection, job_id: uuid.UUID, checkpoint_id: uuid.UUID
) -> StoredCheckpoint:
    """A kept checkpoint's key and files; JobNotFound / CheckpointNotFound."""
    await _metric_of(conn, job_id)
    row = await conn.fetchrow(
        "SELECT checkpoint_id, round_index, key, files FROM job_checkpoints"
        " WHERE job_id = $1 AND checkpoint_id = $2 AND deleted_at IS NULL",
        job_id,
        checkpoint_id,
    )
    if row is None:
        raise CheckpointNotFound
    return StoredCheckpoint(row["checkpoint_id"], row["round_index"], row["key"], _json(row["files"]))


def _json(value: Any) -> Any:
    """A jsonb value, decoded by the pool's codec or not."""
    return json.loads(value) if isinstance(value, str) else value
