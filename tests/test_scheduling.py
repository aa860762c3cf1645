"""The job queue on a real stack with two trainers (and one that never heartbeats): an idle trainer takes the next
job at once, users take turns, a trainer frozen mid-job (partitioned away) loses its lease and stops its fenced
attempt when it comes back, a trainer killed mid-job loses its lease and the job runs again (the dead attempt's
late events dead-lettered), a start delivered twice runs once, a forged heartbeat draws no job."""

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from own_stack import own_stack
from test_end_to_end import headers, messages_for_job, wait_for_final_status
from tiny_model import TINY_MODEL_ID
from uploads import chat_rows, upload
from writer_events import original_payload, read_dead_letters

from epochscope.local_stack import LocalStack
from epochscope_runtime.heartbeat_signing import signed_heartbeat
from epochscope_runtime.job_token import JobTokenClaims, job_token_for
from epochscope_schemas.events import JobStatus, JobStatusEvent, PredictionEvent, encode_event, parse_event
from epochscope_schemas.scheduling import TrainerHeartbeat
from epochscope_schemas.topics import (
    JOB_COMMANDS,
    TRAINER_HEARTBEATS,
    TRAINING_PREDICTIONS,
    TRAINING_STATUS,
    dead_letter_topic,
)
from epochscope_trainer.service.cancel_watcher import FENCED

pytestmark = pytest.mark.stack

LONG = {"epochs": 100, "rows": 200}  # minutes on a CPU: cancelled by the tests
MEDIUM = {"epochs": 2, "rows": 200}
SHORT = {"epochs": 1, "rows": 8}
RUN_BEGINS = "loading the model and the data"  # the first status event of each run of a job


@pytest.fixture(scope="module")
def stack(tiny_model_dir: Path) -> Iterator[LocalStack]:
    env = {
        "EPOCHSCOPE_OUTBOX_POLL_SECONDS": "0.3",
        "EPOCHSCOPE_QUOTA_WRITES_PER_MINUTE": "100000",
        "EPOCHSCOPE_DISPATCH_LEASE_SECONDS": "6",
        "EPOCHSCOPE_TRAINER_HEARTBEAT_S": "1",
    }
    with own_stack("epochscope-sched-", tiny_model_dir, env, trainers=2) as stack:
        yield stack


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


async def queue_row(stack: LocalStack, job_id: str) -> asyncpg.Record:
    conn = await asyncpg.connect(stack.api_database_url)
    try:
        return await conn.fetchrow("SELECT * FROM job_queue WHERE job_id = $1", job_id)
    finally:
        await conn.close()


async def attempts(stack: LocalStack, job_ids: list[str]) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack.api_database_url)
    try:
        return await conn.fetch(
            "SELECT * FROM job_attempts WHERE job_id = ANY($1::uuid[]) ORDER BY dispatched_at", job_ids
        )
    finally:
        await conn.close()


async def in_state(stack: LocalStack, job_id: str, *states: str) -> asyncpg.Record | None:
    row = await queue_row(stack, job_id)
    return row if row["state"] in states else None


class Users:
    """Each user's dataset (uploaded once per size) and job submission."""

    def __init__(self, stack: LocalStack, client: httpx.AsyncClient) -> None:
        self.stack, self.client = stack, client
        self.datasets: dict[tuple[str, int], str] = {}

    async def submit(self, user: str, size: dict[str, int]) -> str:
        token = self.stack.mint_token(user)
        key = (user, size["rows"])
        if key not in self.datasets:
            uploaded = await upload(self.client, token, "train.jsonl", chat_rows(size["rows"]))
            self.datasets[key] = uploaded["dataset_id"]
        config = {
            "model": TINY_MODEL_ID,
            "dataset_id": self.datasets[key],
            "num_epochs": size["epochs"],
            "batch_size": 4,
            "max_length": 64,
            "predictions": {"enabled": False},
        }
        created = await self.client.post("/v1/jobs", json=config, headers=headers(token))
        assert created.status_code == 201, created.text
        return created.json()["job_id"]

    async def cancel(self, user: str, job_id: str) -> None:
        token = self.stack.mint_token(user)
        response = await self.client.post(f"/v1/jobs/{job_id}/cancel", headers=headers(token))
        assert response.status_code == 202, response.text
        await wait_for_final_status(self.client, job_id, token)


@pytest.fixture(scope="module")
async def users(stack: LocalStack) -> Any:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        yield Users(stack, client)


def trainer_process(stack: LocalStack, trainer_id: str) -> Any:
    """The stack's process of a trainer id (ids name the process: host-pid-random)."""
    pid = int(trainer_id.rsplit("-", 2)[-2])
    return next(p for p in stack.processes if p.process is not None and p.process.pid == pid)


