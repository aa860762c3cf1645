"""The job queue against a real Postgres (no broker): a start its live trainer never takes is sent again as a new
attempt, then fails past the attempts allowed; every lost attempt is fenced by a signed cancel of that attempt on
its start's partition; a trainer that says it is busy gets nothing; a start that cannot be read fails its job, not
the pass; a queued job's estimate counts the trainers live within the dispatcher's lease setting; and the writer's
check of an event's attempt and the dispatcher's re-queue serialize on the queue row (two real connections, each
seen waiting on the other's lock)."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from queue_postgres import API_PASSWORD, WRITER_PASSWORD, add_queued_job, heartbeat, migrate_settings, started_cluster
from start_keys import opened_token
from test_writer_units import applier, prediction
from writer_fakes import job_token, record_of

from epochscope.postgres import PostgresCluster
from epochscope_api.service_layer.queue import DispatchSettings, dispatch_once, requeue_lost
from epochscope_api.service_layer.queue_places import queue_places
from epochscope_db.migrate import migrate
from epochscope_runtime.command_signing import verify_command
from epochscope_runtime.job_token import verify_job_token
from epochscope_schemas.events import JobCancelEvent, JobStartEvent, JobStatus, JobStatusEvent, parse_event
from epochscope_schemas.topics import JOB_COMMANDS
from epochscope_writer.adapters.postgres import PostgresDatabase
from epochscope_writer.domain.dead_letters import DeadLetterReason
from epochscope_writer.service_layer.apply import BatchResult

pytestmark = pytest.mark.stack

TOKEN_SECRET = "dispatcher-tests-job-token-secret-0123456789"
MAX_BYTES = 1 << 20
SETTINGS = DispatchSettings(lease_s=10, start_timeout_s=30, max_attempts=2)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    with started_cluster() as cluster:
        asyncio.run(migrate(migrate_settings(cluster)))
        yield cluster


@pytest.fixture
async def admin(postgres: PostgresCluster) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres.admin_url)
    await conn.execute("TRUNCATE jobs, trainers, outbox CASCADE")  # each test its own queue
    try:
        yield conn
    finally:
        await conn.close()


async def dispatch(postgres: PostgresCluster, settings: DispatchSettings = SETTINGS) -> int:
    """One dispatcher pass, as the API's role."""
    conn = await asyncpg.connect(postgres.url_for("epochscope_api", API_PASSWORD))
    try:
        return await dispatch_once(conn, settings, TOKEN_SECRET, MAX_BYTES)
    finally:
        await conn.close()


async def age_dispatch(admin: asyncpg.Connection, job_id: uuid.UUID, seconds: float) -> None:
    """As if the attempt had been dispatched `seconds` earlier."""
    await admin.execute(
        "UPDATE job_queue SET dispatched_at = dispatched_at - make_interval(secs => $2) WHERE job_id = $1",
        job_id,
        seconds,
    )


async def sent_starts(admin: asyncpg.Connection) -> list[JobStartEvent]:
    rows = await admin.fetch("SELECT payload FROM outbox WHERE payload LIKE '%job.start%' ORDER BY id")
    return [event for row in rows if isinstance(event := parse_event(row["payload"]), JobStartEvent)]


async def test_a_start_never_taken_is_sent_again_then_fails(
    postgres: PostgresCluster, admin: asyncpg.Connection
) -> None:
    job_id = await add_queued_job(admin, "ann")
    await heartbeat(admin, "t1")
    assert await dispatch(postgres) == 1
    await age_dispatch(admin, job_id, 60)
    await heartbeat(admin, "t1")  # alive, idle, and never naming the attempt
    assert await dispatch(postgres) == 1  # fenced, queued again, and sent again in the same pass
    attempts = await admin.fetch("SELECT * FROM job_attempts WHERE job_id = $1 ORDER BY attempt_no", job_id)
    assert [(a["attempt_no"], a["outcome"]) for a in attempts] == [(1, "start_timeout"), (2, None)]
    queued = await admin.fetchrow("SELECT * FROM job_queue WHERE job_id = $1", job_id)
    assert queued["attempt_id"] == attempts[1]["attempt_id"] and queued["state"] == "dispatched"
    assert queued["last_error"] == "trainer t1 did not start attempt 1 within 30s"
    starts = await sent_starts(admin)
    assert [(s.attempt_no, s.trainer_id) for s in starts] == [(1, "t1"), (2, "t1")]
    assert [s.attempt_id for s in starts] == [a["attempt_id"] for a in attempts]
    await age_dispatch(admin, job_id, 60)
    await heartbeat(admin, "t1")
    assert await dispatch(postgres) == 0  # attempt 2 of 2: the job fails with the reason
    job = await admin.fetchrow("SELECT status, status_message FROM jobs WHERE job_id = $1", job_id)
    assert job["status"] == "failed"
    assert job["status_message"] == "failed after 2 attempt(s): trainer t1 did not start attempt 2 within 30s"
    assert await admin.fetchval("SELECT count(*) FROM job_start_payloads WHERE job_id = $1", job_id) == 0


