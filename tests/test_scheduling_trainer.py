"""The trainer's side of the job queue, against fake Kafka adapters: it runs only the starts addressed to it,
each attempt once (a start delivered twice runs once), stamps the attempt on its own status events, commits no
offset (Postgres is the queue's truth), and heartbeats its capacity, signed with the trainers' key (which the job's
child process never sees)."""

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_trainer_supervision import STORE, harness, start_event
from trainer_fakes import FakeProducer

from epochscope_schemas.heartbeat_signing import signature_refusal
from epochscope_schemas.scheduling import TrainerHeartbeat
from epochscope_schemas.topics import TRAINER_HEARTBEATS, TRAINING_STATUS
from epochscope_trainer.child_protocol import child_env
from epochscope_trainer.heartbeats import heartbeat_forever
from epochscope_trainer.settings import TrainerSettings


def addressed(mode: str, trainer: str, attempt: uuid.UUID, job_id: uuid.UUID | None = None) -> bytes:
    event = start_event(mode, job_id).model_copy(update={"trainer_id": trainer, "attempt_id": attempt})
    return event.model_dump_json().encode()


async def test_runs_only_its_own_starts_each_attempt_once(tmp_path: Path) -> None:
    job, attempt = uuid.uuid4(), uuid.uuid4()
    mine = addressed("exit:0", "trainer-1", attempt, job)
    values = [addressed("exit:0", "trainer-2", uuid.uuid4()), mine, mine]
    h = harness(tmp_path, values, intake="addressed", heartbeat_s=0.05)
    await asyncio.wait_for(h.service.run(), 30)
    assert h.commands == [tmp_path / str(job)]
    assert h.jobs.committed == []
    beats = [
        TrainerHeartbeat.model_validate_json(value or b"")
        for topic, value, _, _ in h.producer.sent
        if topic == TRAINER_HEARTBEATS
    ]
    assert beats and {beat.trainer_id for beat in beats} == {"trainer-1"}


async def test_its_status_events_carry_the_attempt(tmp_path: Path) -> None:
    job, attempt = uuid.uuid4(), uuid.uuid4()
    h = harness(tmp_path, [addressed("exit:7", "trainer-1", attempt, job)], intake="addressed")
    await asyncio.wait_for(h.service.run(), 30)
    statuses = [json.loads(value or b"") for topic, value, _, _ in h.producer.sent if topic == TRAINING_STATUS]
    assert statuses and all(status["attempt_id"] == str(attempt) for status in statuses)


KEY = "trainers-key-for-the-tests-0123456789abcdef"


async def test_heartbeats_are_signed_with_the_trainers_key() -> None:
    producer, attempt = FakeProducer(), uuid.uuid4()
    beating = asyncio.create_task(heartbeat_forever(producer, "trainer-1", "cpu", 0.01, KEY, lambda: attempt))
    while len(producer.sent) < 2:
        await asyncio.sleep(0.01)
    beating.cancel()
    beats = [TrainerHeartbeat.model_validate_json(value or b"") for _, value, _, _ in producer.sent]
    assert all(signature_refusal(beat, KEY) is None for beat in beats)
    assert beats[0].attempt_id == attempt and beats[0].free_slots == 0
    assert signature_refusal(beats[0], KEY + "x") is not None


def test_production_needs_the_key_and_the_job_never_gets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    production = {"environment": "production", "store": STORE}
    assert "EPOCHSCOPE_TRAINER_KEY" in (TrainerSettings(**production).missing_key() or "")
    assert TrainerSettings(**production, heartbeat_s=0).missing_key() is None  # no heartbeats: no key needed
    assert TrainerSettings(**production, key=KEY).missing_key() is None
    with pytest.raises(ValidationError, match="EPOCHSCOPE_TRAINER_KEY is a placeholder"):
        TrainerSettings(**production, key="replace_me")
    monkeypatch.setenv("EPOCHSCOPE_TRAINER_KEY", KEY)
    assert "EPOCHSCOPE_TRAINER_KEY" not in child_env(start_event("exit:0"))
