"""Fencing in the writer's rules (in-memory fakes): a job in the job queue takes trainer events only of its current
attempt; a late event of a dead attempt (or one naming none) is dead-lettered as `stale_attempt`, never applied.
Heartbeats: only those signed with an accepted identity key, for a trainer id bound to that key, and recent are
recorded; the rest are dead-lettered with the reason."""

import json
import uuid
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from start_keys import TRAINER_SEALING_PUBLIC, new_sealing_key
from test_writer_units import applier, prediction
from writer_fakes import FakeEventStore, FakeRecord, job_token, record_of

from epochscope_runtime.heartbeat_signing import (
    AcceptedTrainerKeys,
    bound_trainer_id,
    key_fingerprint,
    signed_heartbeat,
)
from epochscope_schemas.events import JobStatus, JobStatusEvent
from epochscope_schemas.scheduling import TrainerHeartbeat
from epochscope_schemas.topics import TRAINER_HEARTBEATS
from epochscope_writer.domain.dead_letters import DeadLetterReason
from epochscope_writer.domain.heartbeats import verified_newest
from epochscope_writer.service_layer.ports import JobState


def queued_job(store: FakeEventStore, owner: str, attempt: uuid.UUID | None) -> uuid.UUID:
    job_id = store.add_job(owner, JobStatus.RUNNING)
    store.tables.jobs[job_id] = (owner, JobState(JobStatus.RUNNING, attempt_id=attempt))
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


ALICE, BOB, MALLORY = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
ACCEPTED = AcceptedTrainerKeys([ALICE.public_key(), BOB.public_key()])  # not Mallory's
T1, T2 = bound_trainer_id(ALICE, "host-1"), bound_trainer_id(BOB, "host-2")
NOW = datetime.now(UTC)
MAX_AGE = timedelta(seconds=30)


def beat_record(beat: TrainerHeartbeat | bytes, offset: int = 0) -> FakeRecord:
    value = beat if isinstance(beat, bytes) else beat.model_dump_json().encode()
    return FakeRecord(TRAINER_HEARTBEATS, 0, offset, b"t", value)


def test_the_newest_signed_heartbeat_per_trainer_is_kept() -> None:
    old = signed_heartbeat(TrainerHeartbeat(trainer_id=T1, free_slots=1, occurred_at=NOW - timedelta(seconds=2)), ALICE)
    new = signed_heartbeat(TrainerHeartbeat(trainer_id=T1, free_slots=0, occurred_at=NOW), ALICE)
    other = signed_heartbeat(TrainerHeartbeat(trainer_id=T2, occurred_at=NOW), BOB)
    records = [beat_record(b, i) for i, b in enumerate((new, old, other))]
    beats, refused = verified_newest(records, ACCEPTED, MAX_AGE, NOW)
    assert {(b.trainer_id, b.free_slots) for b in beats} == {(T1, 0), (T2, 1)} and refused == []


def test_a_trainer_id_begins_with_its_keys_fingerprint() -> None:
    public = signed_heartbeat(TrainerHeartbeat(trainer_id=T1), ALICE).identity_key or ""
    assert T1 == f"{key_fingerprint(public)}.host-1" and len(key_fingerprint(public)) == 32
    assert T1 != T2 and bound_trainer_id(ALICE, "host-2") != T2  # one instance name, two keys: two trainers