async def test_an_idle_trainer_starts_the_next_job_and_a_silent_one_gets_none(stack: LocalStack, users: Any) -> None:
    silent = stack.add_trainer(9, {"EPOCHSCOPE_TRAINER_HEARTBEAT_S": "0"}, start=True)
    long_job = await users.submit("lena", LONG)
    first = await until(lambda: in_state(stack, long_job, "running"), 120, "the long job running")
    submitted = time.monotonic()
    second_job = await users.submit("sam", LONG)
    second = await until(lambda: in_state(stack, second_job, "dispatched", "running"), 10, "the second job sent")
    assert time.monotonic() - submitted < 5
    assert second["trainer_id"] != first["trainer_id"]
    third_job = await users.submit("tom", SHORT)
    await asyncio.sleep(6)  # both heartbeating trainers busy: it waits, and the silent trainer is never sent it
    assert (await queue_row(stack, third_job))["state"] == "queued"
    tom = headers(stack.mint_token("tom"))
    detail = (await users.client.get(f"/v1/jobs/{third_job}", headers=tom)).json()
    assert detail["queue_position"] == 1 and detail["estimated_start_seconds"] is not None, detail
    listed = (await users.client.get("/v1/jobs", headers=tom)).json()["items"]
    assert [job["queue_position"] for job in listed if job["job_id"] == third_job] == [1]
    await asyncio.gather(
        *(users.cancel(u, j) for u, j in (("tom", third_job), ("lena", long_job), ("sam", second_job)))
    )
    sent_to = {row["trainer_id"] for row in await attempts(stack, [long_job, second_job, third_job])}
    assert not any(f"-{silent.process.pid}-" in trainer for trainer in sent_to)
    silent.stop()


async def test_users_take_turns(stack: LocalStack, users: Any) -> None:
    ann = [await users.submit("ann", SHORT) for _ in range(10)]
    ben = await users.submit("ben", SHORT)
    await until(lambda: in_state(stack, ben, "dispatched", "running", "final"), 120, "ben's job sent")
    order = [str(row["job_id"]) for row in await attempts(stack, [*ann, ben])]
    assert order.index(ben) <= 2, order  # after at most the two of ann's that took the two idle trainers
    await asyncio.gather(*(users.cancel("ann", job_id) for job_id in reversed(ann)))
    await wait_for_final_status(users.client, ben, stack.mint_token("ben"))


async def test_a_start_delivered_twice_runs_once(stack: LocalStack, users: Any) -> None:
    job_id = await users.submit("dora", SHORT)
    row = await until(lambda: in_state(stack, job_id, "dispatched", "running"), 60, "the job sent")
    # The start exactly as the relay published it (signed, its token sealed for its trainer), as a relay that
    # published, then crashed before marking its row, would send it again.
    start = await until(lambda: published_start(stack, job_id), 60, "the start published")
    assert parse_event(start).attempt_id == row["attempt_id"]
    # After the copies, on their partition, a start of a version no trainer reads: each trainer dead-letters it
    # once it has passed the copies (or run them: one job at a time), so its two letters mean both were handled.
    marker = json.dumps({"type": "job.start", "schema_version": 999, "job_id": job_id}).encode()
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap_servers)
    await producer.start()
    try:
        for _ in range(2):  # as a relay that published, then crashed before marking its row, would again
            await producer.send_and_wait(JOB_COMMANDS, start, key=job_id.encode())
        await producer.send_and_wait(JOB_COMMANDS, marker, key=job_id.encode())
    finally:
        await producer.stop()
    job = await wait_for_final_status(users.client, job_id, stack.mint_token("dora"))
    assert job["status"] == "completed", job
    await until(lambda: commands_dead_lettered(stack, marker, 2), 120, "both trainers past the copies")
    statuses = await messages_for_job(stack.broker.bootstrap_servers, TRAINING_STATUS, job_id)
    events = [e for e in map(parse_event, statuses) if isinstance(e, JobStatusEvent)]
    runs = [e for e in events if e.message == RUN_BEGINS]
    assert len(runs) == 1 and runs[0].attempt_id == row["attempt_id"]
    assert [e.status for e in events].count(JobStatus.COMPLETED) == 1


async def published_start(stack: LocalStack, job_id: str) -> bytes | None:
    """The job's start as it is on the commands topic, once published."""
    commands = await messages_for_job(stack.broker.bootstrap_servers, JOB_COMMANDS, job_id)
    return next((value for value in commands if json.loads(value)["type"] == "job.start"), None)


