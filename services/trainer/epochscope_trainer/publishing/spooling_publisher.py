"""Publish events without ever blocking training, and without losing them.

A job's child publishes with `to_broker=False`: it holds no broker credentials, and its thread writes every event
to the spool, which the trainer service delivers with a publisher of its own (`service.spool_delivery`), reading
the same file while the child writes it. What follows describes the delivering side.

`publish()` puts the event on a bounded in-memory queue; a background thread drains it to Kafka. While
the broker is unreachable the thread moves what is queued to the on-disk spool (`spool_store`, sqlite in
the job's folder), and delivers the spool, in order, when the broker returns; a full queue is moved to
the spool by `publish()` itself. Everything spooled is older than everything queued, so per-job order
is kept. Spooled events are deleted only after the broker acknowledged them (at-least-once; the writer's
idempotent keys make a redelivery a no-op).

An event that can never fit the broker's message limit (`KafkaSettings.max_message_bytes`) is not an
outage: it is never sent or spooled as is, but replaced by a small `event_too_large` warning event of
its job. A broker that refuses an event as too large gets the same treatment (`event_refused`).

A spool that cannot be written (a full disk: SQLITE_FULL, or any sqlite/OS error) loses nothing either: the events
are held in memory, in order after the spool and before the queue, counted in `unspooled`, announced once per
episode by a `events_not_spooled` warning event of their job, and spooled or delivered when either comes back.
Held events still count in `pending()`; `held()` says how many would die with the process (its exit is then not
clean). One order caveat: events in flight when both broker and disk fail go after what reached the spool meanwhile.
"""

import asyncio
import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from epochscope_runtime.kafka import KafkaSettings
from epochscope_schemas.events import Envelope, WarningEvent, encode_event
from epochscope_schemas.topics import TRAINING_STATUS
from epochscope_trainer.publishing.spool_store import Outgoing, Spool

log = logging.getLogger("epochscope.trainer.spooling_publisher")

EVENTS_PER_SEND = 500  # events sent to the broker in one go (from the queue or the spool head)
RETRY_S = 1.0
TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)  # the broker will never take this event
SPOOL_ERRORS = (sqlite3.Error, OSError)  # the spool cannot be written: a full disk, a read-only or broken folder


def message_size(item: Outgoing) -> int:
    """The event's size as the broker counts it against its message limit (one record in its own batch)."""
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(item.key.encode(), item.value, [])


def refusal_warning(item: Outgoing, code: str, reason: str) -> Outgoing:
    """A small warning event of the same job in place of an event that cannot be delivered."""
    return job_warning(item, code, f"{_describe(item)} dropped: {reason}")


def job_warning(item: Outgoing, code: str, message: str) -> Outgoing:
    """A warning event of `item`'s job (its token and attempt too)."""
    try:
        event = json.loads(item.value)
        job = {"job_id": event["job_id"], "job_token": event.get("job_token"), "attempt_id": event.get("attempt_id")}
    except (ValueError, KeyError, TypeError):
        job = {"job_id": item.key, "job_token": None}
    warning = WarningEvent(**job, code=code, message=message[:2000])
    return Outgoing(TRAINING_STATUS, item.key, encode_event(warning))


def _describe(item: Outgoing) -> str:
    try:
        event = json.loads(item.value)
        what = f"{event.get('type')} event {event.get('event_id')}"
        if "sample_id" in event:
            what += f" (step {event.get('step')}, sample {str(event['sample_id'])[:200]})"
        return what
    except (ValueError, KeyError, TypeError, AttributeError):
        return "an event"


