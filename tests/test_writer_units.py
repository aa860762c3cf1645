"""The writer's apply rules and consumer loop against fake adapters (tests/writer_fakes.py): no broker, no Postgres."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

from start_keys import TRAINER_IDENTITY_PUBLIC
from writer_fakes import SECRET, FakeBroker, FakeDatabase, FakeEventStore, job_token, record_of

from epochscope_schemas.checkpoints import checkpoint_id
from epochscope_schemas.events import (
    CheckpointDeletedEvent,
    CheckpointEvent,
    CheckpointFile,
    JobStatus,
    JobStatusEvent,
    PredictionEvent,
    ProgressEvent,
    RolloutEvent,
    RoundSummaryEvent,
    WarningEvent,
)
from epochscope_schemas.notify import ChangeKind
from epochscope_writer.domain.dead_letters import DeadLetterReason
from epochscope_writer.domain.job_tokens import JobTokenVerifier
from epochscope_writer.main import _start_with_retry
from epochscope_writer.metrics import WriterMetrics
from epochscope_writer.service_layer.apply import BatchApplier, EventKind, JobOwners
from epochscope_writer.service_layer.consumer import Writer
from epochscope_writer.service_layer.prediction_quota import PredictionQuota
from epochscope_writer.settings import WriterSettings

LONG_AGO = timedelta(days=5)  # far past the hour the writer used to allow after a job's end, and a token's 72 h


def applier() -> BatchApplier:
    return BatchApplier(JobTokenVerifier(SECRET), JobOwners(100), PredictionQuota(1 << 30))


def prediction(
    job_id: UUID, owner: str, step: int, sample: int, token_ttl: timedelta = timedelta(hours=1)
) -> PredictionEvent:
    return PredictionEvent(
        job_id=job_id,
        job_token=job_token(job_id, owner, token_ttl),
        round_index=step,
        epoch=float(step),
        step=step,
        sample_id=f"s{sample}",
        sample_index=sample,
        prompt="p",
        prediction="a",
    )


def round_summary(job_id: UUID, owner: str, index: int) -> RoundSummaryEvent:
    return RoundSummaryEvent(
        job_id=job_id,
        job_token=job_token(job_id, owner),
        round_index=index,
        epoch=float(index),
        step=index,
        trigger="epoch",
        predictions=1,
        validated=1,
        valid=1,
        scored=1,
        tokens_generated=3,
        wall_ms=1.0,
        stall_ms=1.0,
    )


async def test_predictions_are_written_once_and_notified_as_predictions() -> None:
    store, rules = FakeEventStore(), applier()
    job = store.add_job("alice")
    records = [record_of(prediction(job, "alice", 10, sample), sample) for sample in range(2)]
    first = await rules.apply(store, rules.check(records))
    again = await rules.apply(store, rules.check(records))
    assert first.applied[EventKind.PREDICTION] == 2 and not first.dead_letters
    assert again.applied[EventKind.PREDICTION] == 0 and again.duplicates[EventKind.PREDICTION] == 2
    assert len(store.tables.predictions) == 2
    [(notified_job, payload)] = store.tables.notified  # the redelivery changed nothing, so told nobody
    assert notified_job == job and payload["kind"] == ChangeKind.PREDICTIONS and payload["count"] == 2
    assert (payload["first_step"], payload["last_step"]) == (10, 10)


async def test_round_summaries_are_written_and_notified_as_rounds() -> None:
    store, rules = FakeEventStore(), applier()
    job = store.add_job("alice")
    result = await rules.apply(store, rules.check([record_of(round_summary(job, "alice", 1))]))
    assert store.tables.rounds == {(job, 1)}
    assert result.applied == {EventKind.ROUND: 1}
    assert store.tables.notified == [(job, {"kind": ChangeKind.ROUND, "count": 1})]


async def test_every_kind_of_event_is_written() -> None:
    store, rules = FakeEventStore(), applier()
    job = store.add_job("alice")
    token = job_token(job, "alice")
    events = [
        prediction(job, "alice", 1, 0),
        round_summary(job, "alice", 1),
        ProgressEvent(job_id=job, job_token=token, step=1, max_steps=2, epoch=0.5, num_epochs=1),
        WarningEvent(job_id=job, job_token=token, code="samples_missing", message="m"),
        RolloutEvent(
            job_id=job,
            job_token=token,
            step=1,
            completion_index=0,
            prompt="p",
            completion="c",
            rewards={"label": 1.0, "is_json": None},
            reward=1.0,
            advantage=0.5,
        ),
        JobStatusEvent(job_id=job, job_token=token, status=JobStatus.RUNNING),
        checkpoint := CheckpointEvent(
            job_id=job,
            job_token=token,
            checkpoint_id=checkpoint_id(job, 1),
            round_index=1,
            step=1,
            epoch=0.5,
            key=f"jobs/{job}/checkpoints/round-1",
            files=[CheckpointFile(name="adapter_model.safetensors", bytes=3, sha256="0" * 64)],
            bytes=3,
            sha256="1" * 64,
        ),
        CheckpointDeletedEvent(job_id=job, job_token=token, checkpoint_id=checkpoint.checkpoint_id, round_index=1),
    ]
    result = await rules.apply(store, rules.check([record_of(e, i) for i, e in enumerate(events)]))
    assert result.applied == {kind: 1 for kind in EventKind}
    assert store.tables.checkpoints_deleted == {checkpoint.checkpoint_id}
    again = await rules.apply(store, rules.check([record_of(e, i) for i, e in enumerate(events[-2:])]))
    assert again.duplicates[EventKind.CHECKPOINT] == again.duplicates[EventKind.CHECKPOINT_DELETED] == 1
    assert {payload["kind"] for _, payload in store.tables.notified} == set(ChangeKind)


async def test_refused_events_become_dead_letters_with_their_reason() -> None:
    store, rules = FakeEventStore(), applier()
    alices = store.add_job("alice")
    gone = UUID(int=1)  # a correctly signed token whose job row does not exist: deleted
    bobs_token_for_alices_job = prediction(alices, "bob", 1, 0)
    forged = prediction(alices, "alice", 1, 1).model_copy(update={"job_token": "forged"})
    records = [
        record_of(prediction(gone, "alice", 1, 0), 0),
        record_of(bobs_token_for_alices_job, 1),
        record_of(forged, 3),
    ]
    result = await rules.apply(store, rules.check(records))
    reasons = {letter.offset: letter.reason for letter in result.dead_letters}
    assert reasons == {
        0: DeadLetterReason.JOB_DELETED,
        1: DeadLetterReason.OWNER_MISMATCH,
        3: DeadLetterReason.INVALID_TOKEN,
    }
    assert not store.tables.predictions and not store.tables.notified
    for letter in result.dead_letters:  # the rest of the event is kept, its token is not
        payload = json.loads(letter.payload())
        assert "job_token" not in payload and payload["job_id"] in (str(gone), str(alices))
        assert letter.detail.endswith("(job_token removed from the payload)")


async def test_late_events_of_finished_and_cancelled_jobs_land_but_never_move_them_back() -> None:
    store, rules = FakeEventStore(), applier()
    ended = datetime.now(UTC) - LONG_AGO
    jobs = [store.add_job("alice", status, ended) for status in (JobStatus.COMPLETED, JobStatus.CANCELLED)]
    events: list[PredictionEvent | RoundSummaryEvent | JobStatusEvent] = []
    for job in jobs:
        late = prediction(job, "alice", 7, 0).model_copy(update={"occurred_at": ended + timedelta(seconds=1)})
        running = JobStatusEvent(
            job_id=job, job_token=job_token(job, "alice"), status=JobStatus.RUNNING, occurred_at=datetime.now(UTC)
        )
        events += [late, round_summary(job, "alice", 3), running]
    result = await rules.apply(store, rules.check([record_of(e, i) for i, e in enumerate(events)]))
    assert not result.dead_letters
    assert +result.applied == {EventKind.PREDICTION: 2, EventKind.ROUND: 2}
    assert result.duplicates[EventKind.STATUS] == 2  # a final job stays final, however new the late status
    assert [store.tables.jobs[job][1].status for job in jobs] == [JobStatus.COMPLETED, JobStatus.CANCELLED]


async def test_an_expired_token_of_an_existing_job_still_delivers() -> None:
    store, rules = FakeEventStore(), applier()
    job = store.add_job("alice", JobStatus.RUNNING)
    expired = prediction(job, "alice", 1, 0, token_ttl=-LONG_AGO)  # queued and trained past the token's exp
    old_clock = prediction(job, "alice", 1, 1).model_copy(update={"occurred_at": datetime.now(UTC) - LONG_AGO})
    for _ in range(2):  # the second time from the verifier's cache
        result = await rules.apply(store, rules.check([record_of(expired, 0), record_of(old_clock, 1)]))
        assert not result.dead_letters
    assert set(store.tables.predictions) == {(job, 1, "s0"), (job, 1, "s1")}


async def test_a_deleted_jobs_late_events_are_dead_lettered_and_nothing_is_written() -> None:
    store, rules = FakeEventStore(), applier()
    job = store.add_job("alice", JobStatus.COMPLETED, datetime.now(UTC))
    await rules.apply(store, rules.check([record_of(prediction(job, "alice", 1, 0))]))  # caches the owner
    store.delete_job(job)
    token = job_token(job, "alice")
    late = [
        prediction(job, "alice", 2, 0),
        round_summary(job, "alice", 2),
        JobStatusEvent(job_id=job, job_token=token, status=JobStatus.FAILED),
        prediction(job, "alice", 2, 1).model_copy(update={"job_token": "forged"}),
    ]
    result = await rules.apply(store, rules.check([record_of(e, i) for i, e in enumerate(late)]))
    reasons = {letter.offset: letter.reason for letter in result.dead_letters}
    assert reasons == {
        0: DeadLetterReason.JOB_DELETED,
        1: DeadLetterReason.JOB_DELETED,
        2: DeadLetterReason.JOB_DELETED,
        3: DeadLetterReason.INVALID_TOKEN,  # a bad signature stays distinguishable from a revoked job
    }
    deleted = [letter for letter in result.dead_letters if letter.reason == DeadLetterReason.JOB_DELETED]
    assert all(str(job) in letter.detail and "deleted" in letter.detail for letter in deleted)
    assert not store.tables.predictions and not store.tables.rounds and job not in store.tables.jobs
    assert not result.applied


def test_the_finished_job_grace_setting_is_gone() -> None:
    assert not any("grace" in name for name in WriterSettings.model_fields)


def writer_for(broker: FakeBroker, *databases: FakeDatabase) -> Writer:
    """A writer with a lane per database."""
    settings = WriterSettings(
        job_token_secret=SECRET,
        accepted_trainer_keys=TRAINER_IDENTITY_PUBLIC,
        writer_retry_initial_s=0.001,
        writer_retry_max_s=0.002,
    )
    return Writer(settings, WriterMetrics(), applier(), broker, databases)


@asynccontextmanager
async def running(writer: Writer) -> AsyncIterator[None]:
    """The writer started and its loop running, stopped on the way out."""
    await writer.start()
    stopping = asyncio.Event()
    loop = asyncio.create_task(writer.run(stopping))
    try:
        yield
    finally:
        stopping.set()
        await loop
        await writer.close()


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not check():
            await asyncio.sleep(0.001)


def metric(writer: Writer, name: str, **labels: str) -> float | None:
    return writer.metrics.registry.get_sample_value(name, labels)


async def test_the_loop_isolates_an_event_the_database_refuses_and_commits_the_batch() -> None:
    store, broker = FakeEventStore(), FakeBroker()
    job = store.add_job("alice")
    good, poison = prediction(job, "alice", 1, 0), prediction(job, "alice", 1, 1)
    store.refused.add(poison.event_id)
    broker.deliver([record_of(good, 0), record_of(poison, 1)])
    writer = writer_for(broker, FakeDatabase(store))
    async with running(writer):
        await until(lambda: len(broker.committed) == 2)
    assert list(store.tables.predictions) == [(job, 1, "s0")]
    [letter] = broker.dead_letters
    assert letter.reason == DeadLetterReason.REJECTED_BY_DATABASE and letter.offset == 1
    assert metric(writer, "epochscope_writer_rows_applied_total", kind="prediction") == 1


async def test_a_rebalance_while_a_batch_waits_for_the_database_leaves_it_to_the_next_owner() -> None:
    store, broker = FakeEventStore(), FakeBroker()
    database = FakeDatabase(store)
    database.down = True
    job = store.add_job("alice")
    broker.deliver([record_of(prediction(job, "alice", 1, 0))])
    writer = writer_for(broker, database)
    async with running(writer):
        await until(lambda: broker.paused_waits > 0)
        assert broker.on_revoked is not None
        await broker.on_revoked()  # raised TypeError (len() of the pending batch) before the fix
        database.down = False
        await until(lambda: writer.database_ok)
    assert broker.committed == [] and not store.tables.predictions
    assert metric(writer, "epochscope_writer_assigned_partitions") == 0


async def test_readiness_follows_the_database_while_idle() -> None:
    database = FakeDatabase(FakeEventStore())
    database.down = True
    broker = FakeBroker()
    writer = writer_for(broker, database)
    async with running(writer):
        await until(lambda: broker.fetches >= 3)
        assert writer.kafka_ok and not writer.database_ok
        database.down = False
        await until(lambda: writer.database_ok)


class FlakyStart:
    """A writer whose broker answers only from the `answers_at`-th try."""

    def __init__(self, answers_at: int) -> None:
        self.answers_at = answers_at
        self.starts = self.closes = 0

    async def start(self) -> None:
        self.starts += 1
        if self.starts < self.answers_at:
            raise ConnectionError("broker not up yet")

    async def close(self) -> None:
        self.closes += 1


async def test_start_up_retries_until_the_broker_answers() -> None:
    writer = FlakyStart(answers_at=3)
    await _start_with_retry(writer, asyncio.Event(), initial=0.001, max_delay=0.002)  # type: ignore[arg-type]
    assert (writer.starts, writer.closes) == (3, 2)


async def test_start_up_gives_up_quietly_when_told_to_stop() -> None:
    writer, stopping = FlakyStart(answers_at=10**6), asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stopping.set)
    await asyncio.wait_for(_start_with_retry(writer, stopping, initial=0.001, max_delay=0.01), 5)  # type: ignore[arg-type]
    assert writer.starts >= 2 and writer.closes == writer.starts
