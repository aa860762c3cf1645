"""End to end on the real stack: a dataset row with a 1.2 MB completion and a validator with a catastrophic pattern.

The job completes with the huge ground truth cut and flagged (its events within the broker's message size), its
validator's pattern (which would backtrack for ever in Python's re on such a string; tests/test_linear_regex.py times
it on one) checks every answer, and another user's job submitted after it runs too: nothing jams the trainer.
"""

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from tiny_model import TINY_MODEL_ID
from uploads import chat_rows, upload

pytestmark = pytest.mark.stack

JOB_TIMEOUT_S = 300
HUGE_ANSWER = "a" * 1_200_000 + "!"


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hostile_rows() -> bytes:
    huge = {
        "messages": [{"role": "user", "content": "Say a lot of a's."}, {"role": "assistant", "content": HUGE_ANSWER}]
    }
    return (json.dumps(huge) + "\n").encode() + chat_rows(3)


def config(dataset_id: str, **predictions: Any) -> dict[str, Any]:
    return {
        "model": TINY_MODEL_ID,
        "dataset_id": dataset_id,
        "num_epochs": 1,
        "batch_size": 4,
        "max_length": 64,
        "predictions": {"enabled": True, "sample_count": 4, "max_new_tokens": 4} | predictions,
    }


async def run_job(client: httpx.AsyncClient, token: str, body: dict[str, Any]) -> dict[str, Any]:
    created = await client.post("/v1/jobs", json=body, headers=headers(token))
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (job := (await client.get(f"/v1/jobs/{created.json()['job_id']}", headers=headers(token))).json())[
        "status"
    ] not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.5)
    return job


async def test_a_huge_row_and_a_catastrophic_pattern_neither_jam_the_trainer_nor_the_next_users_job(
    full_stack: Any,
) -> None:
    hostile, next_user = f"hostile-{uuid.uuid4()}", f"next-{uuid.uuid4()}"
    token = full_stack.mint_token(hostile)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60) as client:
        dataset = await upload(client, token, "hostile.jsonl", hostile_rows())
        assert dataset["usable_rows"] == 4
        validators = [{"kind": "json_schema", "json_schema": {"type": "string", "pattern": "^(a+)+$"}}]
        job = await run_job(client, token, config(dataset["dataset_id"], validators=validators))
        assert job["status"] == "completed", job
        rows = (await client.get(f"/v1/jobs/{job['job_id']}/predictions", headers=headers(token))).json()["items"]
        huge = [row for row in rows if row["sample_id"] == "row-000000"]
        assert huge and all("ground_truth" in row["truncated"] for row in huge)
        assert all(len(row["ground_truth"].encode()) <= 64 * 1024 for row in huge)
        assert all(row["valid"] is False for row in rows)  # the answers are no JSON strings: checked, not stuck

        next_token = full_stack.mint_token(next_user)
        other = await upload(client, next_token, "train.jsonl", chat_rows())
        assert (await run_job(client, next_token, config(other["dataset_id"])))["status"] == "completed"