async def test_each_lost_attempt_is_fenced_by_a_signed_cancel_of_it_behind_its_start(
    postgres: PostgresCluster, admin: asyncpg.Connection
) -> None:
    job_id = await add_queued_job(admin, "ida")
    await heartbeat(admin, "t1")
    assert await dispatch(postgres) == 1
    await age_dispatch(admin, job_id, 60)
    await heartbeat(admin, "t1")
    assert await dispatch(postgres) == 1  # attempt 1 never started: fenced, and the job sent again
    await admin.execute("UPDATE trainers SET last_heartbeat_at = now() - make_interval(secs => 60)")
    assert await dispatch(postgres) == 0  # attempt 2's trainer lost its lease: fenced, and the job failed (2 of 2)
    rows = await admin.fetch("SELECT topic, key, payload FROM outbox ORDER BY id")
    assert {(row["topic"], row["key"]) for row in rows} == {(JOB_COMMANDS, str(job_id))}  # the start's partition
    events = [parse_event(row["payload"]) for row in rows]
    assert [event.type for event in events] == ["job.start", "job.cancel", "job.start", "job.cancel"]
    first, fence_1, second, fence_2 = events
    assert isinstance(first, JobStartEvent) and isinstance(second, JobStartEvent)
    assert isinstance(fence_1, JobCancelEvent) and isinstance(fence_2, JobCancelEvent)
    assert (fence_1.attempt_id, fence_2.attempt_id) == (first.attempt_id, second.attempt_id)
    assert verify_command(fence_1, opened_token(first)) and verify_command(fence_2, opened_token(second))
    outcomes = await admin.fetch("SELECT outcome FROM job_attempts WHERE job_id = $1 ORDER BY attempt_no", job_id)
    assert [row["outcome"] for row in outcomes] == ["start_timeout", "lease_lost"]


async def test_a_queued_jobs_estimate_counts_the_trainers_live_within_the_lease_setting(
    postgres: PostgresCluster, admin: asyncpg.Connection
) -> None:
    job_id = await add_queued_job(admin, "jon")
    await heartbeat(admin, "t1")
    await admin.execute("UPDATE trainers SET last_heartbeat_at = now() - make_interval(secs => 20)")
    conn = await asyncpg.connect(postgres.url_for("epochscope_api", API_PASSWORD))
    try:
        within, past = [(await queue_places(conn, [job_id], lease_s))[job_id] for lease_s in (30, 10)]
    finally:
        await conn.close()
    assert (within.position, within.estimated_start_s) == (1, 0)  # the idle trainer takes it now
    assert (past.position, past.estimated_start_s) == (1, None)  # no live trainer: no estimate


async def test_a_started_attempt_is_not_timed_out(postgres: PostgresCluster, admin: asyncpg.Connection) -> None:
    named, running = await add_queued_job(admin, "bea"), await add_queued_job(admin, "cid")
    await heartbeat(admin, "t1")
    await heartbeat(admin, "t2")
    assert await dispatch(postgres) == 2
    attempt = await admin.fetchval("SELECT attempt_id FROM job_queue WHERE job_id = $1", named)
    await heartbeat(
        admin, await admin.fetchval("SELECT trainer_id FROM job_queue WHERE job_id = $1", named), 0, attempt
    )
    await admin.execute("UPDATE job_queue SET state = 'running' WHERE job_id = $1", running)  # its running status
    other = await admin.fetchval("SELECT trainer_id FROM job_queue WHERE job_id = $1", running)
    await heartbeat(admin, other, 0)
    for job_id in (named, running):
        await age_dispatch(admin, job_id, 600)
    assert await dispatch(postgres) == 0
    assert await admin.fetchval("SELECT count(*) FROM job_attempts WHERE outcome IS NOT NULL") == 0


