"""A full disk with the broker down (issue 23, item 8): the publisher keeps what the spool refuses, says so (a warning
event, a count, a non-zero `held()` at close), and delivers all of it, in order, once the broker is back.

SQLITE_FULL is real: the spool's own sqlite connection is capped at its current size (`PRAGMA max_page_count`), so
every insert that needs a new page fails as on a full disk."""

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from test_trainer_supervision import harness, start_event

from epochscope.broker import TansuBroker, ensure_topics
from epochscope.ports import free_port
from epochscope_runtime.kafka import KafkaSettings
from epochscope_schemas.events import JobStatus, JobStatusEvent
from epochscope_schemas.topics import TRAINING_STATUS
from epochscope_trainer.child_protocol import ChildExit
from epochscope_trainer.publishing.spool_store import Spool
from epochscope_trainer.publishing.spooling_publisher import EventPublisher


def full_disk_publisher(tmp_path: Path, bootstrap: str) -> EventPublisher:
    """A started publisher whose spool file exists and can grow no more."""
    path = tmp_path / "spool.sqlite"
    Spool(path)._conn.close()  # an empty spool file, left in place (close() would remove it)
    publisher = EventPublisher(KafkaSettings(bootstrap_servers=bootstrap), path, queue_size=1000)
    spool = publisher._spool
    assert spool is not None
    pages = spool._conn.execute("PRAGMA page_count").fetchone()[0]
    spool._conn.execute(f"PRAGMA max_page_count = {pages}")
    try:  # the cap holds: this is what the publisher will meet
        spool._conn.execute("INSERT INTO events (topic, key, value) VALUES ('t', 'k', ?)", (b"x" * 8192,))
        raise AssertionError("the capped spool took a new page")
    except sqlite3.OperationalError as exc:
        assert "full" in str(exc)
    publisher.start()
    return publisher


def statuses(job_id: uuid.UUID, first: int, count: int) -> list[JobStatusEvent]:
    return [JobStatusEvent(job_id=job_id, status=JobStatus.RUNNING, message=f"event {n}") for n in range(first, count)]


def wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


async def received(bootstrap: str, expected: int) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(TRAINING_STATUS, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    events: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + 60
        while len(events) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                events += [json.loads(record.value) for record in records]
    finally:
        await consumer.stop()
    return events


async def test_a_full_spool_with_the_broker_down_keeps_every_event_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    job_id = uuid.uuid4()
    publisher = full_disk_publisher(tmp_path, bootstrap)
    for event in statuses(job_id, 0, 50):
        publisher.publish(TRAINING_STATUS, event)
    wait_for(lambda: publisher.unspooled >= 50, 30)  # the broker is down and the spool full: held in memory
    for event in statuses(job_id, 50, 60):
        publisher.publish(TRAINING_STATUS, event)
    wait_for(lambda: publisher.unspooled >= 60, 30)
    assert publisher._thread.is_alive()  # the publisher survived its own error handler failing
    assert publisher.pending() == publisher.held() == 61  # 60 events and the warning, none lost, none on disk

    broker = TansuBroker(tmp_path / "broker.log", port=port)
    broker.start()
    try:
        await ensure_topics(bootstrap, partitions=1)
        wait_for(lambda: publisher.pending() == 0, 60)
        assert publisher.close(5) == 0 and publisher.held() == 0
        events = await received(bootstrap, 61)
    finally:
        broker.stop()
    messages = [event["message"] for event in events if event["type"] == "job.status"]
    assert messages == [f"event {n}" for n in range(60)]  # every one, in order
    warnings = [event for event in events if event["type"] == "job.warning"]
    assert [(w["code"], w["job_id"]) for w in warnings] == [("events_not_spooled", str(job_id))]
    assert "full" in str(warnings[0]["message"])


def test_closing_with_events_the_full_spool_refused_is_not_a_clean_finish(tmp_path: Path) -> None:
    publisher = full_disk_publisher(tmp_path, f"127.0.0.1:{free_port()}")
    for event in statuses(uuid.uuid4(), 0, 20):
        publisher.publish(TRAINING_STATUS, event)
    wait_for(lambda: publisher.unspooled >= 20, 30)
    assert publisher.close(0.5) == 21  # the 20 events and the warning: reported, not 0
    assert publisher.held() == 21  # what the child's exit code (EVENTS_LOST) reports


async def test_a_child_that_lost_events_is_reported_failed_not_finished(tmp_path: Path) -> None:
    """The child's EVENTS_LOST exit (held events at close): the service says the job failed, and why."""
    event = start_event(f"exit:{int(ChildExit.EVENTS_LOST)}")
    h = harness(tmp_path, [event.model_dump_json().encode()])
    await asyncio.wait_for(h.service.run(), 30)
    (status,) = h.producer.statuses()
    assert (status.job_id, status.status) == (event.job_id, JobStatus.FAILED)
    assert status.message and "disk full" in status.message
