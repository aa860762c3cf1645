"""Job tokens only where and as long as needed, on the real local stack: the outbox keeps no token once a start
event is published, published rows go after their retention, a cancel is signed with the job's token, and
deleting a job removes its stored objects (not the user's datasets) and its trainer folder."""

import asyncio
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from api_rows import admin_fixture, auth  # noqa: F401  fixture
from tiny_model import TINY_MODEL_ID
from uploads import chat_rows, upload

from epochscope_api.data.outbox import delete_published
from epochscope_api.jobs.objects import job_objects_prefix
from epochscope_api.service_layer.queue import job_token
from epochscope_runtime.command_signing import verify_command
from epochscope_runtime.job_token import verify_job_token
from epochscope_schemas.events import JobCancelEvent, JobStartEvent, parse_event
from epochscope_schemas.topics import JOB_COMMANDS

pytestmark = pytest.mark.stack


async def commands_for(full_stack: Any, job_id: str, count: int, timeout: float = 30) -> list[Any]:
    """The first `count` commands on jobs.commands keyed by `job_id`, parsed."""
    consumer = AIOKafkaConsumer(
        JOB_COMMANDS, bootstrap_servers=full_stack.broker.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [parse_event(r.value) for r in records if r.key == job_id.encode()]
    finally:
        await consumer.stop()
    return found


async def published_payload(admin: asyncpg.Connection, job_id: str, kind: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for row in await admin.fetch("SELECT payload, published_at FROM outbox WHERE key = $1", job_id):
            payload = json.loads(row["payload"])
            if payload["type"] == kind and row["published_at"] is not None:
                return payload
        await asyncio.sleep(0.2)
    raise AssertionError(f"no published {kind} of job {job_id}")


async def test_tokens_leave_the_outbox_cancels_are_signed_and_deleting_a_job_removes_its_objects(
    full_stack: Any, admin: asyncpg.Connection
) -> None:
    user = f"holder-{uuid.uuid4()}"
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        dataset = await upload(client, full_stack.mint_token(user), "train.jsonl", chat_rows(200))
        config = {"model": TINY_MODEL_ID, "dataset_id": dataset["dataset_id"], "num_epochs": 100}  # cancelled
        created = await client.post("/v1/jobs", json=config, headers=auth(full_stack, user))
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        start = await published_payload(admin, job_id, "job.start")
        assert start.get("job_token") is None and "sealed_job_token" not in start  # published: no token left in
        assert start["job_id"] == job_id  # the table, sealed or not
        (start_event,) = await commands_for(full_stack, job_id, 1)
        assert isinstance(start_event, JobStartEvent) and start_event.job_token is None  # never in the clear
        expires_at = await admin.fetchval("SELECT token_expires_at FROM jobs WHERE job_id = $1", uuid.UUID(job_id))
        secret = full_stack.env["EPOCHSCOPE_JOB_TOKEN_SECRET"]
        token = job_token(secret, start_event.job_id, user, expires_at, start_event.attempt_id)  # as the API has it
        assert verify_job_token(secret, token, start_event.job_id).user_id == user
        assert start_event.sealed_job_token and token not in start_event.model_dump_json()  # sealed for its trainer
        sealed_for = await admin.fetchval(
            "SELECT sealing_key FROM trainers WHERE trainer_id = $1", start_event.trainer_id
        )
        assert sealed_for  # the key from the trainer's heartbeat, which only that trainer can open with
        job_dir = full_stack.data_dir / "trainer" / job_id
        deadline = time.monotonic() + 120
        while not job_dir.exists():  # the trainer runs it: the delete below cancels a running job
            assert time.monotonic() < deadline, "the trainer never started the job"
            await asyncio.sleep(0.2)

        prefix = full_stack.object_store_dir / job_objects_prefix(uuid.UUID(job_id))
        for name in ("checkpoint-1/weights.bin", "checkpoint-1/config.json", "metrics.json"):
            (prefix / name).parent.mkdir(parents=True, exist_ok=True)
            (prefix / name).write_bytes(b"{}")
        assert (await client.delete(f"/v1/jobs/{job_id}", headers=auth(full_stack, user))).status_code == 204
        assert [p for p in prefix.rglob("*") if p.is_file()] == []  # (a folder store keeps empty folders)
        dataset_url = f"/v1/datasets/{dataset['dataset_id']}"
        assert (await client.get(dataset_url, headers=auth(full_stack, user))).status_code == 200  # the user's

    _, cancel = await commands_for(full_stack, job_id, 2)
    assert isinstance(cancel, JobCancelEvent) and cancel.job_token is None
    assert verify_command(cancel, token)  # signed with the job's token, which it does not carry
    assert await admin.fetchval("SELECT count(*) FROM jobs WHERE job_id = $1", uuid.UUID(job_id)) == 0
    deadline = time.monotonic() + 60
    while job_dir.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not job_dir.exists()  # cancelled and removed


async def test_published_rows_past_their_retention_are_deleted_by_the_api_role(
    full_stack: Any, admin: asyncpg.Connection
) -> None:
    old, recent = str(uuid.uuid4()), str(uuid.uuid4())
    for key, age in ((old, timedelta(days=8)), (recent, timedelta(days=1))):
        await admin.execute(
            "INSERT INTO outbox (topic, key, payload, published_at) VALUES ($1, $2, '{}', now() - $3::interval)",
            JOB_COMMANDS,
            key,
            age,
        )
    api = await asyncpg.connect(full_stack.api_database_url)
    try:
        assert await delete_published(api, timedelta(days=7)) >= 1
    finally:
        await api.close()
    remaining = await admin.fetch("SELECT key FROM outbox WHERE key = ANY($1::text[])", [old, recent])
    assert [row["key"] for row in remaining] == [recent]
