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


def test_events_held_past_the_limit_stop_the_child_instead_of_growing(tmp_path: Path) -> None:
    """A job's child (no broker) on a full disk: it holds at most `held_max` events, then takes no more, asks the job
    to stop (once) and reports the loss (the child's EVENTS_LOST exit)."""
    path = tmp_path / "spool.sqlite"
    Spool(path)._conn.close()
    stops: list[bool] = []
    publisher = EventPublisher(
        KafkaSettings(), path, queue_size=1000, to_broker=False, held_max=25, on_overflow=lambda: stops.append(True)
    )
    spool = publisher._spool
    assert spool is not None
    spool._conn.execute(f"PRAGMA max_page_count = {spool._conn.execute('PRAGMA page_count').fetchone()[0]}")
    publisher.start()
    job_id = uuid.uuid4()
    for event in statuses(job_id, 0, 20):
        publisher.publish(TRAINING_STATUS, event)
    wait_for(lambda: publisher.unspooled >= 20, 30)
    assert not publisher.overflowed and publisher.held() == 21  # 20 events and the warning: under the limit
    for event in statuses(job_id, 20, 40):
        publisher.publish(TRAINING_STATUS, event)
    wait_for(lambda: publisher.overflowed, 30)
    for event in statuses(job_id, 40, 50):
        publisher.publish(TRAINING_STATUS, event)
    assert stops == [True] and publisher.held() == 25  # the oldest kept, never more
    assert publisher.dropped == 41 - 25 + 10  # the newest held ones (the warning among 41), then the 10 refused
    held = [json.loads(item.value) for item in publisher._held]
    assert [event["message"] for event in held if event["type"] == "job.status"][:20] == [
        f"event {n}" for n in range(20)
    ]
    publisher.close(0.5)
    assert publisher.held() == 25 and publisher.dropped == 26


async def test_the_childs_spool_is_delivered_in_order_while_it_is_written(tmp_path: Path) -> None:
    """The child writes only to its spool (no broker settings); the service's delivery reads the same file while the
    child writes and after it closed: every event reaches the real broker once, in order, and the file is gone."""
    from epochscope_trainer.service.spool_delivery import SpoolDelivery

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    broker = TansuBroker(tmp_path / "broker.log", port=port)
    broker.start()
    try:
        await ensure_topics(bootstrap, partitions=1)
        job_dir = tmp_path / "job"
        exited = asyncio.Event()
        delivery = asyncio.create_task(
            SpoolDelivery(KafkaSettings(bootstrap_servers=bootstrap), 100, asyncio.Event())(job_dir, exited)
        )
        child = EventPublisher(KafkaSettings(), job_dir / "spool.sqlite", queue_size=50, to_broker=False)
        child.start()
        job_id = uuid.uuid4()
        for first in range(0, 300, 30):
            for event in statuses(job_id, first, first + 30):
                child.publish(TRAINING_STATUS, event)
            await asyncio.sleep(0.1)
        await asyncio.to_thread(child.close, 10)
        assert child.held() == 0 and child.delivered == 0  # the child sent nothing itself
        exited.set()
        await asyncio.wait_for(delivery, 60)
        events = await received(bootstrap, 300)
    finally:
        broker.stop()
    assert [event["message"] for event in events] == [f"event {n}" for n in range(300)]
    assert not (job_dir / "spool.sqlite").exists()
