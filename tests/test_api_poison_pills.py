"""One oversized request or outbox row never stalls other users' work (the real local stack)."""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from tiny_model import TINY_MODEL_ID
from uploads import chat_rows, upload

from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import DatasetObject, JobInputs, JobStartEvent, ModelSource, encode_event
from epochscope_schemas.topics import JOB_COMMANDS

pytestmark = pytest.mark.stack


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def config_with_schema(dataset_id: str, schema_bytes: int) -> dict[str, Any]:
    schema = {"type": "object", "description": "x" * schema_bytes}
    return {
        "model": TINY_MODEL_ID,
        "dataset_id": dataset_id,
        "num_epochs": 1,
        "batch_size": 4,
        "max_length": 64,
        "predictions": {"enabled": True, "sample_count": 1, "max_new_tokens": 2,
                        "validators": [{"kind": "json_schema", "json_schema": schema}]},
    }  # fmt: skip


async def test_an_oversized_body_is_a_413_and_an_oversized_field_a_422_with_the_limit(full_stack: Any) -> None:
    token = full_stack.mint_token("big-bodies")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        dataset_id = (await upload(client, token, "train.jsonl", chat_rows()))["dataset_id"]
        huge = await client.post("/v1/jobs", json=config_with_schema(dataset_id, 1_100_000), headers=headers(token))
        assert huge.status_code == 413, huge.text
        assert huge.json()["detail"] == "the request body exceeds the limit of 262144 bytes"
        large = await client.post("/v1/jobs", json=config_with_schema(dataset_id, 100_000), headers=headers(token))
        assert large.status_code == 422, large.text
        (error,) = large.json()["detail"]
        assert error["loc"] == ["body", "predictions", "validators", 0, "json_schema"]
        assert "at most 65536 bytes" in error["msg"]

        async def chunks() -> Any:  # no Content-Length: the limit holds for a streamed body too
            for _ in range(40):
                yield b" " * 10_000

        streamed = await client.post(
            "/v1/jobs", content=chunks(), headers=headers(token) | {"content-type": "application/json"}
        )
        assert streamed.status_code == 413, streamed.text


async def test_an_outbox_row_the_broker_refuses_is_set_aside_and_the_next_users_job_starts(full_stack: Any) -> None:
    """A start event over the broker's message size (as one got in before bodies were bounded) fails its job with
    the reason; another user's job submitted after it starts, and /readyz stays ready."""
    admin = await asyncpg.connect(full_stack.postgres.admin_url)
    attacker, victim = f"attacker-{uuid.uuid4()}", f"victim-{uuid.uuid4()}"
    poison = JobStartEvent(
        job_id=uuid.uuid4(),
        user_id=attacker,
        config=JobConfig.model_validate(config_with_schema(str(uuid.uuid4()), 1_200_000)),
        inputs=JobInputs(
            model=ModelSource(id=TINY_MODEL_ID, source="dir:/nowhere"),
            train=DatasetObject(dataset_id=uuid.uuid4(), key="datasets/x/y.jsonl", file_type="jsonl",
                                row_format="chat", sha256="0" * 64, bytes=1),
        ),
    )  # fmt: skip
    try:
        async with admin.transaction():
            await admin.execute(
                "INSERT INTO jobs (job_id, owner_id, config, token_expires_at) VALUES ($1, $2, $3, $4)",
                poison.job_id,
                attacker,
                poison.config.model_dump_json(),
                datetime.now(UTC) + timedelta(hours=1),
            )
            await admin.execute(
                "INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)",
                JOB_COMMANDS,
                str(poison.job_id),
                encode_event(poison).decode(),
            )
            await admin.execute("NOTIFY outbox")
        token = full_stack.mint_token(victim)
        async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
            dataset_id = (await upload(client, token, "train.jsonl", chat_rows()))["dataset_id"]
            created = await client.post("/v1/jobs", json=config_with_schema(dataset_id, 10), headers=headers(token))
            assert created.status_code == 201, created.text
            deadline = time.monotonic() + 60
            while (job := (await client.get(f"/v1/jobs/{created.json()['job_id']}", headers=headers(token))).json())[
                "status"
            ] == "queued":
                assert time.monotonic() < deadline, "the next user's job never left the queue"
                await asyncio.sleep(0.5)
            assert (await client.get("/readyz")).status_code == 200
        row = await admin.fetchrow("SELECT status, status_message FROM jobs WHERE job_id = $1", poison.job_id)
        assert row["status"] == "failed"
        assert "the event bus refused the job's start event" in row["status_message"]
        assert "MessageSizeTooLargeError" in row["status_message"]
        reason = await admin.fetchval("SELECT set_aside_reason FROM outbox WHERE key = $1", str(poison.job_id))
        assert reason == row["status_message"]
        assert job["status"] in ("running", "completed"), job
    finally:
        await admin.close()
