"""End to end on the real local stack: upload -> API -> Kafka -> trainer (tiny model, dataset from the object store)
-> Kafka -> writer -> Postgres."""

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from generated_client import api_module, generated_client
from tiny_model import TINY_MODEL_ID
from transformers import AutoTokenizer
from uploads import chat_rows, upload

from epochscope_runtime.job_token import verify_job_token
from epochscope_schemas.events import PredictionEvent, encode_event, parse_event
from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS, WRITERS_GROUP

pytestmark = pytest.mark.stack

JOB_TIMEOUT_S = 300


def job_config(dataset_id: str, predictions: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": TINY_MODEL_ID,
        "dataset_id": dataset_id,
        "num_epochs": 2,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "max_length": 64,
        "predictions": predictions,
    }


async def uploaded(full_stack: Any, user: str) -> str:
    """The id of `user`'s upload of the eight-row chat dataset."""
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        return (await upload(client, full_stack.mint_token(user), "train.jsonl", chat_rows()))["dataset_id"]


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_for_final_status(client: httpx.AsyncClient, job_id: str, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = (await client.get(f"/v1/jobs/{job_id}", headers=headers(token))).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish in {JOB_TIMEOUT_S}s")


async def all_predictions(client: httpx.AsyncClient, job_id: str, token: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await client.get(f"/v1/jobs/{job_id}/predictions", params=params, headers=headers(token))
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return items


async def messages_for_job(bootstrap_servers: str, topic: str, job_id: str) -> list[bytes]:
    """Every message on `topic` keyed by `job_id`, read from the beginning without a group."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    try:
        found: list[bytes] = []
        while batch := await consumer.getmany(timeout_ms=1500):
            found += [m.value for records in batch.values() for m in records if m.key == job_id.encode()]
        return found
    finally:
        await consumer.stop()


async def writers_committed_past(bootstrap_servers: str, partition: TopicPartition, offset: int) -> None:
    """Until the writers' group has committed `partition` past `offset`: the writer applied everything up to it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=WRITERS_GROUP)
    await consumer.start()
    try:
        deadline = time.monotonic() + 60
        while (await consumer.committed(partition) or 0) <= offset:
            assert time.monotonic() < deadline, f"the writers did not commit {partition} past {offset} in 60 s"
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()


FINISHED_JOB_PREDICTIONS = {"enabled": True, "sample_count": 3, "max_new_tokens": 8}


@pytest.fixture(scope="module")
async def alice_dataset(full_stack: Any) -> str:
    return await uploaded(full_stack, "alice")


@pytest.fixture(scope="module")
async def finished_job(full_stack: Any, alice_dataset: str) -> dict[str, Any]:
    """One job with predictions for a baseline + 2 epochs x 3 samples, run to the end (shared by several tests)."""
    token = full_stack.mint_token("alice")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        created = await client.post(
            "/v1/jobs", json=job_config(alice_dataset, FINISHED_JOB_PREDICTIONS), headers=headers(token)
        )
        assert created.status_code == 201, created.text
        job = await wait_for_final_status(client, created.json()["job_id"], token)
    return job


async def test_job_flows_end_to_end_with_predictions_for_every_epoch(full_stack: Any, finished_job: dict) -> None:
    token = full_stack.mint_token("alice")
    assert finished_job["status"] == "completed", finished_job
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        rows = await all_predictions(client, finished_job["job_id"], token)
    assert len(rows) == 9  # a baseline round before training, then one per epoch
    assert sorted({round(row["epoch"]) for row in rows}) == [0, 1, 2]
    for epoch in (0, 1, 2):
        in_epoch = [row for row in rows if round(row["epoch"]) == epoch]
        assert len({row["sample_id"] for row in in_epoch}) == 3
    # The same seeded samples in every round, each with its ground truth.
    assert {r["sample_id"] for r in rows if round(r["epoch"]) == 1} == {
        r["sample_id"] for r in rows if round(r["epoch"]) == 2
    }
    assert all(row["ground_truth"] and row["prompt"] for row in rows)


async def test_trainer_child_saw_the_jobs_identity(full_stack: Any, finished_job: dict) -> None:
    """Every event the job's trainer child published carries a job token that verifies for this job and its user:
    the child had JOB_ID and JOB_TOKEN (nothing in the job folder records them). The folder is gone once the job is."""
    job_id = finished_job["job_id"]
    servers = full_stack.broker.bootstrap_servers
    events = [
        parse_event(raw)
        for topic in (TRAINING_PREDICTIONS, TRAINING_STATUS)
        for raw in await messages_for_job(servers, topic, job_id)
    ]
    assert {e.type for e in events} >= {"prediction", "round.summary", "job.status"}
    for event in events:
        assert str(event.job_id) == job_id
        claims = verify_job_token(full_stack.env["EPOCHSCOPE_JOB_TOKEN_SECRET"], event.job_token, event.job_id)
        assert claims.user_id == "alice"
    job_dir = Path(full_stack.env["EPOCHSCOPE_TRAINER_WORK_DIR"]) / job_id
    deadline = time.monotonic() + 30
    while job_dir.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not job_dir.exists()  # its inputs, log and spool went with the job


async def test_the_estimate_equals_the_rounds_predictions_and_prompt_tokens_the_job_really_had(
    full_stack: Any, finished_job: dict, tiny_model_dir: Path
) -> None:
    token = full_stack.mint_token("alice")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        response = await client.post(
            "/v1/predictions/estimate", json={"config": finished_job["config"]}, headers=headers(token)
        )
        assert response.status_code == 200, response.text
        estimate = response.json()
        rows = await all_predictions(client, finished_job["job_id"], token)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt_tokens = sum(len(tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]) for row in rows)
    assert (estimate["rounds"], estimate["predictions"]) == (len(finished_job["rounds"]), len(rows)) == (3, 9)
    assert estimate["prompt_tokens"] == prompt_tokens
    assert [sample["sample_id"] for sample in estimate["samples"]] == sorted({row["sample_id"] for row in rows})
    assert {sample["ground_truth"] for sample in estimate["samples"]} == {row["ground_truth"] for row in rows}


async def test_disabled_predictions_complete_without_prediction_events(full_stack: Any) -> None:
    token = full_stack.mint_token("carol")
    config = job_config(await uploaded(full_stack, "carol"), {"enabled": False, "sample_count": 3})
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        created = await client.post("/v1/jobs", json=config, headers=headers(token))
        assert created.status_code == 201, created.text
        job = await wait_for_final_status(client, created.json()["job_id"], token)
        assert job["status"] == "completed", job
        assert await all_predictions(client, job["job_id"], token) == []
    bootstrap = full_stack.env["EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS"]
    assert await messages_for_job(bootstrap, TRAINING_PREDICTIONS, job["job_id"]) == []


async def test_another_users_job_is_404_and_the_database_refuses_to_leak(full_stack: Any, finished_job: dict) -> None:
    job_id = finished_job["job_id"]
    bob = full_stack.mint_token("bob")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        assert (await client.get(f"/v1/jobs/{job_id}", headers=headers(bob))).status_code == 404
        assert (await client.get(f"/v1/jobs/{job_id}/predictions", headers=headers(bob))).status_code == 404
        assert (await client.get(f"/v1/jobs/{job_id}")).status_code == 401

    # No WHERE clause on the owner: row-level security alone decides what the API role sees.
    conn = await asyncpg.connect(full_stack.api_database_url)
    try:
        for user, expected in (("bob", 0), ("alice", 9)):
            async with conn.transaction():
                await conn.execute("SELECT set_config('app.user_id', $1, true)", user)
                count = await conn.fetchval(
                    "SELECT count(*) FROM training_predictions WHERE job_id = $1", uuid.UUID(job_id)
                )
                jobs = await conn.fetchval("SELECT count(*) FROM jobs WHERE job_id = $1", uuid.UUID(job_id))
            assert (count, jobs) == (expected, 1 if expected else 0), user
        assert await conn.fetchval("SELECT count(*) FROM training_predictions") == 0  # no user set: nothing
    finally:
        await conn.close()


async def test_a_redelivered_prediction_event_leaves_one_row(full_stack: Any, finished_job: dict) -> None:
    job_id = finished_job["job_id"]
    bootstrap = full_stack.env["EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS"]
    original = parse_event(next(iter(await messages_for_job(bootstrap, TRAINING_PREDICTIONS, job_id))))
    assert isinstance(original, PredictionEvent)
    redelivered = original.model_copy(update={"event_id": uuid.uuid4(), "prediction": "a changed answer"})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for event in (original, original, redelivered):
            sent = await producer.send_and_wait(TRAINING_PREDICTIONS, encode_event(event), key=job_id.encode())
    finally:
        await producer.stop()
    await writers_committed_past(bootstrap, TopicPartition(TRAINING_PREDICTIONS, sent.partition), sent.offset)

    token = full_stack.mint_token("alice")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        rows = await all_predictions(client, job_id, token)
    assert len(rows) == 9
    same_key = [r for r in rows if (r["step"], r["sample_id"]) == (original.step, original.sample_id)]
    assert [r["prediction"] for r in same_key] == [original.prediction]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"num_epochs": 0}, ["body", "num_epochs"]),
        ({"learning_rate": "fast"}, ["body", "learning_rate"]),
        ({"model": ""}, ["body", "model"]),
        ({"model": "/etc/passwd"}, ["body", "model"]),
        ({"dataset_path": "/etc/passwd"}, ["body", "dataset_path"]),
        ({"dataset_id": str(uuid.uuid4())}, ["body", "dataset_id"]),
        ({"eval_dataset_id": str(uuid.uuid4())}, ["body", "eval_dataset_id"]),
        ({"predictions": {"enabled": True, "sample_count": 100000}}, ["body", "predictions", "sample_count"]),
        ({"predictions": {"sample_frequency": "steps"}}, ["body", "predictions"]),
        ({"surprise": 1}, ["body", "surprise"]),
    ],
)
async def test_invalid_job_configs_get_422_naming_the_field_and_store_nothing(
    full_stack: Any, patch: dict, field: list[str]
) -> None:
    user = f"mallory-{uuid.uuid4()}"
    token = full_stack.mint_token(user)
    config = job_config(await uploaded(full_stack, user), {"enabled": True}) | patch
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        response = await client.post("/v1/jobs", json=config, headers=headers(token))
    assert response.status_code == 422, response.text
    assert field in [error["loc"] for error in response.json()["detail"]]
    conn = await asyncpg.connect(full_stack.postgres.admin_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM jobs WHERE owner_id = $1", user) == 0
    finally:
        await conn.close()


async def test_another_users_dataset_id_in_a_job_config_is_not_found(full_stack: Any, alice_dataset: str) -> None:
    token = full_stack.mint_token("bob")
    for field in ("dataset_id", "eval_dataset_id"):
        config = job_config(await uploaded(full_stack, "bob"), {"enabled": True}) | {field: alice_dataset}
        async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
            response = await client.post("/v1/jobs", json=config, headers=headers(token))
        assert response.status_code == 422, response.text
        assert [(e["loc"], e["msg"]) for e in response.json()["detail"]] == [(["body", field], "dataset not found")]


async def test_the_generated_client_uploads_a_dataset_runs_a_real_job_and_reads_its_rounds(
    full_stack: Any, tmp_path: Path
) -> None:
    package = generated_client()
    models = package.models
    client = package.AuthenticatedClient(base_url=full_stack.api_url, token=full_stack.mint_token("client-e2e"))
    train = tmp_path / "train.jsonl"
    train.write_bytes(chat_rows())
    with train.open("rb") as handle:
        body = models.UploadDatasetBody(file=package.types.File(payload=handle, file_name=train.name))
        dataset = await api_module("datasets.upload_dataset").asyncio(client=client, body=body)
    assert isinstance(dataset, models.Dataset), dataset
    assert (dataset.rows, dataset.usable_rows, dataset.row_format) == (8, 8, "chat")
    config = models.JobConfig.from_dict(
        job_config(str(dataset.dataset_id), {"enabled": True, "sample_count": 2, "max_new_tokens": 4})
    )
    job = await api_module("jobs.create_job").asyncio(client=client, body=config)
    assert isinstance(job, models.Job), job
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (detail := await api_module("jobs.get_job").asyncio(job.job_id, client=client)).status.value not in (
        "completed",
        "failed",
        "cancelled",
    ):
        assert time.monotonic() < deadline, detail
        await asyncio.sleep(0.5)
    assert detail.status.value == "completed", detail
    page = await api_module("predictions.list_predictions").asyncio(job.job_id, client=client, limit=50)
    assert [(row.round_index, row.sample_index) for row in page.items] == [(r, i) for r in range(3) for i in range(2)]
    assert all(row.scores is not None and row.ground_truth for row in page.items)
    # Every round summarized by the trainer itself (not aggregated by the API from rows).
    assert [(r.round_index, r.predictions, r.summarized) for r in detail.rounds] == [(r, 2, True) for r in range(3)]
