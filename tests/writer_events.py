"""Events for the writer's real-stack tests, publishing them, and reading back what the writer did on Kafka."""

import asyncio
import base64
import json
import time
import uuid
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from writer_stack import PARTITIONS, Job, Stack, WriterProcess, sent_predictions, stored_predictions, wait_for

from epochscope_runtime.command_signing import without_job_token
from epochscope_schemas.events import (
    Envelope,
    JobStatus,
    JobStatusEvent,
    PredictionEvent,
    PredictionScores,
    ProgressEvent,
    RolloutEvent,
    RoundSummaryEvent,
    WarningEvent,
    encode_event,
)
from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS, WRITERS_GROUP, dead_letter_topic


def prediction(job: Job, step: int, sample: int, token: str | None = None, **fields: object) -> PredictionEvent:
    return PredictionEvent(
        job_id=job.job_id,
        job_token=job.token if token is None else token,
        round_index=step,
        epoch=float(step),
        step=step,
        sample_id=f"s{sample}",
        sample_index=sample,
        prompt=f"prompt {sample}",
        ground_truth="truth",
        prediction=f"answer {sample} at {step}",
        **fields,
    )


def scored_prediction(job: Job, step: int, sample: int) -> PredictionEvent:
    return prediction(
        job,
        step,
        sample,
        valid=False,
        validation_error="not valid JSON",
        scores=PredictionScores(exact_match=0.0, f1=0.5, rouge_l=0.25),
    )


def status(job: Job, value: JobStatus, occurred_at: datetime, token: str | None = None) -> JobStatusEvent:
    return JobStatusEvent(
        job_id=job.job_id, job_token=job.token if token is None else token, status=value, occurred_at=occurred_at
    )


def round_summary(job: Job, round_index: int, predictions: int = 4) -> RoundSummaryEvent:
    return RoundSummaryEvent(
        job_id=job.job_id,
        job_token=job.token,
        round_index=round_index,
        epoch=float(round_index),
        step=round_index * 10,
        trigger="epoch",
        predictions=predictions,
        validated=predictions,
        valid=predictions - 1,
        scored=predictions,
        mean_exact_match=0.25,
        mean_f1=0.5,
        mean_rouge_l=0.75,
        tokens_generated=100,
        wall_ms=1234.5,
        stall_ms=12.5,
    )


def progress(job: Job, step: int, loss: float | None = 1.0) -> ProgressEvent:
    return ProgressEvent(
        job_id=job.job_id,
        job_token=job.token,
        step=step,
        max_steps=100,
        epoch=step / 50,
        num_epochs=2,
        loss=loss,
        learning_rate=1e-4,
        samples_per_second=3.5,
    )


def warning(job: Job, code: str = "samples_missing") -> WarningEvent:
    return WarningEvent(job_id=job.job_id, job_token=job.token, code=code, message=f"{code}: see the job log")


async def publish(producer: AIOKafkaProducer, topic: str, job_id: uuid.UUID, value: bytes) -> None:
    await producer.send(topic, value=value, key=str(job_id).encode())


async def redelivery_rewrites_nothing(
    stack: Stack, producer: AIOKafkaProducer, running: list[WriterProcess], payloads: list[tuple[uuid.UUID, bytes]]
) -> None:
    """Every published prediction is stored as sent (its event_id and text); then a tenth of them, published again
    as a redelivery would bring them, is counted by the running writers as skipped duplicates and rewrites no row
    (each keeps its event, text and row version): the writer's guarantee, not just the primary key's."""
    job_ids = sorted({key for key, _ in payloads})
    before = await stored_predictions(stack, job_ids)
    assert {key: stored[:2] for key, stored in before.items()} == sent_predictions(payloads)
    metric = "epochscope_writer_duplicates_skipped_total"
    skipped = sum(w.metric(metric, kind="prediction") for w in running)
    again = payloads[::10]
    for key, value in again:
        await publish(producer, TRAINING_PREDICTIONS, key, value)
    await producer.flush()

    async def counted() -> float:
        return sum(w.metric(metric, kind="prediction") for w in running) - skipped >= len(again)

    await wait_for(counted, timeout=60, interval=0.5)
    assert await stored_predictions(stack, job_ids) == before


async def publish_events(producer: AIOKafkaProducer, events: list[Envelope]) -> None:
    for event in events:
        topic = TRAINING_PREDICTIONS if isinstance(event, PredictionEvent | RolloutEvent) else TRAINING_STATUS
        await publish(producer, topic, event.job_id, encode_event(event))
    await producer.flush()


async def read_dead_letters(stack: Stack, topic: str, at_least: int, timeout: float = 30) -> list[dict]:
    """Every record on `<topic>.dlq` so far, decoded, once at least `at_least` have arrived."""
    consumer = AIOKafkaConsumer(
        dead_letter_topic(topic),
        bootstrap_servers=stack.broker.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[dict] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(json.loads(m.value) for m in messages)
            if len(records) >= at_least:
                await asyncio.sleep(0.5)  # let stragglers in, to catch too many
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(json.loads(m.value) for m in messages)
                break
    finally:
        await consumer.stop()
    return records


def original_payload(dead_letter: dict) -> bytes:
    return base64.b64decode(dead_letter["payload_base64"])


def as_dead_lettered(payload: bytes) -> bytes:
    """A payload as its dead letter holds it: the same, less any job_token."""
    return without_job_token(payload)[0]


async def committed_offsets(stack: Stack, topic: str) -> dict[int, int]:
    """The writers group's committed offset per partition of `topic` (missing: nothing committed).

    Read with OffsetFetch from a consumer that never joins the group (Tansu's answer to the admin
    client's ListConsumerGroupOffsets does not decode in aiokafka).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.broker.bootstrap_servers, group_id=WRITERS_GROUP)
    await consumer.start()
    try:
        offsets = {p: await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        await consumer.stop()
    return {p: offset for p, offset in offsets.items() if offset is not None}


async def end_offsets(stack: Stack, topic: str) -> dict[int, int]:
    """One past the last offset of each partition of `topic`.

    Tansu 0.6 answers ListOffsets(latest) with the last batch's base offset + 1, not the high watermark,
    so read that last batch and take its last record's offset + 1 (correct on Apache Kafka too).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.broker.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        reported = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        ends: dict[int, int] = {}
        for tp in partitions:
            ends[tp.partition] = reported[tp]
            if reported[tp] > 0:
                consumer.seek(tp, reported[tp] - 1)
        while batch := await consumer.getmany(*partitions, timeout_ms=300):
            for tp, messages in batch.items():
                ends[tp.partition] = max(ends[tp.partition], messages[-1].offset + 1)
        return ends
    finally:
        await consumer.stop()