class EventPublisher:
    """Args:
    kafka: the broker, and its message limit.
    spool_path: the on-disk spool (sqlite).
    queue_size: events queued in memory before the queue is moved to the spool.
    attempt_id: stamped on every event published without one (the child's `JobIdentity.attempt_id`).
    to_broker: False in a job's child, which holds no broker credentials: its thread writes every event to the
        spool, which the trainer service delivers (`service.spool_delivery`).
    held_max: events held in memory while the spool refuses them; past it the newest are dropped, the publisher
        takes no more events (counted in `dropped`, logged once) and calls `on_overflow` once: the process is to
        stop, and its exit is not clean (EVENTS_LOST).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        spool_path: Path,
        queue_size: int,
        attempt_id: uuid.UUID | None = None,
        to_broker: bool = True,
        held_max: int = 100_000,
        on_overflow: Callable[[], None] = lambda: None,
    ) -> None:
        self._kafka = kafka
        self._to_broker = to_broker
        self._held_max = held_max
        self._on_overflow = on_overflow
        self.overflowed = False  # held_max was passed: events are dropped, the process is to stop
        self._max_bytes = kafka.max_message_bytes
        self._spool_path = spool_path
        self._spool: Spool | None = Spool(spool_path) if spool_path.exists() else None
        self._queue: queue.Queue[Outgoing] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()  # guards the spool and the queue's moves into it
        self._in_flight = 0  # events taken from the queue and not yet acknowledged
        self._held: list[Outgoing] = []  # events the spool could not take: after the spool, before the queue
        self._spool_failing = False  # the last spool write failed (its warning event is out)
        self._stop = threading.Event()
        self.attempt_id = attempt_id
        self._thread = threading.Thread(target=self._run, name="event-publisher", daemon=True)
        self.delivered = 0
        self.refused = 0
        self.unspooled = 0  # events the spool refused (each time), kept in memory instead
        self.dropped = 0  # events neither delivered, spooled nor held: past held_max

    def start(self) -> None:
        self._thread.start()

    def publish(self, topic: str, event: Envelope) -> None:
        """Never blocks on the network and never raises for it: queue it, or spool the queue if it is full."""
        if self.overflowed:  # logged once, by _overflow
            self.dropped += 1
            return
        if self.attempt_id is not None and event.attempt_id is None:
            event = event.model_copy(update={"attempt_id": self.attempt_id})
        item = Outgoing(topic, str(event.job_id), encode_event(event))
        size = message_size(item)
        if size > self._max_bytes:
            log.warning("%s event %s is %d bytes, over the message limit; dropped", event.type, event.event_id, size)
            self.refused += 1
            reason = f"{size} bytes, over the {self._max_bytes}-byte message limit"
            item = refusal_warning(item, "event_too_large", reason)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            log.warning("publish queue full; spooling to disk")
            with self._lock:
                self._spool_queue([], also=[item])

    def close(self, timeout_s: float) -> int:
        """Deliver what is pending within `timeout_s`; what is left stays in the spool. Returns how many."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (self.pending() if self._to_broker else self._unwritten()):
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(max(deadline - time.monotonic(), 0) + 5)
        with self._lock:
            self._spool_queue([])
            left = self._pending()
            if self._held:
                log.error("%d event(s) could not be spooled to %s; they are lost", len(self._held), self._spool_path)
            if self._spool is not None and not self._thread.is_alive():
                self._spool.close()
                self._spool = None
        return left

    def pending(self) -> int:
        """Events not yet acknowledged by the broker: queued, in flight or spooled."""
        with self._lock:
            return self._pending()

    def held(self) -> int:
        """Events neither acknowledged nor on disk (the spool refused them): they end with this process."""
        with self._lock:
            return len(self._held)

    def _unwritten(self) -> int:
        """Events neither acknowledged nor in the spool: queued, in flight or held."""
        with self._lock:
            return self._queue.qsize() + self._in_flight + len(self._held)

    def _pending(self) -> int:
        spooled = len(self._spool) if self._spool is not None else 0
        return self._queue.qsize() + self._in_flight + len(self._held) + spooled

    def _spooled(self) -> Spool:
        """Caller holds the lock."""
        if self._spool is None:
            self._spool = Spool(self._spool_path)
        return self._spool

    def _spool_queue(self, in_flight: Sequence[Outgoing], also: Sequence[Outgoing] = ()) -> None:
        """Caller holds the lock. The events in flight go before the spool; the held events, the queue and `also`
        after it. What the spool refuses is held in memory, in the same order; it never raises."""
        queued = [*self._take(self._queue.qsize()), *also]
        self._in_flight = 0
        try:
            if in_flight:
                self._spooled().prepend(in_flight)
                in_flight, self._spool_failing = [], False
            if self._held or queued:
                self._spooled().append([*self._held, *queued])
                self._held, queued, self._spool_failing = [], [], False
        except SPOOL_ERRORS as exc:
            refused = [*in_flight, *queued]
            self.unspooled += len(refused)
            log.warning("the spool %s refused %d event(s) (%s); kept in memory", self._spool_path, len(refused), exc)
            if not self._spool_failing and refused:  # a new episode: tell the job's owner
                self._spool_failing = True
                reason = f"the trainer could not write its event spool ({exc}); events are kept in memory"
                queued.append(job_warning(refused[0], "events_not_spooled", reason))
            self._held = [*in_flight, *self._held, *queued]
            if len(self._held) > self._held_max:
                self._overflow()

    def _overflow(self) -> None:
        """Caller holds the lock. Keep the first `held_max` held events, drop the rest, take no more events."""
        lost = len(self._held) - self._held_max
        self._held, self.dropped = self._held[: self._held_max], self.dropped + lost
        if not self.overflowed:
            self.overflowed = True
            log.error(
                "%d event(s) held in memory, over the limit of %d (EPOCHSCOPE_TRAINER_HELD_EVENTS_MAX): taking no"
                " more events; the job stops",
                self._held_max + lost,
                self._held_max,
            )
            self._on_overflow()

    def _take(self, limit: int) -> list[Outgoing]:
        items: list[Outgoing] = []
        while len(items) < limit:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _run(self) -> None:
        asyncio.run(self._drain())

    async def _drain(self) -> None:
        if not self._to_broker:
            await self._write_spool()
            return
        producer: AIOKafkaProducer | None = None
        while not self._stop.is_set():
            in_flight: list[Outgoing] = []
            try:
                if producer is None:
                    producer = AIOKafkaProducer(
                        **self._kafka.producer_kwargs(), acks="all", linger_ms=5, request_timeout_ms=5000
                    )
                    await producer.start()
                with self._lock:
                    head = self._spool.head(EVENTS_PER_SEND) if self._spool is not None and len(self._spool) else []
                    if not head:
                        if self._held:
                            in_flight, self._held = self._held[:EVENTS_PER_SEND], self._held[EVENTS_PER_SEND:]
                        else:
                            in_flight = self._take(EVENTS_PER_SEND)
                        self._in_flight = len(in_flight)
                if head:
                    await self._deliver(producer, [s.item for s in head])
                    with self._lock:
                        self._spooled().remove(head)
                elif in_flight:
                    await self._deliver(producer, in_flight)
                    self._in_flight = 0
                else:
                    await asyncio.sleep(0.02)
            except Exception as exc:  # noqa: BLE001  whatever it is, the events are kept and retried
                if isinstance(exc, KafkaError | OSError):
                    log.warning("broker unreachable (%s: %s); spooling", type(exc).__name__, exc)
                elif isinstance(exc, sqlite3.Error):
                    log.warning("the spool %s failed (%s); retrying", self._spool_path, exc)
                else:
                    log.exception("publishing failed; spooling to %s", self._spool_path)
                with self._lock:
                    self._spool_queue(in_flight)
                if producer is not None:
                    await _stop_quietly(producer)
                    producer = None
                await asyncio.sleep(RETRY_S)
        if producer is not None:
            await _stop_quietly(producer)

    async def _write_spool(self) -> None:
        """Without a broker: move what is queued (and held) to the spool, a batch at a time."""
        while not self._stop.is_set():
            with self._lock:
                if self._queue.qsize() or self._held:
                    self._spool_queue([])
            await asyncio.sleep(0.05 if not self._held else RETRY_S)

    async def _deliver(self, producer: AIOKafkaProducer, items: list[Outgoing]) -> None:
        """Send and wait for every acknowledgement; an event refused as too large becomes a warning, sent next.
        Raises on an outage (nothing is then known to be delivered)."""
        refused = [r for r in await self._send(producer, items) if r is not None]
        if refused:
            self.refused += len(refused)
            warnings = [refusal_warning(item, "event_refused", reason) for item, reason in refused]
            for _item, reason in refused:
                log.warning("broker refused an event (%s); reported as a job warning", reason)
            for (item, _reason), retry in zip(refused, await self._send(producer, warnings), strict=True):
                if retry is not None:
                    log.error("warning about a refused %s event refused too (%s); dropped", item.topic, retry[1])

    async def _send(self, producer: AIOKafkaProducer, items: list[Outgoing]) -> list[tuple[Outgoing, str] | None]:
        """Per item: None when acknowledged, (item, reason) when refused as too large."""
        waits: list[asyncio.Future[object] | BaseException] = []
        for item in items:
            try:
                if message_size(item) > self._max_bytes:
                    raise MessageSizeTooLargeError(f"{message_size(item)} bytes, over {self._max_bytes}")
                waits.append(await producer.send(item.topic, value=item.value, key=item.key.encode()))
            except TOO_LARGE as exc:
                waits.append(exc)
        futures = [w for w in waits if not isinstance(w, BaseException)]
        results = iter(await asyncio.gather(*futures, return_exceptions=True))
        outcomes: list[tuple[Outgoing, str] | None] = []
        for item, wait in zip(items, waits, strict=True):
            result = wait if isinstance(wait, BaseException) else next(results)
            if isinstance(result, TOO_LARGE):
                outcomes.append((item, f"{type(result).__name__}: {result}"))
            elif isinstance(result, BaseException):
                raise result
            else:
                outcomes.append(None)
        self.delivered += sum(1 for o in outcomes if o is None)
        return outcomes


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception as exc:  # noqa: BLE001  the producer is being discarded either way
        log.debug("stopping producer: %s", exc)
