"""Signed commands and job-folder cleanup in the trainer service, against fake Kafka adapters (no broker).

A cancel is obeyed only when it verifies against the job's start event; any other is ignored and dead-lettered
with the reason. A job done with leaves no folder behind (it held the job's inputs, log and spool).
"""

import asyncio
import json
import uuid
from pathlib import Path

from test_trainer_supervision import cancel_of, harness, start_event, wait_for_file
from trainer_fakes import FakeCancelStream, FakeRecord

from epochscope_runtime.command_signing import signed_cancel
from epochscope_schemas.events import JobCancelEvent, JobStatus
from epochscope_schemas.topics import JOB_COMMANDS, dead_letter_topic
from epochscope_trainer.child_protocol import CANCEL_FILE
from epochscope_trainer.service.cancel_watcher import CancelWatcher


def dead_letters(sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]] | None]]) -> list[str]:
    return [dict(headers or [])["reason"].decode() for topic, _, _, headers in sent if topic.endswith(".dlq")]


async def test_forged_cancels_are_ignored_and_dead_lettered_and_a_genuine_one_is_not(tmp_path: Path) -> None:
    event = start_event("sleep:1.5")  # runs 1.5 s, and would stop at once on a cancel it was passed
    unsigned = JobCancelEvent(job_id=event.job_id, user_id="user-1").model_dump_json().encode()
    forged = cancel_of(event, token="a-guess")
    stranger = cancel_of(start_event("exit:0"))  # a job this trainer never took: another trainer's to judge
    genuine = cancel_of(event)  # arrives after the job ended: verified, nothing to do, not a dead letter
    h = harness(tmp_path, [event.model_dump_json().encode(), unsigned, forged, stranger, genuine])
    running = asyncio.create_task(h.service.run())
    job_dir = tmp_path / str(event.job_id)
    await wait_for_file(job_dir / "started")
    for offset, value in enumerate((unsigned, forged, stranger)):
        await h.cancels.queue.put(FakeRecord(value, offset))
    await asyncio.wait_for(running, 30)
    assert not (job_dir / CANCEL_FILE).exists()  # the running job never heard of them
    assert h.producer.statuses() == []
    assert [topic for topic, *_ in h.producer.sent] == [dead_letter_topic(JOB_COMMANDS)] * 2
    assert [value for _, value, _, _ in h.producer.sent] == [unsigned, forged]
    assert dead_letters(h.producer.sent) == [
        "cancel_unsigned: no signature",
        "cancel_forged: the signature does not verify against the job's start event",
    ]


async def test_a_version_1_cancel_is_refused_with_its_reason(tmp_path: Path) -> None:
    v1 = json.dumps({**json.loads(cancel_of(start_event("exit:0"))), "schema_version": 1}).encode()
    h = harness(tmp_path, [v1])
    await asyncio.wait_for(h.service.run(), 30)
    assert dead_letters(h.producer.sent) == ["unsupported_schema_version: job.cancel v1; this trainer reads v2"]


async def test_a_job_done_with_leaves_no_folder(tmp_path: Path) -> None:
    finished, crashed, cancelled = start_event("exit:0"), start_event("exit:7"), start_event("until-cancel")
    never_started = start_event("exit:0")
    values = [e.model_dump_json().encode() for e in (finished, crashed, cancelled, never_started)]
    h = harness(tmp_path, values, keep=False)
    await h.cancels.queue.put(FakeRecord(cancel_of(never_started), 0))
    running = asyncio.create_task(h.service.run())
    await wait_for_file(tmp_path / str(cancelled.job_id) / "started")
    await h.cancels.queue.put(FakeRecord(cancel_of(cancelled), 1))
    await asyncio.wait_for(running, 30)
    assert h.commands == [tmp_path / str(e.job_id) for e in (finished, crashed, cancelled)]
    assert [(s.job_id, s.status) for s in h.producer.statuses()] == [
        (crashed.job_id, JobStatus.FAILED),
        (never_started.job_id, JobStatus.CANCELLED),
    ]
    assert list(tmp_path.iterdir()) == []


async def test_the_watcher_verifies_a_cancel_that_came_before_its_start_event() -> None:
    watcher = CancelWatcher(FakeCancelStream())
    event, other = start_event("exit:0"), start_event("exit:0", job_id=uuid.uuid4())
    watcher.see(signed_cancel(event.job_id, "user-1", "a-guess"))
    watcher.see(signed_cancel(other.job_id, "user-1", "a-guess"))
    watcher.see(signed_cancel(event.job_id, "user-1", "token-1"))
    assert watcher.cancelled == set()  # nothing is obeyed before the start event is here to verify against
    watcher.track(event)
    watcher.track(other)
    assert watcher.cancelled == {str(event.job_id)}  # the genuine one of the three
