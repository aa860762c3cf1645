"""Jobs and predictions inserted straight into Postgres as the administrator, for the read-side benchmarks."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

# The columns of the rows the benchmarks build, in order; `grades` only where a benchmark grades.
PREDICTION_COLUMNS = (
    *("job_id", "step", "sample_id", "owner_id", "round_index", "epoch", "sample_index", "prompt"),
    *("ground_truth", "prediction", "tokens_generated", "latency_ms", "valid", "validation_error"),
    *("exact_match", "f1", "rouge_l"),
)


async def insert_completed_job(conn: asyncpg.Connection, job_id: uuid.UUID, owner: str, config: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO jobs (job_id, owner_id, config, status, token_expires_at) VALUES ($1, $2, $3, 'completed', $4)",
        job_id,
        owner,
        json.dumps(config),
        datetime.now(UTC) + timedelta(days=1),
    )