async def commands_dead_lettered(stack: LocalStack, value: bytes, at_least: int) -> bool:
    """Whether `value` is on the job commands' dead-letter topic at least `at_least` times."""
    consumer = AIOKafkaConsumer(
        dead_letter_topic(JOB_COMMANDS), bootstrap_servers=stack.broker.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        found = 0
        while batch := await consumer.getmany(timeout_ms=1500):
            found += sum(m.value == value for records in batch.values() for m in records)
        return found >= at_least
    finally:
        await consumer.stop()


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (a trainer and its job's process), from /proc."""
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        for children in Path(f"/proc/{tree[-1]}/task").glob("*/children"):
            todo += [int(child) for child in children.read_text().split()]
    return tree


async def fenced_status(stack: LocalStack, job_id: str, attempt_id: Any) -> JobStatusEvent | None:
    """The fenced attempt's own end (its status event, refused by the writer as stale), once it has come."""
    for dead in await read_dead_letters(stack, TRAINING_STATUS, at_least=1, timeout=3):
        event = parse_event(original_payload(dead))
        if dead["reason"] == "stale_attempt" and isinstance(event, JobStatusEvent):
            if str(event.job_id) == job_id and event.attempt_id == attempt_id and event.status.is_final:
                return event
    return None


async def test_a_trainer_partitioned_away_stops_its_fenced_attempt_when_it_comes_back(
    stack: LocalStack, users: Any
) -> None:
    job_id = await users.submit("pia", MEDIUM)
    first = await until(lambda: in_state(stack, job_id, "running"), 120, "the job running")
    frozen = process_tree(trainer_process(stack, first["trainer_id"]).process.pid)
    assert len(frozen) > 1  # the trainer and its job's process, frozen together: no heartbeat, no step
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        await until(lambda: attempts_of(stack, job_id, 2), 60, "the job dispatched again")
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    ended = await until(lambda: fenced_status(stack, job_id, first["attempt_id"]), 120, "the fenced attempt ended")
    assert (ended.status, ended.message) == (JobStatus.CANCELLED, FENCED)  # stopped, not run to its end
    job = await wait_for_final_status(users.client, job_id, stack.mint_token("pia"))
    assert job["status"] == "completed", job  # the fence of attempt 1 did not stop attempt 2
    rows = await attempts(stack, [job_id])
    assert [(row["attempt_no"], row["outcome"]) for row in rows] == [(1, "lease_lost"), (2, "completed")]
    assert rows[1]["trainer_id"] != first["trainer_id"]


async def attempts_of(stack: LocalStack, job_id: str, count: int) -> bool:
    return len(await attempts(stack, [job_id])) >= count


async def test_a_killed_trainer_loses_its_lease_and_the_job_runs_again(stack: LocalStack, users: Any) -> None:
    job_id = await users.submit("kim", MEDIUM)
    first = await until(lambda: in_state(stack, job_id, "running"), 120, "the job running")
    trainer_process(stack, first["trainer_id"]).kill()  # SIGKILL: no clean-up
    job = await wait_for_final_status(users.client, job_id, stack.mint_token("kim"))
    assert job["status"] == "completed", job
    rows = await attempts(stack, [job_id])
    assert [row["attempt_no"] for row in rows] == [1, 2] and rows[0]["outcome"] == "lease_lost"
    assert rows[1]["trainer_id"] != first["trainer_id"]
    late = PredictionEvent(
        job_id=job_id,
        job_token=job_token_for(
            stack.env["EPOCHSCOPE_JOB_TOKEN_SECRET"],
            JobTokenClaims(job_id, "kim", first["token_expires_at"], attempt_id=first["attempt_id"]),  # its own
        ),
        attempt_id=first["attempt_id"],
        round_index=99,
        epoch=9.0,
        step=9999,
        sample_id="late",
        sample_index=0,
        prompt="p",
        prediction="from the dead attempt",
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(TRAINING_PREDICTIONS, encode_event(late), key=job_id.encode())
    finally:
        await producer.stop()
    dead = await read_dead_letters(stack, TRAINING_PREDICTIONS, at_least=1)
    assert any(d["reason"] == "stale_attempt" and d["key"] == job_id for d in dead), dead
    token = stack.mint_token("kim")
    page = (await users.client.get(f"/v1/jobs/{job_id}/predictions", headers=headers(token))).json()
    assert all(item["sample_id"] != "late" for item in page["items"])


async def test_a_forged_heartbeat_gets_no_job_and_is_dead_lettered(stack: LocalStack, users: Any) -> None:
    claim = TrainerHeartbeat(trainer_id="forger", slots=64, free_slots=64)  # the most free slots: first served
    forgeries = [claim, signed_heartbeat(claim, Ed25519PrivateKey.generate())]  # unsigned; a key no writer accepts
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap_servers)
    await producer.start()

    async def forge() -> None:  # fresh forgeries all along, so a recorded one would be a live trainer
        while True:
            for beat in forgeries:
                fresh = beat.model_copy(update={"occurred_at": datetime.now(UTC)})
                await producer.send_and_wait(TRAINER_HEARTBEATS, fresh.model_dump_json().encode(), key=b"forger")
            await asyncio.sleep(0.5)

    forging = asyncio.create_task(forge())
    try:
        dead = await read_dead_letters(stack, TRAINER_HEARTBEATS, at_least=2)
        job_id = await users.submit("ivy", SHORT)
        sent = await until(lambda: in_state(stack, job_id, "dispatched", "running", "final"), 120, "the job sent")
    finally:
        forging.cancel()
        await producer.stop()
    assert {d["reason"] for d in dead if d["key"] == "forger"} == {"invalid_signature", "unaccepted_trainer_key"}, dead
    assert sent["trainer_id"] != "forger"
    conn = await asyncpg.connect(stack.api_database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM trainers WHERE trainer_id = 'forger'") == 0
    finally:
        await conn.close()
    await users.cancel("ivy", job_id)
