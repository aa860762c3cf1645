"""The stored-predictions quota while a job runs, in the writer's apply rules (fake adapters: tests/writer_fakes.py).
The same rules on the real broker and Postgres: tests/test_writer_quota_stack.py."""

from uuid import UUID

from writer_fakes import SECRET, FakeEventStore, job_token, record_of

from epochscope_schemas.events import JobStatus, JobStatusEvent, PredictionEvent, ProgressEvent
from epochscope_schemas.notify import ChangeKind
from epochscope_writer.domain.dead_letters import DeadLetterReason
from epochscope_writer.domain.job_tokens import JobTokenVerifier
from epochscope_writer.service_layer.apply import BatchApplier, EventKind, JobOwners
from epochscope_writer.service_layer.prediction_quota import PredictionQuota

QUOTA = 10  # bytes: each prediction below is 3 (prompt "p", ground truth "t", prediction "a")


def applier(quota: int = QUOTA) -> BatchApplier:
    return BatchApplier(JobTokenVerifier(SECRET), JobOwners(100), PredictionQuota(quota))


def prediction(job_id: UUID, owner: str, step: int, sample: int) -> PredictionEvent:
    return PredictionEvent(
        job_id=job_id,
        job_token=job_token(job_id, owner),
        round_index=step,
        epoch=float(step),
        step=step,
        sample_id=f"s{sample}",
        sample_index=sample,
        prompt="p",
        ground_truth="t",
        prediction="a",
    )


def progress(job_id: UUID, owner: str, step: int) -> ProgressEvent:
    return ProgressEvent(
        job_id=job_id, job_token=job_token(job_id, owner), step=step, max_steps=10, epoch=0.5, num_epochs=1
    )


async def test_a_batch_that_would_cross_the_quota_is_dead_lettered_and_the_job_warned_once() -> None:
    store, rules = FakeEventStore(), applier()
    job, other = store.add_job("alice"), store.add_job("bob")
    first = [record_of(prediction(job, "alice", 1, sample), sample) for sample in range(3)]  # 9 bytes: fits
    assert not (await rules.apply(store, rules.check(first))).dead_letters
    crossing = [prediction(job, "alice", 2, sample) for sample in range(2)]  # 6 more: 15, past 10
    completed = JobStatusEvent(job_id=job, job_token=job_token(job, "alice"), status=JobStatus.COMPLETED)
    batch = [*crossing, progress(job, "alice", 5), completed, *(prediction(other, "bob", 2, s) for s in range(3))]
    result = await rules.apply(store, rules.check([record_of(event, offset) for offset, event in enumerate(batch)]))

    stored = {(job, 1, f"s{s}") for s in range(3)} | {(other, 2, f"s{s}") for s in range(3)}
    assert set(store.tables.predictions) == stored  # alice's crossing batch not stored; bob's (his own quota) is
    assert [(d.reason, d.offset) for d in result.dead_letters] == [
        (DeadLetterReason.PREDICTIONS_QUOTA, o) for o in (0, 1)
    ]
    assert "past the quota of 10 bytes (EPOCHSCOPE_QUOTA_PREDICTION_BYTES)" in result.dead_letters[0].detail
    assert (job, 5) in store.tables.progress and store.tables.jobs[job][1].status is JobStatus.COMPLETED
    assert result.applied[EventKind.WARNING] == 1 and len(store.tables.warnings) == 1
    assert (job, {"kind": ChangeKind.WARNING, "count": 1}) in result.notifications

    again = await rules.apply(store, rules.check([record_of(prediction(job, "alice", 3, 0))]))  # 12: still past
    assert [d.reason for d in again.dead_letters] == [DeadLetterReason.PREDICTIONS_QUOTA]
    assert len(store.tables.warnings) == 1 and again.applied[EventKind.WARNING] == 0  # the job is told once
    assert await store.prediction_bytes("alice") == 9


async def test_a_redelivered_batch_adds_nothing_and_is_never_refused() -> None:
    store, rules = FakeEventStore(), applier(quota=9)
    job = store.add_job("alice")
    records = [record_of(prediction(job, "alice", 1, sample), sample) for sample in range(3)]  # 9: the quota, full
    await rules.apply(store, rules.check(records))
    lowered = applier(quota=5)  # the operator lowered the quota since: alice is past it
    redelivered = await lowered.apply(store, lowered.check(records))
    assert not redelivered.dead_letters and redelivered.duplicates[EventKind.PREDICTION] == 3


async def test_isolated_predictions_are_stored_until_the_quota_and_the_rest_refused() -> None:
    store, rules = FakeEventStore(), applier()
    job = store.add_job("alice")
    records = [record_of(prediction(job, "alice", 1, sample), sample) for sample in range(4)]  # 12 bytes
    result = await rules.apply(store, rules.check(records), isolate=True)
    assert sorted(store.tables.predictions) == [(job, 1, f"s{s}") for s in range(3)]
    assert [(d.reason, d.offset) for d in result.dead_letters] == [(DeadLetterReason.PREDICTIONS_QUOTA, 3)]
    assert len(store.tables.warnings) == 1
