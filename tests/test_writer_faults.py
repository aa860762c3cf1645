"""Fault tests of the writer: real Tansu broker, real Postgres, `epochscope-writer` subprocesses.

Crashes (SIGKILL), a database outage, poison and forged input, and two replicas in one group must
all end with every valid event applied exactly once and every bad one dead-lettered with its reason.
"""

import asyncio
import json
import random
import time
import uuid
from datetime import timedelta

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from writer_events import (
    as_dead_lettered,
    original_payload,
    prediction,
    publish,
    read_dead_letters,
    redelivery_rewrites_nothing,
)
from writer_stack import (
    FAST_GROUP,
    JOB_TOKEN_SECRET,
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

from epochscope_runtime.job_token import mint_job_token
from epochscope_schemas.events import encode_event
from epochscope_schemas.topics import TRAINING_PREDICTIONS

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module")
async def jobs(stack: Stack) -> list[Job]:
    """Eight jobs of two users: enough keys to land on every partition."""
    return [await create_job(stack, owner) for owner in ("ann", "ben") for _ in range(4)]


def prediction_payloads(jobs: list[Job], per_job: int) -> list[tuple[uuid.UUID, bytes]]:
    """(key, value) of `per_job` predictions for each job, interleaved across jobs as a trainer fleet sends them."""
    samples = 50
    return [
        (job.job_id, encode_event(prediction(job, step=i // samples, sample=i % samples)))
        for i in range(per_job)
        for job in jobs
    ]


async def stream(
    producer: AIOKafkaProducer, payloads: list[tuple[uuid.UUID, bytes]], per_second: float, sent: list[int]
) -> None:
    """Publish at about `per_second`, counting into `sent[0]` as it goes."""
    started = time.monotonic()
    for index, (key, value) in enumerate(payloads):
        await publish(producer, TRAINING_PREDICTIONS, key, value)
        sent[0] = index + 1
        ahead = (index + 1) / per_second - (time.monotonic() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)
    await producer.flush()


async def rows_and_keys(stack: Stack, jobs: list[Job]) -> tuple[int, int]:
    """(rows, distinct natural keys) over the given jobs."""
    [row] = await admin_fetch(
        stack,
        "SELECT count(*) AS n, count(DISTINCT (job_id, step, sample_id)) AS d"
        " FROM training_predictions WHERE job_id = ANY($1::uuid[])",
        [job.job_id for job in jobs],
    )
    return row["n"], row["d"]


async def settled(stack: Stack, jobs: list[Job], expected: int) -> bool:
    rows, distinct = await rows_and_keys(stack, jobs)
    assert rows == distinct, f"{rows - distinct} duplicate rows"
    assert rows <= expected
    return rows == expected


async def test_sigkill_during_stream_loses_and_duplicates_nothing(
    stack: Stack, producer: AIOKafkaProducer, jobs: list[Job], writers: list[WriterProcess]
) -> None:
    payloads = prediction_payloads(jobs, 2500)
    assert len(payloads) == 20_000
    writer = stack.start_writer(**FAST_GROUP)
    writers.append(writer)
    # Four chunks of 5k; during each of the first three the writer is killed once it is applying rows,
    # so every kill lands while the stream is still coming in, and restarts into a backlog.
    chunk = 5000
    for start in range(0, len(payloads), chunk):
        applied_before, _ = await rows_and_keys(stack, jobs)
        streaming = asyncio.create_task(stream(producer, payloads[start : start + chunk], per_second=2500, sent=[0]))
        try:
            if start + chunk < len(payloads):
                await wait_for(lambda before=applied_before: _grew(stack, jobs, before), timeout=60)
                await asyncio.sleep(random.uniform(0.05, 0.5))
                writer.kill()
                writer.start()
            await streaming
        finally:
            streaming.cancel()
    await wait_for(lambda: settled(stack, jobs, 20_000), timeout=90, interval=0.5)
    assert await rows_and_keys(stack, jobs) == (20_000, 20_000)
    await redelivery_rewrites_nothing(stack, producer, [writer], payloads)
    assert writer.running(), writer.log_text()


async def test_database_outage_mid_stream_recovers_by_itself(
    stack: Stack, producer: AIOKafkaProducer, writers: list[WriterProcess]
) -> None:
    outage_jobs = [await create_job(stack, "cleo") for _ in range(4)]
    payloads = prediction_payloads(outage_jobs, 1000)
    writer = stack.start_writer()
    writers.append(writer)
    sent = [0]
    streaming = asyncio.create_task(stream(producer, payloads, per_second=1000, sent=sent))
    try:
        await wait_for(lambda: _grew(stack, outage_jobs, 0), timeout=60)
        stack.postgres.stop()
        try:
            await wait_for(lambda: _ready_is(writer, 503), timeout=20)
            await asyncio.sleep(2)  # the writer retries with backoff meanwhile, and commits nothing
        finally:
            stack.postgres.start()
        await streaming
        await wait_for(lambda: settled(stack, outage_jobs, len(payloads)), timeout=60, interval=0.5)
    finally:
        streaming.cancel()
    await wait_for(lambda: _ready_is(writer, 200), timeout=20)
    assert writer.metric("epochscope_writer_database_retries_total") >= 1
    assert writer.running(), writer.log_text()


async def test_malformed_and_forged_events_are_dead_lettered(
    stack: Stack, producer: AIOKafkaProducer, writers: list[WriterProcess]
) -> None:
    mine = await create_job(stack, "dora")
    theirs = await create_job(stack, "eddy")
    forged_key = "not-the-writer-secret-0123456789abcdef"
    other_token, _ = mint_job_token(JOB_TOKEN_SECRET, theirs.job_id, "eddy", timedelta(hours=1))
    # Bad events by expected reason; each one unique, so its dead letter can be found by payload.
    bad: dict[bytes, str] = {}
    valid: list[bytes] = []
    for i in range(200):
        good = json.loads(encode_event(prediction(mine, step=1000 + i, sample=i)))
        bad[f'{{"event_id": "{i}", "step": '.encode()] = "undecodable"
        missing = {k: v for k, v in good.items() if k not in ("prediction", "sample_id")}
        bad[json.dumps(missing).encode()] = "schema_invalid"
        bad[json.dumps({**good, "schema_version": 2 + i % 3}).encode()] = "unknown_schema_version"
        forged, _ = mint_job_token(forged_key, mine.job_id, "dora", timedelta(hours=1))
        wrong_token = forged if i % 2 else theirs.token  # a forged signature, or a real token of another job
        bad[json.dumps({**good, "job_token": wrong_token, "step": 2000 + i}).encode()] = "invalid_token"
        # Another user's job id, with that job's real token but claimed by this user (a leaked secret).
        claimed, _ = mint_job_token(JOB_TOKEN_SECRET, theirs.job_id, "dora", timedelta(hours=1))
        stolen = {**good, "job_id": str(theirs.job_id), "job_token": claimed if i % 2 else other_token[:-4]}
        bad[json.dumps(stolen).encode()] = "owner_mismatch" if i % 2 else "invalid_token"
        for sample in range(2):
            valid.append(encode_event(prediction(mine, step=i, sample=sample)))
    assert len(bad) == 1000
    mixed = [*bad, *valid]
    random.Random(4).shuffle(mixed)
    writer = stack.start_writer()
    writers.append(writer)
    for payload in mixed:
        await publish(producer, TRAINING_PREDICTIONS, mine.job_id, payload)
    await producer.flush()

    await wait_for(lambda: settled(stack, [mine], len(valid)), timeout=60, interval=0.5)
    letters = await read_dead_letters(stack, TRAINING_PREDICTIONS, at_least=len(bad), timeout=60)
    by_payload = {original_payload(letter): letter for letter in letters}
    for payload, reason in bad.items():
        letter = by_payload.get(as_dead_lettered(payload))
        assert letter is not None, f"not dead-lettered: {payload[:120]!r}"
        assert letter["reason"] == reason, (payload[:200], letter)
        assert letter["detail"] and letter["topic"] == TRAINING_PREDICTIONS and letter["offset"] >= 0
    assert await rows_and_keys(stack, [theirs]) == (0, 0)
    assert writer.get("/readyz")[0] == 200
    assert writer.metric("epochscope_writer_dead_letters_total") == len(bad)
    assert writer.running(), writer.log_text()


async def test_two_writers_split_partitions_and_apply_each_row_once(
    stack: Stack, producer: AIOKafkaProducer, writers: list[WriterProcess]
) -> None:
    pair_jobs = [await create_job(stack, "finn") for _ in range(8)]
    writers.extend([stack.start_writer(), stack.start_writer()])
    partitions = "epochscope_writer_assigned_partitions"
    await wait_for(lambda: _all_assigned(writers, partitions), timeout=60)
    for writer in writers:  # ready while idle: readiness does not wait for traffic
        await wait_for(lambda writer=writer: _ready_is(writer, 200), timeout=20)
    payloads = prediction_payloads(pair_jobs, 500)
    for key, value in payloads:
        await publish(producer, TRAINING_PREDICTIONS, key, value)
    await producer.flush()
    await wait_for(lambda: settled(stack, pair_jobs, len(payloads)), timeout=60, interval=0.5)
    applied = [w.metric("epochscope_writer_rows_applied_total", kind="prediction") for w in writers]
    assert all(rows > 0 for rows in applied), applied
    await redelivery_rewrites_nothing(stack, producer, writers, payloads)
    assert sum(w.metric(partitions) for w in writers) == 8  # 4 partitions of each of the two topics


async def _grew(stack: Stack, jobs: list[Job], before: int) -> bool:
    rows, _ = await rows_and_keys(stack, jobs)
    return rows > before


async def _ready_is(writer: WriterProcess, status: int) -> bool:
    return writer.get("/readyz")[0] == status


async def _all_assigned(writers: list[WriterProcess], metric: str) -> bool:
    counts = [writer.metric(metric) for writer in writers]
    return all(count > 0 for count in counts) and sum(counts) == 8
