"""The trainer's side of the job queue, against fake Kafka adapters: it runs only the starts addressed to it,
each attempt once (a start delivered twice runs once), stamps the attempt on its own status events, commits no
offset (Postgres is the queue's truth), and heartbeats its capacity, signed with its own identity key (which the
job's child process never sees) under a trainer id bound to that key. An attempt the dispatcher fenced (a signed
cancel of that attempt) stops, or never starts when its start comes after the cancel; the job's other attempts run
on."""

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from start_keys import DISPATCH_PUBLIC_KEY, TRAINER_IDENTITY_KEY, TRAINER_IDENTITY_PUBLIC, TRAINER_SEALING_PUBLIC
from test_trainer_supervision import STORE, harness, start_event, wait_for_file
from trainer_fakes import FakeCancelStream, FakeProducer, FakeRecord

from epochscope_runtime.command_signing import signed_cancel
from epochscope_runtime.dispatch_keys import load_private_key, load_public_keys
from epochscope_runtime.heartbeat_signing import AcceptedTrainerKeys, RefusalKind, key_fingerprint
from epochscope_schemas.events import JobStatus
from epochscope_schemas.scheduling import TrainerHeartbeat
from epochscope_schemas.topics import TRAINER_HEARTBEATS, TRAINING_STATUS
from epochscope_trainer.child_protocol import CANCEL_FILE, USER_CANCEL, child_env
from epochscope_trainer.service import cancel_watcher
from epochscope_trainer.service.cancel_watcher import FENCED, CancelWatcher
from epochscope_trainer.service.heartbeats import heartbeat_forever
from epochscope_trainer.settings import TrainerSettings


def addressed(mode: str, trainer: str, attempt: uuid.UUID, job_id: uuid.UUID | None = None) -> bytes:
    event = start_event(mode, job_id).model_copy(update={"trainer_id": trainer, "attempt_id": attempt})
    return event.model_dump_json().encode()


async def test_runs_only_its_own_starts_each_attempt_once(tmp_path: Path) -> None:
    job, attempt = uuid.uuid4(), uuid.uuid4()
    mine = addressed("exit:0", "trainer-1", attempt, job)
    values = [addressed("exit:0", "trainer-2", uuid.uuid4()), mine, mine]
    h = harness(tmp_path, values, heartbeat_s=0.05)
    await asyncio.wait_for(h.service.run(), 30)
    assert h.commands == [tmp_path / str(job)]
    beats = [
        TrainerHeartbeat.model_validate_json(value or b"")
        for topic, value, _, _ in h.producer.sent
        if topic == TRAINER_HEARTBEATS
    ]
    assert beats and {beat.trainer_id for beat in beats} == {"trainer-1"}


async def test_its_status_events_carry_the_attempt(tmp_path: Path) -> None:
    job, attempt = uuid.uuid4(), uuid.uuid4()
    h = harness(tmp_path, [addressed("exit:7", "trainer-1", attempt, job)])
    await asyncio.wait_for(h.service.run(), 30)
    statuses = [json.loads(value or b"") for topic, value, _, _ in h.producer.sent if topic == TRAINING_STATUS]
    assert statuses and all(status["attempt_id"] == str(attempt) for status in statuses)


def fence(job: uuid.UUID, attempt: uuid.UUID, token: str = "token-1") -> FakeRecord:
    """The dispatcher's cancel of one attempt, signed with the job's token (or `token`, a forgery)."""
    return FakeRecord(signed_cancel(job, "user-1", token, attempt_id=attempt).model_dump_json().encode(), 0)


async def test_a_fenced_attempt_stops_and_the_jobs_next_attempt_runs_on(tmp_path: Path) -> None:
    job, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    starts = [addressed("until-sigterm", "trainer-1", first, job), addressed("sleep:1", "trainer-1", second, job)]
    h = harness(tmp_path, starts)  # the first ignores its cancel file: killed after the grace
    running = asyncio.create_task(h.service.run())
    await wait_for_file(tmp_path / str(job) / "started")
    await h.cancels.queue.put(fence(job, first))
    await asyncio.wait_for(running, 30)
    assert h.commands == [tmp_path / str(job)] * 2
    (status,) = h.producer.statuses()  # the first attempt's only: the second was never asked to stop
    assert (status.attempt_id, status.status) == (first, JobStatus.CANCELLED)
    assert status.message == f"{FENCED} (the training process did not stop within 1s)"
    assert not (tmp_path / str(job) / CANCEL_FILE).exists()  # the second run began without the first one's


async def test_a_start_that_comes_after_its_attempts_cancel_never_runs(tmp_path: Path) -> None:
    job, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    starts = [addressed("exit:0", "trainer-1", first, job), addressed("exit:0", "trainer-1", second, job)]
    h = harness(tmp_path, starts)
    h.jobs.wait_for = h.cancels.read_all  # the cancels read before the starts are handed out
    await h.cancels.queue.put(fence(job, first))
    await h.cancels.queue.put(fence(job, second, token="a-guess"))  # a forgery: the second attempt still runs
    await asyncio.wait_for(h.service.run(), 30)
    assert h.commands == [tmp_path / str(job)]  # the second attempt's run only
    assert h.producer.statuses() == []  # the fenced attempt is not reported: the queue has moved on from it


