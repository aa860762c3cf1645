"""Per-user quotas on a dedicated local stack with small ones: active jobs, datasets, dataset bytes, write rate,
stored predictions, stored GRPO rollouts.

Beyond each: a 429 with Retry-After and `limit` naming it, nothing stored, and another user unaffected. The stack
has no writer and no trainer: created jobs stay queued, which is what the active-jobs quota counts.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from api_rows import insert_job, insert_round
from own_stack import own_stack
from test_api_rollouts import PER_STEP, STEPS, insert_rollouts
from tiny_model import TINY_MODEL_ID
from uploads import chat_rows, upload

from epochscope.local_stack import LocalStack

pytestmark = pytest.mark.stack

ACTIVE_JOBS, DATASETS, DATASET_BYTES, WRITES_PER_MINUTE, RETRY_AFTER = 3, 3, 8000, 12, 45
PREDICTION_BYTES = 400
ROLLOUT_BYTES = 40 * STEPS * PER_STEP  # a stored rollout here is 36 bytes (prompt, completion, rewards' JSON text)


@pytest.fixture(scope="module")
def quota_stack(tiny_model_dir: Path) -> Iterator[LocalStack]:
    env = {
        "EPOCHSCOPE_QUOTA_ACTIVE_JOBS": str(ACTIVE_JOBS),
        "EPOCHSCOPE_QUOTA_DATASETS": str(DATASETS),
        "EPOCHSCOPE_QUOTA_DATASET_BYTES": str(DATASET_BYTES),
        "EPOCHSCOPE_QUOTA_WRITES_PER_MINUTE": str(WRITES_PER_MINUTE),
        "EPOCHSCOPE_QUOTA_RETRY_AFTER_SECONDS": str(RETRY_AFTER),
        "EPOCHSCOPE_QUOTA_PREDICTION_BYTES": str(PREDICTION_BYTES),
        "EPOCHSCOPE_QUOTA_ROLLOUT_BYTES": str(ROLLOUT_BYTES),
        "EPOCHSCOPE_OUTBOX_POLL_SECONDS": "0.5",
    }
    with own_stack("epochscope-quotas-", tiny_model_dir, env, writers=0, trainers=0) as stack:
        yield stack


@pytest.fixture
async def client(quota_stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=quota_stack.api_url, timeout=60) as client:
        yield client


@pytest.fixture
async def admin(quota_stack: LocalStack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(quota_stack.postgres.admin_url)
    yield conn
    await conn.close()


def user() -> str:
    return f"quota-{uuid.uuid4()}"


def assert_quota(response: httpx.Response, limit: str, retry_after: int | None = RETRY_AFTER) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["limit"] == limit
    assert response.json()["detail"].startswith("quota exceeded: at most ")
    assert int(response.headers["Retry-After"]) >= 1
    if retry_after is not None:
        assert int(response.headers["Retry-After"]) == retry_after


def jsonl_of_size(size: int) -> bytes:
    """Chat rows padded to exactly `size` bytes."""
    rows = chat_rows(4)
    return rows + b" " * (size - len(rows) - 1) + b"\n"


async def create_job(client: httpx.AsyncClient, token: str, dataset_id: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return await client.post("/v1/jobs", json={"model": TINY_MODEL_ID, "dataset_id": dataset_id}, headers=headers)


async def test_the_limits_endpoint_shows_the_quotas(quota_stack: LocalStack, client: httpx.AsyncClient) -> None:
    token = quota_stack.mint_token(user())
    limits = (await client.get("/v1/limits", headers={"Authorization": f"Bearer {token}"})).json()
    assert limits["quota_active_jobs"] == ACTIVE_JOBS and limits["quota_writes_per_minute"] == WRITES_PER_MINUTE


async def test_active_jobs_beyond_the_quota_are_a_429_and_not_stored(
    quota_stack: LocalStack, client: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    owner, other = user(), user()
    token = quota_stack.mint_token(owner)
    dataset_id = (await upload(client, token, "train.jsonl", chat_rows()))["dataset_id"]
    for _ in range(ACTIVE_JOBS):
        assert (await create_job(client, token, dataset_id)).status_code == 201
    assert_quota(await create_job(client, token, dataset_id), "active_jobs")
    assert await admin.fetchval("SELECT count(*) FROM jobs WHERE owner_id = $1", owner) == ACTIVE_JOBS
    assert await admin.fetchval("SELECT count(*) FROM job_queue WHERE owner_id = $1", owner) == ACTIVE_JOBS
    other_token = quota_stack.mint_token(other)
    other_dataset = (await upload(client, other_token, "train.jsonl", chat_rows()))["dataset_id"]
    assert (await create_job(client, other_token, other_dataset)).status_code == 201  # another user is unaffected
    # A job that ends frees its slot.
    await admin.execute(
        "UPDATE jobs SET status = 'completed' WHERE job_id = (SELECT job_id FROM jobs WHERE owner_id = $1 LIMIT 1)",
        owner,
    )
    assert (await create_job(client, token, dataset_id)).status_code == 201


async def test_concurrent_job_creation_never_passes_the_quota(
    quota_stack: LocalStack, client: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    owner = user()
    token = quota_stack.mint_token(owner)
    dataset_id = (await upload(client, token, "train.jsonl", chat_rows()))["dataset_id"]
    responses = await asyncio.gather(*(create_job(client, token, dataset_id) for _ in range(ACTIVE_JOBS + 4)))
    codes = sorted(response.status_code for response in responses)
    assert codes == [201] * ACTIVE_JOBS + [429] * 4, [response.text for response in responses]
    assert await admin.fetchval("SELECT count(*) FROM jobs WHERE owner_id = $1", owner) == ACTIVE_JOBS


async def test_datasets_beyond_the_quota_are_a_429_and_not_stored(
    quota_stack: LocalStack, client: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    owner = user()
    token = quota_stack.mint_token(owner)
    for i in range(DATASETS):
        await upload(client, token, f"d{i}.jsonl", chat_rows())
    response = await client.post(
        "/v1/datasets",
        files={"file": ("more.jsonl", chat_rows(), "application/octet-stream")},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_quota(response, "datasets")
    assert await admin.fetchval("SELECT count(*) FROM datasets WHERE owner_id = $1", owner) == DATASETS
    await upload(client, quota_stack.mint_token(user()), "d.jsonl", chat_rows())  # another user is unaffected


def store_files(stack: LocalStack) -> set[str]:
    root = Path(stack.env["EPOCHSCOPE_STORE_LOCAL_DIR"])
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


async def test_an_upload_past_the_bytes_quota_is_stopped_and_nothing_is_kept(
    quota_stack: LocalStack, client: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    owner = user()
    token = quota_stack.mint_token(owner)
    await upload(client, token, "big.jsonl", jsonl_of_size(DATASET_BYTES - 1000))
    before = store_files(quota_stack)
    response = await client.post(
        "/v1/datasets",
        files={"file": ("more.jsonl", jsonl_of_size(2000), "application/octet-stream")},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_quota(response, "dataset_bytes")
    assert "8000 bytes" in response.json()["detail"]
    assert store_files(quota_stack) == before
    assert await admin.fetchval("SELECT sum(bytes) FROM datasets WHERE owner_id = $1", owner) == DATASET_BYTES - 1000
    await upload(client, token, "fits.jsonl", jsonl_of_size(1000))  # exactly the rest still fits


async def test_concurrent_uploads_that_each_fit_but_not_together_store_only_one(
    quota_stack: LocalStack, client: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    owner = user()
    token = quota_stack.mint_token(owner)
    before = store_files(quota_stack)

    async def send(name: str) -> httpx.Response:
        files = {"file": (name, jsonl_of_size(DATASET_BYTES // 2 + 500), "application/octet-stream")}
        return await client.post("/v1/datasets", files=files, headers={"Authorization": f"Bearer {token}"})

    responses = await asyncio.gather(send("a.jsonl"), send("b.jsonl"))
    assert sorted(response.status_code for response in responses) == [201, 429]
    assert_quota(next(r for r in responses if r.status_code == 429), "dataset_bytes")
    assert await admin.fetchval("SELECT count(*) FROM datasets WHERE owner_id = $1", owner) == 1
    assert len(store_files(quota_stack) - before) == 2  # the one dataset's file and its index


async def test_writes_beyond_the_rate_are_a_429_with_the_wait_and_another_user_is_unaffected(
    quota_stack: LocalStack, client: httpx.AsyncClient
) -> None:
    token, other = quota_stack.mint_token(user()), quota_stack.mint_token(user())
    missing = f"/v1/jobs/{uuid.uuid4()}"  # a 404 still counts: it is a write request

    async def delete(bearer: str) -> httpx.Response:
        return await client.delete(missing, headers={"Authorization": f"Bearer {bearer}"})

    codes = [(await delete(token)).status_code for _ in range(WRITES_PER_MINUTE)]
    assert codes == [404] * WRITES_PER_MINUTE
    refused = await delete(token)
    assert_quota(refused, "writes_per_minute", retry_after=None)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 // WRITES_PER_MINUTE + 1
    cancel = await client.post(f"{missing}/cancel", headers={"Authorization": f"Bearer {token}"})
    assert_quota(cancel, "writes_per_minute", retry_after=None)
    assert (await delete(other)).status_code == 404  # another user has a bucket of their own
    listed = await client.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200  # reads are not rate limited
    await asyncio.sleep(int(refused.headers["Retry-After"]))
    assert (await delete(token)).status_code == 404  # a token came back after Retry-After


async def test_a_job_with_predictions_past_the_stored_predictions_quota_is_a_429(
    quota_stack: LocalStack, admin: asyncpg.Connection
) -> None:
    owner = user()
    token = quota_stack.mint_token(owner)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=quota_stack.api_url, timeout=60) as client:
        dataset = await upload(client, token, "train.jsonl", chat_rows())
        job = {"model": TINY_MODEL_ID, "dataset_id": dataset["dataset_id"], "predictions": {"enabled": True}}
        old_job = await insert_job(admin, owner, status="completed")
        await insert_round(admin, old_job, owner, step=0, samples=20)  # 12 or 13 bytes a row
        assert (await client.post("/v1/jobs", json=job, headers=headers)).status_code == 201  # about 250 bytes: under
        await insert_round(admin, old_job, owner, step=1, samples=20)
        refused = await client.post("/v1/jobs", json=job, headers=headers)
        assert_quota(refused, "prediction_bytes")
        assert "of stored predictions" in refused.json()["detail"]
        without = await client.post("/v1/jobs", json={**job, "predictions": {"enabled": False}}, headers=headers)
        assert without.status_code == 201, without.text  # a job that predicts nothing adds nothing
        other = quota_stack.mint_token(user())
        other_dataset = await upload(client, other, "train.jsonl", chat_rows())
        response = await client.post(
            "/v1/jobs",
            json={**job, "dataset_id": other_dataset["dataset_id"]},
            headers={"Authorization": f"Bearer {other}"},
        )
        assert response.status_code == 201, response.text


async def test_a_grpo_job_past_the_stored_rollouts_quota_is_a_429(
    quota_stack: LocalStack, admin: asyncpg.Connection
) -> None:
    owner = user()
    token = quota_stack.mint_token(owner)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=quota_stack.api_url, timeout=60) as client:
        dataset = await upload(client, token, "train.jsonl", chat_rows())
        sft = {"model": TINY_MODEL_ID, "dataset_id": dataset["dataset_id"], "batch_size": 4}
        grpo = sft | {
            "method": {
                "type": "grpo",
                "rewards": [{"grader": {"type": "json_parse", "name": "is_json"}}],
                "num_generations": 2,
            }
        }
        old_job = await insert_job(admin, owner, status="completed")
        await insert_rollouts(admin, old_job, owner)  # 9 rollouts: under the quota
        accepted = await client.post("/v1/jobs", json=grpo, headers=headers)
        assert accepted.status_code == 201, accepted.text
        await client.delete(f"/v1/jobs/{accepted.json()['job_id']}", headers=headers)  # out of the active jobs
        await insert_rollouts(admin, old_job, owner, range(STEPS + 1, 2 * STEPS + 1))  # 18: past it
        refused = await client.post("/v1/jobs", json=grpo, headers=headers)
        assert_quota(refused, "rollout_bytes")
        assert "of stored GRPO rollouts" in refused.json()["detail"]
        sft_job = await client.post("/v1/jobs", json=sft, headers=headers)
        assert sft_job.status_code == 201, sft_job.text  # a job that rolls nothing out adds nothing
