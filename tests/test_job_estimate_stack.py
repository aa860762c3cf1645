"""The whole-job estimate and a running job's estimated finish on the real API (its own stack: Postgres and the
broker, no writer, no trainer; the running job's rows are inserted as the writer stores them): the training figures
from the upload's stored token counts, a GRPO job generating past the per-job limit refused naming the field."""

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from api_rows import insert_job, insert_progress
from own_stack import own_stack
from tiny_model import TINY_MODEL_ID
from uploads import chat_rows, upload

from epochscope.local_stack import LocalStack
from epochscope_runtime.catalog import DEFAULT_TRAIN_TOKENS_PER_SECOND

pytestmark = pytest.mark.stack

MAX_GENERATED = 10_000


@pytest.fixture(scope="module")
def estimate_stack(tiny_model_dir: Path) -> Iterator[LocalStack]:
    env = {"EPOCHSCOPE_JOB_MAX_GENERATED_TOKENS": str(MAX_GENERATED)}
    with own_stack("epochscope-estimate-", tiny_model_dir, env, writers=0, trainers=0) as stack:
        yield stack


@pytest.fixture
async def admin(estimate_stack: LocalStack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(estimate_stack.postgres.admin_url)
    yield conn
    await conn.close()


def config(dataset_id: str, **fields: Any) -> dict[str, Any]:
    predictions = {"enabled": True, "sample_count": 3, "max_new_tokens": 16, "baseline_round": True}
    base = {"model": TINY_MODEL_ID, "dataset_id": dataset_id, "num_epochs": 2, "batch_size": 4, "max_length": 256}
    return base | {"predictions": predictions} | fields


async def test_the_estimate_trains_the_stored_token_counts_times_the_epochs(estimate_stack: LocalStack) -> None:
    user = f"estimate-{uuid.uuid4()}"
    headers = {"Authorization": f"Bearer {estimate_stack.mint_token(user)}"}
    async with httpx.AsyncClient(base_url=estimate_stack.api_url, timeout=60, headers=headers) as client:
        dataset = await upload(client, estimate_stack.mint_token(user), "train.jsonl", chat_rows(8))
        response = await client.post("/v1/predictions/estimate", json={"config": config(dataset["dataset_id"])})
        assert response.status_code == 200, response.text
        estimate = response.json()
    stored = dataset["report"]["tokens"][TINY_MODEL_ID]
    assert stored["max_prompt_tokens"] + stored["max_completion_tokens"] < 256  # no row cut at max_length
    training = estimate["training"]
    # 8 rows of 4 a step, 2 epochs; every row's prompt and answer as the upload counted them, twice.
    assert (training["method"], training["steps"], training["token_basis"]) == ("sft", 4, "dataset")
    assert training["train_tokens"] == 2 * (stored["prompt_tokens"] + stored["completion_tokens"])
    assert training["train_tokens_per_second"] == DEFAULT_TRAIN_TOKENS_PER_SECOND  # the tiny catalog sets none
    assert training["seconds"] == round(training["train_tokens"] / DEFAULT_TRAIN_TOKENS_PER_SECOND, 2)
    assert estimate["rounds"] == 3  # the baseline and one per epoch
    assert estimate["total_seconds"] == pytest.approx(training["seconds"] + estimate["seconds"], abs=0.01)
    # (the share is of the unrounded seconds)
    assert estimate["predictions_share"] == pytest.approx(estimate["seconds"] / estimate["total_seconds"], abs=0.01)


async def test_a_grpo_job_generating_past_the_limit_is_a_422_naming_the_field(estimate_stack: LocalStack) -> None:
    user = f"estimate-{uuid.uuid4()}"
    headers = {"Authorization": f"Bearer {estimate_stack.mint_token(user)}"}
    grpo = {
        "type": "grpo",
        "rewards": [{"grader": {"type": "string_check", "name": "same"}}],
        "num_generations": 2,
        "max_completion_length": 1024,  # 2 prompts x 2 a step, 8 steps: 32,768 tokens
    }
    async with httpx.AsyncClient(base_url=estimate_stack.api_url, timeout=60, headers=headers) as client:
        dataset = await upload(client, estimate_stack.mint_token(user), "train.jsonl", chat_rows(8))
        body = config(dataset["dataset_id"], method=grpo)
        estimated = await client.post("/v1/predictions/estimate", json={"config": body})
        submitted = await client.post("/v1/jobs", json=body)
        within = await client.post(
            "/v1/predictions/estimate", json={"config": body | {"method": grpo | {"max_completion_length": 64}}}
        )
    for response in (estimated, submitted):
        assert response.status_code == 422, response.text
        errors = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
        message = errors[("body", "method", "max_completion_length")]
        assert "32768 by GRPO" in message and "EPOCHSCOPE_JOB_MAX_GENERATED_TOKENS" in message
    assert within.status_code == 200, within.text  # 2048 generated in training
    assert within.json()["training"]["generated_tokens"] == 8 * 4 * 64


async def test_a_running_job_has_an_estimated_finish_at_its_pace(
    estimate_stack: LocalStack, admin: asyncpg.Connection
) -> None:
    user = f"estimate-{uuid.uuid4()}"
    running, completed = await insert_job(admin, user), await insert_job(admin, user, status="completed")
    for job_id in (running, completed):
        await admin.execute("UPDATE jobs SET started_at = now() - interval '30 seconds' WHERE job_id = $1", job_id)
        await insert_progress(admin, job_id, user, range(10))  # step 9 of 100 now: 30 s / 9 steps, 91 steps left
    headers = {"Authorization": f"Bearer {estimate_stack.mint_token(user)}"}
    async with httpx.AsyncClient(base_url=estimate_stack.api_url, timeout=60, headers=headers) as client:
        job = (await client.get(f"/v1/jobs/{running}")).json()
        done = (await client.get(f"/v1/jobs/{completed}")).json()
        listed = {item["job_id"]: item for item in (await client.get("/v1/jobs")).json()["items"]}
    now = datetime.now(UTC)
    finish = datetime.fromisoformat(job["estimated_finish"])
    expected = datetime.fromisoformat(job["progress"]["occurred_at"]) + timedelta(seconds=30 / 9 * 91)
    assert now < finish and abs((finish - expected).total_seconds()) < 5
    assert listed[str(running)]["estimated_finish"] is not None
    assert done["estimated_finish"] is None and listed[str(completed)]["estimated_finish"] is None