def test_the_watcher_tells_a_users_cancel_from_a_fence_and_keeps_the_latest_fences(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cancel_watcher, "MAX_JOBS", 2)
    watcher, job = CancelWatcher(FakeCancelStream()), uuid.uuid4()
    attempts = [start_event("exit:0", job).model_copy(update={"attempt_id": uuid.uuid4()}) for _ in range(4)]
    watcher.track(attempts[0])
    for start in attempts[:3]:
        watcher.see(signed_cancel(job, "user-1", "token-1", attempt_id=start.attempt_id))
    assert list(watcher.fenced) == [attempts[1].attempt_id, attempts[2].attempt_id]  # the oldest forgotten
    assert [watcher.stop_reason(start) for start in attempts[1:]] == [FENCED, FENCED, None]
    assert watcher.cancelled == set()  # a fence is no cancel of the job
    watcher.see(signed_cancel(job, "user-1", "token-1"))
    assert watcher.stop_reason(attempts[3]) == USER_CANCEL


IDENTITY = load_private_key(TRAINER_IDENTITY_KEY)
ACCEPTED = AcceptedTrainerKeys(load_public_keys(TRAINER_IDENTITY_PUBLIC))


async def test_heartbeats_are_signed_with_the_trainers_own_identity_key() -> None:
    producer, attempt = FakeProducer(), uuid.uuid4()
    trainer_id = TrainerSettings(identity_key=TRAINER_IDENTITY_KEY, instance="host-1", store=STORE).trainer_id()
    assert trainer_id == f"{key_fingerprint(TRAINER_IDENTITY_PUBLIC)}.host-1"  # bound to its key
    beating = asyncio.create_task(
        heartbeat_forever(producer, trainer_id, "cpu", 0.01, IDENTITY, TRAINER_SEALING_PUBLIC, lambda: attempt)
    )
    while len(producer.sent) < 2:
        await asyncio.sleep(0.01)
    beating.cancel()
    beats = [TrainerHeartbeat.model_validate_json(value or b"") for _, value, _, _ in producer.sent]
    assert all(ACCEPTED.refusal(beat) is None for beat in beats)
    assert beats[0].identity_key == TRAINER_IDENTITY_PUBLIC and beats[0].trainer_id == trainer_id
    assert beats[0].attempt_id == attempt and beats[0].free_slots == 0
    assert beats[0].sealing_key == TRAINER_SEALING_PUBLIC  # signed with the rest: the key its tokens are sealed to
    refusal = AcceptedTrainerKeys([]).refusal(beats[0])
    assert refusal is not None and refusal.kind is RefusalKind.UNACCEPTED_TRAINER_KEY


def test_production_needs_the_identity_key_and_the_job_never_gets_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    production = {"environment": "production", "store": STORE}
    assert "EPOCHSCOPE_TRAINER_IDENTITY_KEY" in (TrainerSettings(**production).missing_key() or "")
    assert TrainerSettings(**production, heartbeat_s=0).missing_key() is None  # no heartbeats: no key needed
    key = {"identity_key": TRAINER_IDENTITY_KEY}
    assert "EPOCHSCOPE_DISPATCH_PUBLIC_KEYS" in (TrainerSettings(**production, **key).missing_key() or "")
    assert TrainerSettings(**production, **key, dispatch_public_keys=DISPATCH_PUBLIC_KEY).missing_key() is None
    with pytest.raises(ValidationError, match="a dispatch public key is not base64"):
        TrainerSettings(**production, **key, dispatch_public_keys="replace_me!")
    with pytest.raises(ValidationError, match="EPOCHSCOPE_TRAINER_IDENTITY_KEY is not a 32-byte key") as refused:
        TrainerSettings(**production, identity_key="replace_me")
    assert "replace_me" not in str(refused.value)  # the key's text is in no error
    key_file = tmp_path / "identity.key"
    key_file.write_text(TRAINER_IDENTITY_KEY + "\n")  # a mounted secret
    from_file = TrainerSettings(**production, identity_key_file=key_file, instance="a")
    assert from_file.missing_key() is not None and "DISPATCH" in (from_file.missing_key() or "")
    assert from_file.trainer_id() == f"{key_fingerprint(TRAINER_IDENTITY_PUBLIC)}.a"
    monkeypatch.setenv("EPOCHSCOPE_TRAINER_IDENTITY_KEY", TRAINER_IDENTITY_KEY)
    monkeypatch.setenv("EPOCHSCOPE_TRAINER_IDENTITY_KEY_FILE", str(key_file))
    assert not {"EPOCHSCOPE_TRAINER_IDENTITY_KEY", "EPOCHSCOPE_TRAINER_IDENTITY_KEY_FILE"} & set(
        child_env(start_event("exit:0"))
    )


def test_the_jobs_openmp_threads_sleep_while_waiting_unless_the_operator_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert child_env(start_event("exit:0"))["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert child_env(start_event("exit:0"))["OMP_WAIT_POLICY"] == "ACTIVE"
