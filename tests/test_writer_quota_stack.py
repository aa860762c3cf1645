"""The stored-predictions quota while a job runs, on the real broker and Postgres with an `epochscope-writer` process:
a running job's predictions past its user's quota are not stored but dead-lettered with the reason, its user reads
the warning through the API's own query under row-level security, and other users and the job's status go on; two
writers storing one user's predictions at once take turns at the user's count, so together they never pass it."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from writer_events import prediction, progress, publish_events, read_dead_letters, status
from writer_fakes import record_of
from writer_stack import (
    JOB_TOKEN_SECRET,
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

from epochscope_api.data.job_warnings import fetch_warnings
from epochscope_schemas.events import JobStatus, PredictionEvent
from epochscope_schemas.topics import TRAINING_PREDICTIONS
from epochscope_writer.adapters.postgres import PostgresDatabase
from epochscope_writer.domain.dead_letters import DeadLetterReason
from epochscope_writer.domain.job_tokens import JobTokenVerifier
from epochscope_writer.service_layer.apply import BatchApplier, BatchResult, CheckedBatch, JobOwners
from epochscope_writer.service_layer.prediction_quota import PredictionQuota

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="module")]

QUOTA = 150  # bytes: one round of four predictions below (about 26 bytes each) fits, a second does not
API_PASSWORD = "epochscope_api"  # the migrator's development default, as writer_stack migrates


@pytest.fixture(scope="module", name="writer", autouse=True)
def writer_fixture(stack: Stack) -> Iterator[WriterProcess]:
    process = stack.start_writer(EPOCHSCOPE_QUOTA_PREDICTION_BYTES=str(QUOTA))
    yield process
    assert process.terminate() == 0, process.log_text()


def round_of(job: Job, step: int) -> list[PredictionEvent]:
    return [prediction(job, step=step, sample=sample) for sample in range(4)]


@asynccontextmanager
async def api_session(stack: Stack, user: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction of the API's role with `user` as the row-level security user, as a request of theirs runs."""
    conn = await asyncpg.connect(stack.postgres.url_for("epochscope_api", API_PASSWORD))
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.user_id', $1, true)", user)
            yield conn
    finally:
        await conn.close()


async def warnings_seen_by(stack: Stack, user: str, job: Job) -> list[str]:
    """The job's warning codes as the API reads them for `user`."""
    async with api_session(stack, user) as conn:
        return [warning.code for _, warning in await fetch_warnings(conn, job.job_id)]


async def stored_bytes(stack: Stack) -> dict[str, tuple[int, int]]:
    """Each test user's (counted bytes in prediction_usage, the bytes of their stored rows summed afresh)."""
    rows = await admin_fetch(
        stack,
        "SELECT u.owner_id, u.bytes, (SELECT coalesce(sum(octet_length(prompt) + coalesce(octet_length(ground_truth),"
        " 0) + octet_length(prediction)), 0) FROM training_predictions p WHERE p.owner_id = u.owner_id) AS summed"
        " FROM prediction_usage u WHERE owner_id IN ('quinn', 'olive')",
    )
    return {r["owner_id"]: (r["bytes"], r["summed"]) for r in rows}


async def test_a_running_job_past_its_users_quota_stores_no_more_predictions_and_its_user_is_warned(
    stack: Stack, producer: AIOKafkaProducer
) -> None:
    job, other = await create_job(stack, "quinn"), await create_job(stack, "olive")
    first = round_of(job, step=1)
    assert sum(len(p.prompt) + len(p.ground_truth or "") + len(p.prediction) for p in first) <= QUOTA
    await publish_events(producer, [status(job, JobStatus.RUNNING, now()), *first])

    async def first_round_stored() -> bool:
        return (await count_rows(stack, job.job_id))[0] == 4

    await wait_for(first_round_stored, timeout=60)
    crossing = round_of(job, step=2)
    await publish_events(producer, [*crossing, progress(job, step=2), *round_of(other, step=1)])
    await publish_events(producer, [status(job, JobStatus.COMPLETED, now())])

    letters = await read_dead_letters(stack, TRAINING_PREDICTIONS, at_least=4, timeout=60)
    assert [letter["reason"] for letter in letters] == ["predictions_quota"] * 4
    assert all(f"past the quota of {QUOTA} bytes (EPOCHSCOPE_QUOTA_PREDICTION_BYTES)" in d["detail"] for d in letters)

    async def settled() -> bool:
        completed = (await job_row(stack, job.job_id))["status"] == "completed"
        return completed and (await count_rows(stack, other.job_id))[0] == 4

    await wait_for(settled, timeout=60)
    assert await count_rows(stack, job.job_id) == (4, 4)  # the first round only
    [row] = await admin_fetch(stack, "SELECT progress->>'step' AS step FROM jobs WHERE job_id = $1", job.job_id)
    assert row["step"] == "2"  # the batch's other events were stored
    usage = await stored_bytes(stack)
    assert usage["olive"][0] == usage["olive"][1] > 0 and 0 < usage["quinn"][0] == usage["quinn"][1] <= QUOTA
    assert await warnings_seen_by(stack, "quinn", job) == ["predictions_quota"]
    assert await warnings_seen_by(stack, "olive", job) == []  # another user's session sees none of it
    assert await warnings_seen_by(stack, "olive", other) == []  # and olive's own job was not warned
    async with api_session(stack, "quinn") as conn:  # the API's delete of the job (a cascade) gives the bytes back
        await conn.execute("DELETE FROM jobs WHERE job_id = $1", job.job_id)
    assert (await stored_bytes(stack))["quinn"] == (0, 0)


async def test_two_writers_storing_one_users_predictions_at_once_never_pass_the_quota_together(stack: Stack) -> None:
    """Each of two jobs' rounds fits the quota alone, not both: the second writer waits on the user's count (the
    first's insert holds it until its commit), then counts the first's bytes and refuses its own."""
    first, second = await create_job(stack, "tess"), await create_job(stack, "tess")
    rules = BatchApplier(JobTokenVerifier(JOB_TOKEN_SECRET), JobOwners(10), PredictionQuota(QUOTA))
    batches = [rules.check([record_of(p, n) for n, p in enumerate(round_of(job, step=1))]) for job in (first, second)]
    one, other = (PostgresDatabase(stack.writer_dsn, 5, 30) for _ in range(2))

    async def apply(database: PostgresDatabase, batch: CheckedBatch) -> BatchResult:
        async with database.transaction() as store:
            return await rules.apply(store, batch)

    async def a_writer_waits_on_a_lock() -> bool:
        query = "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'"
        return (await admin_fetch(stack, query, "epochscope_writer"))[0]["n"] > 0

    try:
        async with one.transaction() as store:
            applied = await rules.apply(store, batches[0])
            waiting = asyncio.create_task(apply(other, batches[1]))
            await wait_for(a_writer_waits_on_a_lock, timeout=30)
            assert not waiting.done()
        refused = await waiting
    finally:
        await one.close()
        await other.close()
    assert applied.dead_letters == []
    assert [letter.reason for letter in refused.dead_letters] == [DeadLetterReason.PREDICTIONS_QUOTA] * 4
    assert (await count_rows(stack, first.job_id), await count_rows(stack, second.job_id)) == ((4, 4), (0, 0))
