"""The trainer in the real local stack: cancel, a crash mid-job, eval rounds, warnings, broker outages."""

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from test_end_to_end import all_predictions, headers, wait_for_final_status, write_dataset

from epochscope.broker import TansuBroker, ensure_topics
from epochscope.ports import free_port
from epochscope_schemas.events import JobStatusEvent
from epochscope_schemas.kafka import KafkaSettings
from epochscope_schemas.topics import TRAINING_STATUS
from epochscope_trainer.spool_store import Spool
from epochscope_trainer.spooling_publisher import EventPublisher

pytestmark = pytest.mark.stack


def long_job(model_dir: Path, dataset: Path, **extra: Any) -> dict[str, Any]:
    """Thousands of tiny steps: long enough to cancel or crash in the middle."""
    return {
        "model": str(model_dir),
        "dataset_path": str(dataset),
        "num_epochs": 60,
        "batch_size": 1,
        "learning_rate": 1e-3,
        "max_length": 32,
        "predictions": {"enabled": True, "sample_count": 2, "max_new_tokens": 4},
    } | extra


async def submit(client: httpx.AsyncClient, token: str, config: dict[str, Any]) -> str:
    response = await client.post("/v1/jobs", json=config, headers=headers(token))
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


async def wait_for_training(stack: Any, job_id: str, min_step: int, timeout: float = 120) -> None:
    """Until the job's progress has passed `min_step` (read as the admin, independent of the API's shape)."""
    deadline = time.monotonic() + timeout
    conn = await asyncpg.connect(stack.postgres.admin_url)
    try:
        while time.monotonic() < deadline:
            step = await conn.fetchval("SELECT max(step) FROM job_progress WHERE job_id = $1", uuid.UUID(job_id))
            if step is not None and step >= min_step:
                return
            await asyncio.sleep(0.3)
    finally:
        await conn.close()
    raise AssertionError(f"job {job_id} did not reach step {min_step}")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data") / "train.jsonl", rows=40)


async def test_cancel_stops_a_running_job(full_stack: Any, tiny_model_dir: Path, dataset: Path) -> None:
    token = full_stack.mint_token("canceller")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        job_id = await submit(client, token, long_job(tiny_model_dir, dataset))
        await wait_for_training(full_stack, job_id, min_step=5)
        assert (await client.post(f"/v1/jobs/{job_id}/cancel", headers=headers(token))).status_code == 202
        job = await wait_for_final_status(client, job_id, token)
    assert job["status"] == "cancelled", job


async def test_a_trainer_killed_mid_job_reruns_it_after_restart(
    full_stack: Any, tiny_model_dir: Path, dataset: Path
) -> None:
    token = full_stack.mint_token("crasher")
    trainer = full_stack.service("trainer-0")
    config = long_job(tiny_model_dir, dataset, num_epochs=4)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        job_id = await submit(client, token, config)
        await wait_for_training(full_stack, job_id, min_step=3)
        trainer.kill()
        await asyncio.sleep(2)
        assert (await client.get(f"/v1/jobs/{job_id}", headers=headers(token))).json()["status"] == "running"
        trainer.start()
        job = await wait_for_final_status(client, job_id, token)
        assert job["status"] == "completed", job
        rows = await all_predictions(client, job_id, token)
    # A baseline and one round per epoch, each once despite the re-run.
    assert len(rows) == (1 + 4) * 2, sorted((r["round_index"], r["step"], r["epoch"]) for r in rows)
    assert trainer.log_path.read_text().count(f"starting job {job_id}") == 2  # run, crash, re-run
    assert trainer.running()


async def test_eval_rounds_and_a_warning_for_an_empty_samples_file(
    full_stack: Any, tiny_model_dir: Path, dataset: Path, tmp_path: Path
) -> None:
    token = full_stack.mint_token("evaluator")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    eval_config = long_job(tiny_model_dir, dataset, num_epochs=2, batch_size=8, eval_fraction=0.25)
    eval_config["predictions"] |= {"sample_frequency": "eval"}
    warn_config = long_job(tiny_model_dir, dataset, num_epochs=1, batch_size=8)
    warn_config["predictions"] |= {"samples_path": str(empty)}
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        eval_job, warn_job = await submit(client, token, eval_config), await submit(client, token, warn_config)
        assert (await wait_for_final_status(client, eval_job, token))["status"] == "completed"
        assert (await wait_for_final_status(client, warn_job, token))["status"] == "completed"
        eval_rows = await all_predictions(client, eval_job, token)
        assert await all_predictions(client, warn_job, token) == []
    assert sorted({row["epoch"] for row in eval_rows}) == [0.0, 1.0, 2.0]
    conn = await asyncpg.connect(full_stack.postgres.admin_url)
    try:
        warnings = await conn.fetch("SELECT code, message FROM job_warnings WHERE job_id = $1", uuid.UUID(warn_job))
        rounds = await conn.fetch("SELECT trigger FROM job_rounds WHERE job_id = $1", uuid.UUID(eval_job))
    finally:
        await conn.close()
    assert [w["code"] for w in warnings] == ["samples_empty"]
    assert sorted(r["trigger"] for r in rounds) == ["baseline", "eval", "eval"]


async def test_events_published_while_the_broker_is_down_are_spooled_and_delivered_in_order(
    tmp_path: Path,
) -> None:
    port = free_port()
    spool = tmp_path / "spool.sqlite"
    publisher = EventPublisher(KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"), spool, queue_size=10)
    publisher.start()
    job_id = uuid.uuid4()
    events = [JobStatusEvent(job_id=job_id, status="running", message=f"event {i}") for i in range(40)]
    for event in events:
        publisher.publish(TRAINING_STATUS, event)  # never blocks, broker or not
    await asyncio.sleep(2)
    on_disk = Spool(spool)
    assert publisher.pending() == 40 and len(on_disk) == 40
    on_disk.close()
    broker = TansuBroker(tmp_path / "broker.log", port=port)
    broker.start()
    try:
        await ensure_topics(broker.bootstrap_servers, partitions=1)
        assert await asyncio.to_thread(publisher.close, 60) == 0
        consumer = AIOKafkaConsumer(
            TRAINING_STATUS, bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            received: list[str] = []
            deadline = time.monotonic() + 20
            while len(received) < 40 and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    received += [json.loads(r.value)["message"] for r in records]
        finally:
            await consumer.stop()
    finally:
        broker.stop()
    assert received == [f"event {i}" for i in range(40)]
    assert not spool.exists()  # delivered: an empty spool leaves no file


async def test_a_failing_job_reports_the_error_class_without_a_traceback(
    full_stack: Any, dataset: Path, tmp_path: Path
) -> None:
    token = full_stack.mint_token("failer")
    broken_model = tmp_path / "not-a-model"
    broken_model.mkdir()
    config = long_job(broken_model, dataset, num_epochs=1)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        job = await wait_for_final_status(client, await submit(client, token, config), token)
    assert job["status"] == "failed", job
    assert job["status_message"].startswith(("OSError:", "ValueError:")), job["status_message"]
    assert "Traceback" not in job["status_message"]
