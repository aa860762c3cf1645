"""Writer replicas added and removed mid-stream (issue 14, item 9), against the real broker and Postgres.

While a producer streams prediction events: a second replica joins, one leaves cleanly (SIGTERM), a third
joins, one is killed (SIGKILL). Every row must land exactly once, and no replica may log an error: a
rebalance while a batch waits for the database, or is being applied, is ordinary, not an exception.
"""

import asyncio
import time
import uuid

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from writer_events import prediction, publish, redelivery_rewrites_nothing
from writer_stack import (
    FAST_GROUP,
    PARTITIONS,
    Job,
    Stack,
    WriterProcess,
    admin_fetch,
    create_job,
    producer_fixture,  # noqa: F401  fixture
    stack_fixture,  # noqa: F401  fixture
    wait_for,
    writers_fixture,  # noqa: F401  fixture
)

from epochscope_schemas.events import encode_event
from epochscope_schemas.topics import TRAINING_PREDICTIONS

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="module")]

PER_JOB = 1500
RATE = 1500.0  # events per second: the stream lasts about 8 s, across every change of membership


@pytest_asyncio.fixture(loop_scope="module")
async def jobs(stack: Stack) -> list[Job]:
    """Two jobs on every partition (by Kafka's default partitioner), of two users: every replica gets work."""
    partitioner, partitions = DefaultPartitioner(), list(range(PARTITIONS))
    per_partition: dict[int, list[Job]] = {p: [] for p in partitions}
    while any(len(found) < 2 for found in per_partition.values()):
        job_id = uuid.uuid4()
        partition = partitioner(str(job_id).encode(), partitions, partitions)
        if len(per_partition[partition]) < 2:
            owner = ("rita", "sam")[len(per_partition[partition])]
            per_partition[partition].append(await create_job(stack, owner, job_id=job_id))
    return [job for found in per_partition.values() for job in found]


async def stream(producer: AIOKafkaProducer, payloads: list[tuple[uuid.UUID, bytes]], sent: list[int]) -> None:
    started = time.monotonic()
    for index, (key, value) in enumerate(payloads):
        await publish(producer, TRAINING_PREDICTIONS, key, value)
        sent[0] = index + 1
        ahead = (index + 1) / RATE - (time.monotonic() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)
    await producer.flush()


async def test_replicas_join_and_leave_mid_stream_every_row_once_no_error(
    stack: Stack, producer: AIOKafkaProducer, jobs: list[Job], writers: list[WriterProcess]
) -> None:
    payloads = [
        (job.job_id, encode_event(prediction(job, step=i // 50, sample=i % 50))) for i in range(PER_JOB) for job in jobs
    ]
    total = len(payloads)
    first = stack.start_writer(**FAST_GROUP)
    writers.append(first)
    await wait_for(lambda: _assigned(writers, 8), timeout=60)
    sent = [0]
    streaming = asyncio.create_task(stream(producer, payloads, sent))
    try:
        await _until_sent(sent, total // 5)
        second = stack.start_writer(**FAST_GROUP)  # joins mid-stream: a rebalance under load
        writers.append(second)
        await wait_for(lambda: _both_applying(first, second), timeout=30)
        await _until_sent(sent, 2 * total // 5)
        assert first.terminate() == 0, first.log_text()  # a clean leave: finish the batch, commit, leave
        await _until_sent(sent, 3 * total // 5)
        third = stack.start_writer(**FAST_GROUP)
        writers.append(third)
        await wait_for(lambda: _assigned([second, third], 8, each=True), timeout=30)
        await _until_sent(sent, 4 * total // 5)
        second.kill()  # a crash: its partitions move on after the session timeout, uncommitted work redelivered
        await streaming
    finally:
        streaming.cancel()
    await wait_for(lambda: _settled(stack, jobs, total), timeout=90, interval=0.5)
    assert await _rows_and_keys(stack, jobs) == (total, total)
    assert third.running(), third.log_text()
    await wait_for(lambda: _assigned([third], 8), timeout=30)
    await redelivery_rewrites_nothing(stack, producer, [third], payloads)
    assert third.terminate() == 0, third.log_text()
    for writer in (first, second, third):
        assert writer.log_problems() == [], writer.log_problems()
    rebalances = [w.log_text(10**6).count('"message": "assigned') for w in (first, second, third)]
    assert all(count >= 1 for count in rebalances), rebalances


async def test_a_replica_joining_while_a_batch_waits_for_the_database_is_no_error(
    stack: Stack, producer: AIOKafkaProducer, jobs: list[Job], writers: list[WriterProcess]
) -> None:
    """The rebalance listener drops the batch waiting for the database (it used to raise there)."""
    first = stack.start_writer(**FAST_GROUP)
    writers.append(first)
    await wait_for(lambda: _assigned(writers, 8), timeout=60)
    payloads = [(job.job_id, encode_event(prediction(job, step=10_000, sample=i))) for i in range(50) for job in jobs]
    before, _ = await _rows_and_keys(stack, jobs)
    stack.postgres.stop()
    try:
        for key, value in payloads:
            await publish(producer, TRAINING_PREDICTIONS, key, value)
        await producer.flush()
        await wait_for(lambda: _retries(first), timeout=60)  # a batch is pending, the writer backs off
        second = stack.start_writer(**FAST_GROUP)
        writers.append(second)
        await wait_for(lambda: _assigned(writers, 8, each=True), timeout=60)
    finally:
        stack.postgres.start()
    await wait_for(lambda: _settled(stack, jobs, before + len(payloads)), timeout=60, interval=0.5)
    assert "leaving an uncommitted batch" in first.log_text(10**6)
    for writer in writers:
        assert writer.terminate() == 0, writer.log_text()
        assert writer.log_problems() == [], writer.log_problems()


async def _retries(writer: WriterProcess) -> bool:
    return writer.metric("epochscope_writer_database_retries_total") >= 1


async def _until_sent(sent: list[int], count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sent[0] < count:
        assert time.monotonic() < deadline, f"the stream stalled at {sent[0]} of {count}"
        await asyncio.sleep(0.05)


async def _assigned(writers: list[WriterProcess], partitions: int, each: bool = False) -> bool:
    counts = [w.metric("epochscope_writer_assigned_partitions") for w in writers]
    return sum(counts) == partitions and (not each or all(count > 0 for count in counts))


async def _both_applying(first: WriterProcess, second: WriterProcess) -> bool:
    return second.metric("epochscope_writer_rows_applied_total", kind="prediction") > 0 and await _assigned(
        [first, second], 8, each=True
    )


async def _rows_and_keys(stack: Stack, jobs: list[Job]) -> tuple[int, int]:
    [row] = await admin_fetch(
        stack,
        "SELECT count(*) AS n, count(DISTINCT (job_id, step, sample_id)) AS d"
        " FROM training_predictions WHERE job_id = ANY($1::uuid[])",
        [job.job_id for job in jobs],
    )
    return row["n"], row["d"]


async def _settled(stack: Stack, jobs: list[Job], expected: int) -> bool:
    rows, distinct = await _rows_and_keys(stack, jobs)
    assert rows == distinct, f"{rows - distinct} duplicate rows"
    return rows == expected