async def test_a_trainer_that_says_it_is_busy_gets_no_job(postgres: PostgresCluster, admin: asyncpg.Connection) -> None:
    await add_queued_job(admin, "dee")
    await heartbeat(admin, "t1", free=0)  # still running an attempt the queue has fenced, say
    assert await dispatch(postgres) == 0
    await heartbeat(admin, "t1", free=1)
    assert await dispatch(postgres) == 1


async def test_a_trainer_without_a_sealing_key_gets_no_job_and_the_job_waits_queued(
    postgres: PostgresCluster, admin: asyncpg.Connection
) -> None:
    job_id = await add_queued_job(admin, "fay")
    await heartbeat(admin, "t1", sealing_key=None)  # its token could only go in the clear
    assert await dispatch(postgres) == 0
    assert await admin.fetchval("SELECT state FROM job_queue WHERE job_id = $1", job_id) == "queued"
    assert await sent_starts(admin) == []
    await heartbeat(admin, "t1")  # its next heartbeat carries its key
    assert await dispatch(postgres) == 1
    (start,) = await sent_starts(admin)
    assert start.trainer_id == "t1" and start.job_token is None and start.sealed_job_token
    assert verify_job_token(TOKEN_SECRET, opened_token(start), job_id).attempt_id == start.attempt_id


async def starts_seen(conn: asyncpg.Connection, user: str, job_id: uuid.UUID) -> int:
    """The job's stored starts `conn`'s role sees with `user` as the row-level security user ("" for none)."""
    async with conn.transaction():
        await conn.execute("SELECT set_config('app.user_id', $1, true)", user)
        return await conn.fetchval("SELECT count(*) FROM job_start_payloads WHERE job_id = $1", job_id)


async def test_a_queued_start_is_read_only_as_its_owner_and_removed_when_its_job_ends(
    postgres: PostgresCluster, admin: asyncpg.Connection
) -> None:
    job_id = await add_queued_job(admin, "gil")
    writer = await asyncpg.connect(postgres.url_for("epochscope_writer", WRITER_PASSWORD))
    api = await asyncpg.connect(postgres.url_for("epochscope_api", API_PASSWORD))
    try:
        for user in ("gil", "hal"):  # the writer reads no start's content, whichever user it acts as
            async with writer.transaction():
                await writer.execute("SELECT set_config('app.user_id', $1, true)", user)
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await writer.fetchval("SELECT payload FROM job_start_payloads WHERE job_id = $1", job_id)
        assert await starts_seen(writer, "hal", job_id) == 0  # nor names another user's
        assert await starts_seen(api, "hal", job_id) == 0  # another user's session: nothing
        assert await starts_seen(api, "", job_id) == 0  # no user: nothing
        assert await starts_seen(api, "gil", job_id) == 1  # its owner's (the dispatcher reads it so)
        with pytest.raises(asyncpg.UndefinedColumnError):  # nothing of it is left outside row-level security
            await api.fetchval("SELECT start_payload FROM job_queue WHERE job_id = $1", job_id)
    finally:
        await writer.close()
        await api.close()
    await heartbeat(admin, "t1")
    assert await dispatch(postgres) == 1
    (start,) = await sent_starts(admin)
    assert start.job_id == job_id and start.user_id == "gil"
    attempt = await admin.fetchval("SELECT attempt_id FROM job_queue WHERE job_id = $1", job_id)
    ended = JobStatusEvent(job_id=job_id, job_token=job_token(job_id, "gil"), status=JobStatus.COMPLETED)
    database = PostgresDatabase(postgres.url_for("epochscope_writer", WRITER_PASSWORD), 5, 30)
    try:
        rules = applier()
        async with database.transaction() as store:
            event = ended.model_copy(update={"attempt_id": attempt})
            assert (await rules.apply(store, rules.check([record_of(event)]))).dead_letters == []
    finally:
        await database.close()
    assert await admin.fetchval("SELECT state FROM job_queue WHERE job_id = $1", job_id) == "final"
    assert await admin.fetchval("SELECT count(*) FROM job_start_payloads WHERE job_id = $1", job_id) == 0


