"""The trainer's side of the job queue, against fake Kafka adapters: it runs only the starts addressed to it,
each attempt once (a start delivered twice runs once), stamps the attempt on its own status events, commits no
offset (Postgres is the queue's truth), and heartbeats its capacity."""

import asyncio
import json
import uuid
from pathlib import Path

from test_trainer_supervision import harness, start_event

from epochscope_schemas.scheduling import TrainerHeartbeat
from epochscope_schemas.topics import TRAINER_HEARTBEATS, TRAINING_STATUS


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