def test_unsigned_forged_impersonating_stale_and_malformed_heartbeats_are_dead_lettered_with_the_reason() -> None:
    unsigned = TrainerHeartbeat(trainer_id=T1, slots=64, free_slots=64)
    unaccepted = signed_heartbeat(TrainerHeartbeat(trainer_id=bound_trainer_id(MALLORY, "m")), MALLORY)
    impersonating = signed_heartbeat(  # Bob's accepted key, in Alice's trainer's name, with Bob's sealing key
        TrainerHeartbeat(trainer_id=T1, sealing_key=TRAINER_SEALING_PUBLIC), BOB
    )
    renamed = signed_heartbeat(TrainerHeartbeat(trainer_id=T2), BOB).model_copy(update={"trainer_id": T1})
    rekeyed = signed_heartbeat(TrainerHeartbeat(trainer_id=T1), MALLORY).model_copy(
        update={"identity_key": signed_heartbeat(unsigned, ALICE).identity_key}  # Mallory's signature, Alice's key
    )
    tampered = signed_heartbeat(TrainerHeartbeat(trainer_id=T1, free_slots=0), ALICE).model_copy(
        update={"free_slots": 1}  # a real signature, over other capacity
    )
    resealed = signed_heartbeat(TrainerHeartbeat(trainer_id=T1, sealing_key=TRAINER_SEALING_PUBLIC), ALICE).model_copy(
        update={"sealing_key": new_sealing_key()[1]}  # a real signature, over another sealing key: tokens go to its
    )
    stale = signed_heartbeat(TrainerHeartbeat(trainer_id=T1, occurred_at=NOW - timedelta(minutes=5)), ALICE)
    ahead = signed_heartbeat(TrainerHeartbeat(trainer_id=T1, occurred_at=NOW + timedelta(minutes=5)), ALICE)
    values = [unsigned, unaccepted, impersonating, renamed, rekeyed, tampered, resealed, stale, ahead, b"not json"]
    beats, refused = verified_newest([beat_record(v, i) for i, v in enumerate(values)], ACCEPTED, MAX_AGE, NOW)
    assert beats == []
    assert [d.reason for d in refused] == [
        DeadLetterReason.INVALID_SIGNATURE,
        DeadLetterReason.UNACCEPTED_TRAINER_KEY,
        DeadLetterReason.TRAINER_ID_NOT_BOUND,
        DeadLetterReason.INVALID_SIGNATURE,  # the id is signed: changing it breaks the signature
        DeadLetterReason.INVALID_SIGNATURE,
        DeadLetterReason.INVALID_SIGNATURE,
        DeadLetterReason.INVALID_SIGNATURE,
        DeadLetterReason.STALE_HEARTBEAT,
        DeadLetterReason.STALE_HEARTBEAT,
        DeadLetterReason.SCHEMA_INVALID,
    ]
    assert "unsigned" in refused[0].detail and "2 accepted" in refused[1].detail
    assert f"beginning {T2.split('.')[0]}." in refused[2].detail and "wrong signature" in refused[5].detail
    assert "300s off" in refused[7].detail and refused[0].offset == 0 and refused[9].offset == 9


def test_a_writer_that_accepts_no_key_records_no_heartbeat() -> None:
    beat = signed_heartbeat(TrainerHeartbeat(trainer_id=T1), ALICE)
    beats, refused = verified_newest([beat_record(beat)], AcceptedTrainerKeys([]), MAX_AGE, NOW)
    assert beats == [] and "EPOCHSCOPE_ACCEPTED_TRAINER_KEYS" in refused[0].detail


def test_a_heartbeat_past_its_field_bounds_is_dead_lettered_as_invalid() -> None:
    beat = signed_heartbeat(TrainerHeartbeat(trainer_id=T1, occurred_at=NOW), ALICE).model_dump(mode="json")
    oversized = [
        {**beat, "trainer_id": "t" * 201},  # max 200
        {**beat, "device": "d" * 201},  # max 200
        {**beat, "signature": "0" * 129},  # max 128
        {**beat, "sealing_key": "k" * 44},  # a 32-byte key in url-safe base64: 43 characters
        {**beat, "identity_key": "k" * 44},  # the same
        {**beat, "slots": 65, "free_slots": 65},  # max 64: no trainer claims unbounded capacity
        {**beat, "schema_version": 1},  # version 1: the shared key's HMAC, no longer read
    ]
    records = [beat_record(json.dumps(value).encode(), i) for i, value in enumerate(oversized)]
    beats, refused = verified_newest(records, ACCEPTED, MAX_AGE, NOW)
    assert beats == [] and [d.reason for d in refused] == [DeadLetterReason.SCHEMA_INVALID] * len(oversized)
