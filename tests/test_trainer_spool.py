"""The trainer's sqlite spool: order, reopening, an unreadable file, and kill -9 while spooling and delivering."""

import asyncio
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from single_broker import broker_fixture  # noqa: F401  fixture
from spool_worker import event

from epochscope_schemas.topics import TRAINING_STATUS
from epochscope_trainer.publishing.spool_store import Outgoing, Spool
from epochscope_trainer.publishing.spooling_publisher import EVENTS_PER_SEND

WORKER = Path(__file__).with_name("spool_worker.py")


def item(n: int) -> Outgoing:
    return Outgoing("training.status", "job", json.dumps({"message": f"event {n}"}).encode())


def numbers(spool: Spool) -> list[int]:
    return [int(json.loads(s.item.value)["message"].split()[1]) for s in spool.head(10**9)]


def test_spool_order_prepend_remove_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    spool = Spool(path)
    spool.append([item(3), item(4)])
    spool.prepend([item(1), item(2)])  # in flight when the broker went away: they go first
    spool.append([item(5)])
    assert numbers(spool) == [1, 2, 3, 4, 5] and len(spool) == 5
    spool.remove(spool.head(2))
    spool._conn.close()  # as a kill would leave it: no clean close
    reopened = Spool(path)
    assert numbers(reopened) == [3, 4, 5] and len(reopened) == 3
    reopened.remove(reopened.head(10))
    reopened.close()
    assert not path.exists()  # an empty spool leaves no file behind


def test_an_unreadable_spool_is_set_aside_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    path.write_bytes(b'{"topic": "training.status", "key": "half a li')  # e.g. a torn line of the old format
    spool = Spool(path)
    assert len(spool) == 0
    spool.append([item(1)])
    assert numbers(Spool(path)) == [1]
    assert [p.name.split("-")[0] for p in tmp_path.glob("spool.sqlite.unreadable-*")] == ["spool.sqlite.unreadable"]


def test_kill_9_while_spooling_loses_no_acknowledged_event(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    acknowledged: list[int] = []
    first = 0
    rng = random.Random(14)
    kills = 15
    for _ in range(kills):
        worker = subprocess.Popen(
            [sys.executable, str(WORKER), "spool", str(path), str(first)], stdout=subprocess.PIPE, text=True
        )
        # Wait for it to be spooling, then kill it at a random point.
        assert worker.stdout is not None
        worker.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.3))
        worker.send_signal(signal.SIGKILL)
        out, _ = worker.communicate()
        acknowledged += [int(n) for n in out.split()]
        reopened = Spool(path)  # reopening after a kill never fails
        on_disk = numbers(reopened)
        reopened.close()
        assert len(on_disk) == len(set(on_disk)) and on_disk == sorted(on_disk)
        assert set(acknowledged) <= set(on_disk)
        first = on_disk[-1] + 1
    assert len(acknowledged) > kills * 5


def fill(path: Path, count: int) -> None:
    spool = Spool(path)
    for start in range(0, count, 1000):
        spool.append([event(n, "00000000-0000-0000-0000-000000000014") for n in range(start, start + 1000)])
    spool.close()


def spooled(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()


async def consume(bootstrap: str, expected: int) -> list[int]:
    consumer = AIOKafkaConsumer(TRAINING_STATUS, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    received: list[int] = []
    try:
        deadline = time.monotonic() + 60
        idle_until = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                received += [int(json.loads(r.value)["message"].split()[1]) for r in records]
            if len(received) >= expected:
                idle_until = idle_until or time.monotonic() + 2  # a little longer, to see any duplicates
                if time.monotonic() > idle_until:
                    break
    finally:
        await consumer.stop()
    return received


async def test_kill_9_during_delivery_delivers_every_event(tmp_path: Path, broker: str) -> None:
    path = tmp_path / "spool.sqlite"
    total = 10_000
    fill(path, total)
    rng = random.Random(7)
    kills = attempts = 0
    while True:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, str(WORKER), "deliver", str(path), broker, stdout=asyncio.subprocess.PIPE
        )
        before = spooled(path)
        if attempts < 5 and before > EVENTS_PER_SEND * 2:
            while spooled(path) == before and worker.returncode is None:  # delivery has begun
                await asyncio.sleep(0.005)
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            if worker.returncode is None:
                worker.send_signal(signal.SIGKILL)
                attempts += 1
                await worker.wait()
                left = spooled(path)
                assert left < before  # the delivered part is gone from the spool
                kills += 1 if left else 0  # killed in the middle of delivering
                continue
        out, _ = await asyncio.wait_for(worker.communicate(), 120)
        assert out.decode().split() == ["done"]
        break
    assert kills >= 3 and not path.exists()
    received = await consume(broker, total)
    counts = Counter(received)
    assert set(counts) == set(range(total))  # every event arrived
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= attempts * EVENTS_PER_SEND  # only what was in flight at a kill came twice
    first_seen = list(dict.fromkeys(received))
    assert first_seen == list(range(total))  # and in order
    print(f"kills={kills} delivered={len(received)} distinct={len(counts)} duplicates={duplicates}")