async def test_an_unreadable_start_fails_its_job_not_the_pass(
    postgres: PostgresCluster, admin: asyncpg.Connection
) -> None:
    broken = await add_queued_job(admin, "eve", start_payload='{"type": "job.start", "schema_version": 3}')
    good = await add_queued_job(admin, "fay")
    await heartbeat(admin, "t1")
    await heartbeat(admin, "t2")
    assert await dispatch(postgres) == 1
    job = await admin.fetchrow("SELECT status, status_message FROM jobs WHERE job_id = $1", broken)
    assert job["status"] == "failed" and job["status_message"].startswith("the job's start event could not be read")
    assert [s.job_id for s in await sent_starts(admin)] == [good]


async def waiting_on_a_lock(admin: asyncpg.Connection, role: str, timeout: float = 30) -> None:
    """Until a backend of `role` waits on a row lock (a sanity bound, not a timing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        query = "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'"
        if await admin.fetchval(query, role):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {role} backend waited on a lock within {timeout}s")


async def dispatched_then_overdue(postgres: PostgresCluster, admin: asyncpg.Connection, owner: str) -> tuple:
    job_id = await add_queued_job(admin, owner)
    await heartbeat(admin, "t1")
    assert await dispatch(postgres) == 1
    attempt = await admin.fetchval("SELECT attempt_id FROM job_queue WHERE job_id = $1", job_id)
    await age_dispatch(admin, job_id, 60)
    await heartbeat(admin, "t1")
    return job_id, attempt


async def apply_prediction(
    database: PostgresDatabase, job_id: uuid.UUID, owner: str, attempt: uuid.UUID
) -> BatchResult:
    rules = applier()
    event = prediction(job_id, owner, 1, 0).model_copy(update={"attempt_id": attempt})
    async with database.transaction() as store:
        return await rules.apply(store, rules.check([record_of(event)]))


async def test_an_event_waits_for_a_requeue_in_flight_then_is_fenced(
    postgres: PostgresCluster, admin: asyncpg.Connection
) -> None:
    job_id, attempt = await dispatched_then_overdue(postgres, admin, "gus")
    requeuer = await asyncpg.connect(postgres.url_for("epochscope_api", API_PASSWORD))
    database = PostgresDatabase(postgres.url_for("epochscope_writer", WRITER_PASSWORD), 5, 30)
    try:
        requeue = requeuer.transaction()
        await requeue.start()
        # the dispatcher's re-queue of the attempt, not committed yet
        await requeue_lost(requeuer, SETTINGS, TOKEN_SECRET, MAX_BYTES)
        applying = asyncio.create_task(apply_prediction(database, job_id, "gus", attempt))
        await waiting_on_a_lock(admin, "epochscope_writer")
        assert not applying.done()
        await requeue.commit()
        result = await applying
    finally:
        await requeuer.close()
        await database.close()
    assert [d.reason for d in result.dead_letters] == [DeadLetterReason.STALE_ATTEMPT]
    assert await admin.fetchval("SELECT count(*) FROM training_predictions WHERE job_id = $1", job_id) == 0


async def test_a_requeue_waits_for_an_event_being_applied(postgres: PostgresCluster, admin: asyncpg.Connection) -> None:
    job_id, attempt = await dispatched_then_overdue(postgres, admin, "hal")
    requeuer = await asyncpg.connect(postgres.url_for("epochscope_api", API_PASSWORD))
    database = PostgresDatabase(postgres.url_for("epochscope_writer", WRITER_PASSWORD), 5, 30)

    async def requeue() -> None:
        async with requeuer.transaction():
            await requeue_lost(requeuer, SETTINGS, TOKEN_SECRET, MAX_BYTES)

    try:
        rules = applier()
        event = prediction(job_id, "hal", 1, 0).model_copy(update={"attempt_id": attempt})
        async with database.transaction() as store:
            result = await rules.apply(store, rules.check([record_of(event)]))  # the attempt is current: applied
            requeueing = asyncio.create_task(requeue())
            await waiting_on_a_lock(admin, "epochscope_api")
            assert not requeueing.done()
        await requeueing  # after the writer's commit
    finally:
        await requeuer.close()
        await database.close()
    assert result.dead_letters == []
    assert await admin.fetchval("SELECT count(*) FROM training_predictions WHERE job_id = $1", job_id) == 1
    assert await admin.fetchval("SELECT state FROM job_queue WHERE job_id = $1", job_id) == "queued"
