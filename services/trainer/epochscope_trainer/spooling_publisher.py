"""Publish events without ever blocking training, and without losing them.

`publish()` only puts the event on a bounded in-memory queue (or, when full, appends it to the spool
file). A background thread drains the queue to Kafka. While the broker is unreachable, events go to
an on-disk spool (JSON lines in the job's work folder) and are delivered, in order, when it returns:
once anything is spooled, later events are spooled behind it, so per-job order is kept.
"""

import asyncio
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from epochscope_schemas.events import Envelope, encode_event
from epochscope_schemas.kafka import KafkaSettings

log = logging.getLogger("epochscope.trainer.spooling_publisher")

EVENTS_PER_SEND = 500  # events sent to the broker in one go (from the queue or the spool head)
RETRY_S = 1.0


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: str
    value: str

    def line(self) -> str:
        return json.dumps({"topic": self.topic, "key": self.key, "value": self.value}) + "\n"


class EventPublisher:
    def __init__(self, kafka: KafkaSettings, spool_path: Path, queue_size: int) -> None:
        self._kafka = kafka
        self._spool_path = spool_path
        self._queue: queue.Queue[Outgoing] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()  # guards the spool file and `_spooling`
        self._spooling = spool_path.exists() and spool_path.stat().st_size > 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-publisher", daemon=True)
        self.delivered = 0

    def start(self) -> None:
        self._thread.start()

    def publish(self, topic: str, event: Envelope) -> None:
        """Never blocks and never raises on the network: queue it, or spool it if the queue is full."""
        item = Outgoing(topic, str(event.job_id), encode_event(event).decode())
        with self._lock:
            if not self._spooling:
                try:
                    self._queue.put_nowait(item)
                    return
                except queue.Full:
                    log.warning("publish queue full; spooling to disk")
            self._append_to_spool([item])

    def close(self, timeout_s: float) -> int:
        """Deliver what is pending within `timeout_s`; return how many events were left undelivered."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.pending():
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(max(deadline - time.monotonic(), 0) + 5)
        return self.pending()

    def pending(self) -> int:
        with self._lock:
            return self._queue.qsize() + len(self._read_spool())

    def _run(self) -> None:
        asyncio.run(self._drain())

    async def _drain(self) -> None:
        producer: AIOKafkaProducer | None = None
        in_flight: list[Outgoing] = []
        while not self._stop.is_set():
            try:
                if producer is None:
                    producer = AIOKafkaProducer(
                        **self._kafka.client_kwargs(), acks="all", linger_ms=5, request_timeout_ms=5000
                    )
                    await producer.start()
                if self._spooling:
                    await self._deliver_spool(producer)
                    continue
                in_flight = self._take(EVENTS_PER_SEND)
                if not in_flight:
                    await asyncio.sleep(0.02)
                    continue
                await self._send(producer, in_flight)
                in_flight = []
            except (KafkaError, OSError) as exc:
                log.warning(
                    "broker unreachable (%s: %s); spooling events to %s", type(exc).__name__, exc, self._spool_path
                )
                with self._lock:
                    # Whatever was in flight goes first, then the queue: order is kept.
                    self._append_to_spool(in_flight + self._take(self._queue.qsize()), front=True)
                in_flight = []
                if producer is not None:
                    await _stop_quietly(producer)
                    producer = None
                await asyncio.sleep(RETRY_S)
        if producer is not None:
            await _stop_quietly(producer)

    def _take(self, limit: int) -> list[Outgoing]:
        items: list[Outgoing] = []
        while len(items) < limit:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    async def _send(self, producer: AIOKafkaProducer, items: list[Outgoing]) -> None:
        futures = [await producer.send(i.topic, value=i.value.encode(), key=i.key.encode()) for i in items]
        await asyncio.gather(*futures)
        self.delivered += len(items)

    async def _deliver_spool(self, producer: AIOKafkaProducer) -> None:
        """Send the spool from its head; drop what was sent; stop spooling once it is empty."""
        with self._lock:
            head = self._read_spool()[:EVENTS_PER_SEND]
        if head:
            await self._send(producer, head)
        with self._lock:
            rest = self._read_spool()[len(head) :]
            self._rewrite_spool(rest)
            if not rest:
                self._spooling = False
                log.info("spool delivered; back to direct publishing")

    def _append_to_spool(self, items: list[Outgoing], front: bool = False) -> None:
        """Caller holds the lock."""
        self._spooling = True
        self._spool_path.parent.mkdir(parents=True, exist_ok=True)
        if front:
            existing = self._read_spool()
            self._rewrite_spool([*items, *existing])
        else:
            with self._spool_path.open("a") as spool:
                spool.writelines(item.line() for item in items)

    def _rewrite_spool(self, items: list[Outgoing]) -> None:
        """Caller holds the lock. Atomic (write, then rename): a reader never sees it half-written or empty,
        and a crash mid-write loses nothing."""
        partial = self._spool_path.with_name(f"{self._spool_path.name}.partial")
        partial.write_text("".join(item.line() for item in items))
        partial.replace(self._spool_path)

    def _read_spool(self) -> list[Outgoing]:
        if not self._spool_path.exists():
            return []
        lines = self._spool_path.read_text().splitlines()
        return [Outgoing(**json.loads(line)) for line in lines if line.strip()]


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception as exc:  # noqa: BLE001  the producer is being discarded either way
        log.debug("stopping producer: %s", exc)
