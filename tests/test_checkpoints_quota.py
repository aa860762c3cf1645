"""The per-user checkpoint quota on the real stack (tiny model): a job is allowed what is left of its owner's quota
when it is submitted, its trainer keeps no checkpoint past it (a `checkpoint_quota` warning, the job completes),
and a job that keeps checkpoints is refused (429) once the owner's checkpoints fill the quota.

The shared stack's quota is the default (50 GiB): the owner's earlier checkpoints are one row, inserted as the
administrator, of all but ALLOWANCE bytes of it.
"""

import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
from api_rows import admin_fixture, insert_job  # noqa: F401  (admin: a fixture)
from test_checkpoints_end_to_end import checkpoints_of, run_job
from test_end_to_end import headers, job_config, uploaded

from epochscope_api.data.quotas import checkpoint_bytes_left
from epochscope_api.settings import ApiSettings

pytestmark = pytest.mark.stack

QUOTA = ApiSettings.model_fields["quota_checkpoint_bytes"].default
ALLOWANCE = 350_000  # room for two of the tiny model's full fine-tuning checkpoints (about 140 KiB each)


async def earlier_checkpoints(admin: asyncpg.Connection, owner: str, size: int) -> uuid.UUID:
    """A checkpoint row of `size` bytes of an earlier job of `owner` (no objects behind it)."""
    job_id = await insert_job(admin, owner, status="completed")
    checkpoint_id = uuid.uuid4()
    await admin.execute(
        "INSERT INTO job_checkpoints (checkpoint_id, job_id, owner_id, round_index, step, epoch, final, key, files,"
        " bytes, sha256, metrics, save_ms, stall_ms, upload_ms, occurred_at)"
        " VALUES ($1, $2, $3, NULL, 1, 1, true, 'jobs/earlier', '[]', $4, 'x', '{}', 0, 0, 0, $5)",
        checkpoint_id,
        job_id,
        owner,
        size,
        datetime.now(UTC),
    )
    return checkpoint_id


async def test_checkpoints_past_the_allowance_are_warnings_and_a_full_quota_refuses_the_next_job(
    full_stack: Any, admin: asyncpg.Connection
) -> None:
    owner = f"quota-{uuid.uuid4().hex[:8]}"
    earlier = await earlier_checkpoints(admin, owner, QUOTA - ALLOWANCE)
    quota = SimpleNamespace(quota_checkpoint_bytes=QUOTA, quota_retry_after_seconds=60)
    left = await checkpoint_bytes_left(admin, owner, quota)  # type: ignore[arg-type]
    assert type(left) is int and left == ALLOWANCE  # the start event's integer (a Decimal was serialized as a string)
    dataset = await uploaded(full_stack, owner)
    job = await run_job(full_stack, owner, dataset, {"predictions": {"checkpoints": {"mode": "every_round"}}})
    assert job["status"] == "completed", job
    kept = (await checkpoints_of(full_stack, owner, job["job_id"]))["items"]
    refused = [w for w in job["warnings"] if w["code"] == "checkpoint_quota"]
    assert kept and refused and len(kept) + len(refused) == 4, job["warnings"]  # rounds 0-2 and the final weights
    assert [w["code"] for w in job["warnings"]] == ["checkpoint_quota"] * len(refused)
    assert sum(c["bytes"] for c in kept) <= ALLOWANCE
    assert f"over the {ALLOWANCE} bytes left of the owner's checkpoint quota" in refused[0]["message"]
    store = Path(full_stack.object_store_dir) / "jobs" / job["job_id"] / "checkpoints"
    names = {"final" if c["final"] else f"round-{c['round_index']}" for c in kept}
    assert {p.name for p in store.iterdir() if any(p.iterdir())} == names

    await admin.execute("UPDATE job_checkpoints SET bytes = $2 WHERE checkpoint_id = $1", earlier, QUOTA)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        token = headers(full_stack.mint_token(owner))
        config = job_config(dataset, {"enabled": True, "checkpoints": {"mode": "best", "metric": "mean_f1"}})
        response = await client.post("/v1/jobs", json=config, headers=token)
        assert response.status_code == 429, response.text
        assert response.json()["limit"] == "checkpoint_bytes"
        limits = (await client.get("/v1/limits", headers=token)).json()
    assert limits["quota_checkpoint_bytes"] == QUOTA
