"""A job's whole life against the real stack: late events land, an expired token still delivers, deletion revokes.

The writer decides by facts it owns (the job row), never by the trainer's clock or a token's `exp`:
a writer outage across a job's end loses nothing, a token that expired while its job waited still
delivers, and only a deleted job's events are dead-lettered (reason `job_deleted`), with nothing written.
"""

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID

import pytest
from aiokafka import AIOKafkaProducer
from writer_events import (
    original_payload,
    prediction,
    progress,
    publish_events,
    read_dead_letters,
    round_summary,
    status,
    warning,
)
from writer_stack import (
    Job,
    Stack,
    WriterProcess,
    admin_fetch,
    count_rows,
    create_job,
    job_row,
    now,
    producer_fixture,  # noqa: F401  fixture
    stack_fixture,  # noqa: F401  fixture
    wait_for,
)

from epochscope_schemas.events import JobStatus
from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="module")]

OLD_GRACE_S = 1.0  # the hour the writer used to allow after a job's end, shortened for the test


@pytest.fixture
def writers(stack: Stack) -> Iterator[list[WriterProcess]]:
    """The writers a test starts; stopped cleanly at its end, with no error in their logs."""
    started: list[WriterProcess] = []
    yield started
    for writer in started:
        assert writer.terminate() == 0, writer.log_text()
        assert writer.log_problems() == [], writer.log_problems()


async def test_a_writer_down_across_a_jobs_end_loses_nothing(
    stack: Stack, producer: AIOKafkaProducer, writers: list[WriterProcess]
) -> None:
    job = await create_job(stack, "olga")
    started_at = now()
    writer = stack.start_writer()
    writers.append(writer)
    await publish_events(producer, [status(job, JobStatus.RUNNING, started_at)])
    await publish_events(producer, [prediction(job, step=1, sample=i) for i in range(20)])
    await wait_for(lambda: _rows(stack, job, 20), timeout=30)
    assert writer.terminate() == 0, writer.log_text()

    # While the writer is down: the rest of the stream, the job's end, more events after it.
    ended_at = now()
    await publish_events(producer, [prediction(job, step=2, sample=i) for i in range(20)])
    await publish_events(producer, [round_summary(job, 2), status(job, JobStatus.COMPLETED, ended_at)])
    await publish_events(producer, [prediction(job, step=3, sample=i) for i in range(20)])
    await publish_events(producer, [progress(job, 3), warning(job, "spool_flushed_late")])
    await asyncio.sleep(OLD_GRACE_S * 3)  # real time past the (shortened) old grace, with the job finished

    # The old knob, shortened, is passed on purpose: nothing reads it any more. Small batches, so the
    # backlog is applied over many transactions, some after the job's end is in the database.
    writer = stack.start_writer(
        EPOCHSCOPE_WRITER_FINISHED_JOB_GRACE_S=str(OLD_GRACE_S), EPOCHSCOPE_WRITER_BATCH_SIZE="7"
    )
    writers.append(writer)
    await wait_for(lambda: _status(stack, job, "completed"), timeout=60)
    # And the trainer's spool, flushed later still, to a job already finished in the database.
    await publish_events(producer, [prediction(job, step=4, sample=i) for i in range(20)])
    await wait_for(lambda: _rows(stack, job, 80), timeout=60)
    await wait_for(lambda: _counts(stack, job, (1, 1, 1)), timeout=30)
    row = await job_row(stack, job.job_id)
    assert (row["status"], row["started_at"], row["finished_at"]) == ("completed", started_at, ended_at)
    assert await _letters_of(stack, job.job_id) == []
    assert writer.metric("epochscope_writer_dead_letters_total") == 0


