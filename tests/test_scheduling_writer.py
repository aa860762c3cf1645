"""Fencing in the writer's rules (in-memory fakes): a job in the job queue takes trainer events only of its current
attempt; a late event of a dead attempt (or one naming none) is dead-lettered as `stale_attempt`, never applied."""

import uuid

from test_writer_units import applier, prediction
from writer_fakes import FakeEventStore, job_token, record_of

from epochscope_schemas.events import JobStatus, JobStatusEvent
from epochscope_writer.domain.dead_letters import DeadLetterReason
from epochscope_writer.service_layer.ports import JobState


def queued_job(store: FakeEventStore, owner: str, attempt: uuid.UUID | None) -> uuid.UUID:
    job_id = store.add_job(owner, JobStatus.RUNNING)
    store.tables.jobs[job_id] = (owner, JobState(JobStatus.RUNNING, queued=True, attempt_id=attempt))
    return job_id


async def test_only_the_current_attempt_is_applied() -> None:
    store, rules = FakeEventStore(), applier()
    current, dead = uuid.uuid4(), uuid.uuid4()
    job = queued_job(store, "alice", current)
    events = [
        prediction(job, "alice", 1, 0).model_copy(update={"attempt_id": current}),
        prediction(job, "alice", 1, 1).model_copy(update={"attempt_id": dead}),
        prediction(job, "alice", 1, 2),  # no attempt named
    ]
    result = await rules.apply(store, rules.check([record_of(e, i) for i, e in enumerate(events)]))
    assert len(store.tables.predictions) == 1 and (job, 1, "s0") in store.tables.predictions
    assert [d.reason for d in result.dead_letters] == [DeadLetterReason.STALE_ATTEMPT] * 2
    assert str(dead) in result.dead_letters[0].detail


async def test_events_of_a_requeued_job_are_stale_and_statuses_move_the_queue() -> None:
    store, rules = FakeEventStore(), applier()
    current, dead = uuid.uuid4(), uuid.uuid4()
    requeued = queued_job(store, "bob", None)
    running = queued_job(store, "bob", current)
    late = JobStatusEvent(job_id=requeued, job_token=job_token(requeued, "bob"), attempt_id=dead, status="completed")
    done = JobStatusEvent(job_id=running, job_token=job_token(running, "bob"), attempt_id=current, status="completed")
    result = await rules.apply(store, rules.check([record_of(late, 0), record_of(done, 1)]))
    assert [d.reason for d in result.dead_letters] == [DeadLetterReason.STALE_ATTEMPT]
    assert store.tables.jobs[requeued][1].status is JobStatus.RUNNING
    assert store.tables.queue_moves == [(running, current, JobStatus.COMPLETED)]


async def test_jobs_outside_the_queue_take_events_without_an_attempt() -> None:
    store, rules = FakeEventStore(), applier()
    job = store.add_job("carol", JobStatus.RUNNING)
    result = await rules.apply(store, rules.check([record_of(prediction(job, "carol", 1, 0))]))
    assert result.dead_letters == [] and len(store.tables.predictions) == 1


def test_the_newest_valid_heartbeat_per_trainer_is_kept() -> None:
    from datetime import UTC, datetime, timedelta

    from epochscope_schemas.scheduling import TrainerHeartbeat
    from epochscope_writer.heartbeats import newest

    now = datetime.now(UTC)
    old = TrainerHeartbeat(trainer_id="t1", free_slots=1, occurred_at=now - timedelta(seconds=2))
    new = TrainerHeartbeat(trainer_id="t1", free_slots=0, occurred_at=now)
    other = TrainerHeartbeat(trainer_id="t2")
    values = [
        new.model_dump_json().encode(),
        b"not json",
        old.model_dump_json().encode(),
        other.model_dump_json().encode(),
    ]
    assert {(b.trainer_id, b.free_slots) for b in newest(values)} == {("t1", 0), ("t2", 1)}