async def test_a_token_that_expired_while_its_job_waited_still_delivers(
    stack: Stack, producer: AIOKafkaProducer, writers: list[WriterProcess]
) -> None:
    job = await create_job(stack, "pete", token_ttl=timedelta(hours=-1))  # queued past the token's 72 h
    writers.append(stack.start_writer())
    await publish_events(
        producer,
        [
            status(job, JobStatus.RUNNING, now()),
            *(prediction(job, step=5, sample=i) for i in range(10)),
            round_summary(job, 1),
            progress(job, 5),
        ],
    )
    await wait_for(lambda: _rows(stack, job, 10), timeout=30)
    await wait_for(lambda: _counts(stack, job, (1, 1, 0)), timeout=30)
    assert (await job_row(stack, job.job_id))["status"] == "running"
    assert await _letters_of(stack, job.job_id) == []


async def test_a_deleted_jobs_late_events_are_dead_lettered_and_write_nothing(
    stack: Stack, producer: AIOKafkaProducer, writers: list[WriterProcess]
) -> None:
    job = await create_job(stack, "quin")
    writers.append(stack.start_writer())
    await publish_events(producer, [status(job, JobStatus.RUNNING, now())])
    await publish_events(producer, [prediction(job, step=1, sample=i) for i in range(5)])
    await wait_for(lambda: _rows(stack, job, 5), timeout=30)  # the writer has the owner cached now
    await admin_fetch(stack, "DELETE FROM jobs WHERE job_id = $1", job.job_id)  # as DELETE /v1/jobs/{id}

    late = [prediction(job, step=2, sample=i) for i in range(5)]
    forged = prediction(job, step=2, sample=9, token=job.token[:-4] + "AAAA")
    status_events = [round_summary(job, 2), status(job, JobStatus.COMPLETED, now())]
    await publish_events(producer, [*late, forged, *status_events])

    letters = await _wait_letters(stack, job.job_id, len(late) + 1 + len(status_events))
    by_event = {_event_id(letter): letter for letter in letters}
    for event in [*late, *status_events]:
        letter = by_event[str(event.event_id)]
        assert letter["reason"] == "job_deleted" and str(job.job_id) in letter["detail"], letter
    assert by_event[str(forged.event_id)]["reason"] == "invalid_token"  # told apart from a revoked job
    assert await count_rows(stack, job.job_id) == (0, 0)
    assert await admin_fetch(stack, "SELECT 1 FROM jobs WHERE job_id = $1", job.job_id) == []
    assert await _counts(stack, job, (0, 0, 0))


async def _rows(stack: Stack, job: Job, expected: int) -> bool:
    rows, distinct = await count_rows(stack, job.job_id)
    assert rows == distinct, "duplicate natural keys"
    return rows == expected


async def _status(stack: Stack, job: Job, expected: str) -> bool:
    return (await job_row(stack, job.job_id))["status"] == expected


async def _counts(stack: Stack, job: Job, expected: tuple[int, int, int]) -> bool:
    """(rounds, progress rows, warnings) of the job."""
    [counts] = await admin_fetch(
        stack,
        "SELECT (SELECT count(*) FROM job_rounds WHERE job_id = $1),"
        " (SELECT count(*) FROM job_progress WHERE job_id = $1),"
        " (SELECT count(*) FROM job_warnings WHERE job_id = $1)",
        job.job_id,
    )
    return tuple(counts) == expected


def _event_id(letter: dict) -> str:
    return str(json.loads(original_payload(letter)).get("event_id"))


async def _letters_of(stack: Stack, job_id: UUID) -> list[dict]:
    """Dead letters on both topics whose key is this job."""
    letters = []
    for topic in (TRAINING_PREDICTIONS, TRAINING_STATUS):
        letters += await read_dead_letters(stack, topic, at_least=0, timeout=5)
    return [letter for letter in letters if letter["key"] == str(job_id)]


async def _wait_letters(stack: Stack, job_id: UUID, expected: int, timeout: float = 30) -> list[dict]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        letters = await _letters_of(stack, job_id)
        if len(letters) >= expected or asyncio.get_running_loop().time() > deadline:
            assert len(letters) == expected, letters
            return letters
        await asyncio.sleep(0.5)
